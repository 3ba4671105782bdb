//! Projective resampling of NHWC images, the kernel behind rotation/zoom/shift/shear augmentation,
//! and its adjoint (the input gradient). Semantics follow TensorFlow's `ImageProjectiveTransformV3`
//! (what Keras 3 layers call): each transform maps an *output* pixel (x, y) to an *input* point, which
//! is folded back into the image by the fill mode and then sampled with nearest or bilinear
//! interpolation. Taps that land outside the image read `fill_value`.
//!
//! The resampling is linear in the image, y = M x, so the input gradient is the transpose,
//! dx = Mᵀ dy: every output pixel scatters its gradient onto the taps it read, with the same weights.
//! Taps reading the fill value scatter nothing; folded taps (reflect/wrap/nearest) scatter onto the
//! pixel they were folded to. (TensorFlow's registered gradient instead resamples dy through the
//! inverse transform, which is only an approximation of Mᵀ.)

use rayon::prelude::*;

use crate::alloc::zeros;
use crate::error::{shape_err, OpResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    Nearest,
    Bilinear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillMode {
    Constant,
    Nearest,
    Reflect,
    Wrap,
}

impl Interpolation {
    pub fn parse(s: &str) -> OpResult<Self> {
        match s {
            "nearest" => Ok(Interpolation::Nearest),
            "bilinear" => Ok(Interpolation::Bilinear),
            other => shape_err!("interpolation must be 'nearest' or 'bilinear', got '{other}'"),
        }
    }
}

impl FillMode {
    pub fn parse(s: &str) -> OpResult<Self> {
        match s {
            "constant" => Ok(FillMode::Constant),
            "nearest" => Ok(FillMode::Nearest),
            "reflect" => Ok(FillMode::Reflect),
            "wrap" => Ok(FillMode::Wrap),
            other => shape_err!("fill_mode must be 'constant', 'nearest', 'reflect' or 'wrap', got '{other}'"),
        }
    }

    /// Fold a coordinate into [0, len-1] (TF's `map_coordinate`); Constant leaves it for the reader.
    fn map(self, c: f32, len: usize) -> f32 {
        if len == 0 {
            return c; // nothing to fold onto: every tap reads the fill value
        }
        let n = len as f32;
        let folded = match self {
            FillMode::Constant => return c,
            FillMode::Nearest => c,
            _ if len <= 1 => 0.0,
            FillMode::Reflect => {
                // Period 2n: (d c b a | a b c d | d c b a).
                let period = 2.0 * n;
                let mut v = c.rem_euclid(period);
                if v >= n {
                    v = period - v - 1.0;
                }
                v
            }
            FillMode::Wrap => c.rem_euclid(n),
        };
        folded.clamp(0.0, n - 1.0)
    }
}


#[derive(Debug, Clone, Copy)]
pub struct Resample {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub out_height: usize,
    pub out_width: usize,
    pub interpolation: Interpolation,
    pub fill_mode: FillMode,
    pub fill_value: f32,
}

/// `a * b * ...`, or a shape error instead of an overflowing length.
fn volume(dims: &[usize], what: &str) -> OpResult<usize> {
    match dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) {
        Some(v) => Ok(v),
        None => shape_err!("{what} of shape {dims:?} has more elements than fit in memory"),
    }
}

fn check_len(actual: usize, expected: usize, what: &str) -> OpResult<()> {
    if actual != expected {
        shape_err!("{what} has {actual} elements, expected {expected}");
    }
    Ok(())
}

impl Resample {
    /// Geometry of resampling `images` (NHWC) into `out` = (height, width), default the input's.
    pub fn new(images: &[usize], transforms: &[usize], out: Option<(usize, usize)>, interpolation: Interpolation,
               fill_mode: FillMode, fill_value: f32) -> OpResult<Self> {
        if images.len() != 4 {
            shape_err!("images must have rank 4 (batch, height, width, channels), got shape {images:?}");
        }
        if transforms != [images[0], 8] {
            shape_err!("transforms must have shape [{}, 8] for images {images:?}, got {transforms:?}", images[0]);
        }
        let (out_height, out_width) = out.unwrap_or((images[1], images[2]));
        volume(images, "images")?;
        volume(&[images[0], out_height, out_width, images[3]], "the output")?;
        Ok(Resample {
            batch: images[0], height: images[1], width: images[2], channels: images[3],
            out_height, out_width, interpolation, fill_mode, fill_value,
        })
    }

    /// Geometry of the adjoint: `grad` is the output gradient (NHWC), `image` = (height, width) of
    /// the images that were resampled (default: grad's own).
    pub fn for_gradient(grad: &[usize], transforms: &[usize], image: Option<(usize, usize)>,
                        interpolation: Interpolation, fill_mode: FillMode) -> OpResult<Self> {
        if grad.len() != 4 {
            shape_err!("grad_y must have rank 4 (batch, height, width, channels), got shape {grad:?}");
        }
        let (height, width) = image.unwrap_or((grad[1], grad[2]));
        Resample::new(&[grad[0], height, width, grad[3]], transforms, Some((grad[1], grad[2])), interpolation,
                      fill_mode, 0.0)
    }

    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.height, self.width, self.channels]
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_height, self.out_width, self.channels]
    }

    /// Resample `images` (the input shape) into the output shape.
    pub fn forward(&self, images: &[f32], transforms: &[f32]) -> OpResult<Vec<f32>> {
        check_len(images.len(), self.input_shape().iter().product(), "images")?;
        check_len(transforms.len(), self.batch * 8, "transforms")?;
        let (c, ow) = (self.channels, self.out_width);
        let row_len = ow * c;
        let mut out = zeros(&self.output_shape(), "the output")?;
        if row_len == 0 || self.out_height == 0 {
            return Ok(out);
        }
        let image_len = self.height * self.width * c;
        out.par_chunks_mut(row_len).enumerate().for_each(|(r, row)| {
            let (n, y) = (r / self.out_height, r % self.out_height);
            let image = &images[n * image_len..][..image_len];
            let t = &transforms[n * 8..][..8];
            for (x, px) in row.chunks_exact_mut(c).enumerate() {
                if self.interpolation == Interpolation::Bilinear && self.bilinear_inside(image, t, x, y, px) {
                    continue;
                }
                match self.source(t, x, y) {
                    Some((sx, sy)) => self.sample(image, sx, sy, px),
                    None => px.fill(self.fill_value),
                }
            }
        });
        Ok(out)
    }

    /// The common case of `forward` with bilinear sampling: when all four taps of output pixel (x, y) lie
    /// inside the image (no folding, no fill value), write it and return true. Same arithmetic as
    /// `source` + `sample`, in the same order, so the result is identical; only the tap bookkeeping goes.
    #[inline]
    fn bilinear_inside(&self, image: &[f32], t: &[f32], x: usize, y: usize, px: &mut [f32]) -> bool {
        if self.width < 2 || self.height < 2 {
            return false;
        }
        let (xf, yf) = (x as f32, y as f32);
        let k = t[6] * xf + t[7] * yf + 1.0;
        let (mut sx, mut sy) = (t[0] * xf + t[1] * yf + t[2], t[3] * xf + t[4] * yf + t[5]);
        if k != 1.0 {  // affine maps have k = 1 exactly, and v / 1 = v: skipping the division changes nothing
            (sx, sy) = (sx / k, sy / k);
        }
        // Written so that NaN or infinite coordinates (k = 0) fail the test and take the general path.
        if !(sx >= 0.0 && sy >= 0.0 && sx < (self.width - 1) as f32 && sy < (self.height - 1) as f32) {
            return false;
        }
        // Non-negative here, so truncation is `floor` (without a libm call); the taps are whole numbers < width.
        let (xi, yi) = (sx as usize, sy as usize);
        let (x0, y0) = (xi as f32, yi as f32);
        let (x1, y1) = (x0 + 1.0, y0 + 1.0);
        let (wx0, wx1, wy0, wy1) = (x1 - sx, sx - x0, y1 - sy, sy - y0);
        let c = self.channels;
        let i00 = (yi * self.width + xi) * c;
        let i10 = i00 + self.width * c;
        let (top_row, bottom_row) = (&image[i00..i00 + 2 * c], &image[i10..i10 + 2 * c]);
        let w = [wx0, wx1, wy0, wy1];
        match c {
            3 => lerp_pixel::<3>(top_row, bottom_row, px, w),
            1 => lerp_pixel::<1>(top_row, bottom_row, px, w),
            _ => {
                for (ch, v) in px.iter_mut().enumerate() {
                    let top = wx0 * top_row[ch] + wx1 * top_row[c + ch];
                    let bottom = wx0 * bottom_row[ch] + wx1 * bottom_row[c + ch];
                    *v = wy0 * top + wy1 * bottom;
                }
            }
        }
        true
    }

    /// The adjoint of `forward`: scatter `grad_y` (the output shape) back onto the input pixels.
    /// Parallel over images, each written by one thread in a fixed order, so the result does not
    /// depend on the thread count.
    pub fn backward(&self, grad_y: &[f32], transforms: &[f32]) -> OpResult<Vec<f32>> {
        check_len(grad_y.len(), self.output_shape().iter().product(), "grad_y")?;
        check_len(transforms.len(), self.batch * 8, "transforms")?;
        let c = self.channels;
        let (image_len, out_len) = (self.height * self.width * c, self.out_height * self.out_width * c);
        let mut grad_x = zeros(&self.input_shape(), "the input gradient")?;
        if image_len == 0 || out_len == 0 {
            return Ok(grad_x);
        }
        grad_x.par_chunks_mut(image_len).enumerate().for_each(|(n, gx)| {
            let gy = &grad_y[n * out_len..][..out_len];
            let t = &transforms[n * 8..][..8];
            for (p, g) in gy.chunks_exact(c).enumerate() {
                if let Some((sx, sy)) = self.source(t, p % self.out_width, p / self.out_width) {
                    self.scatter(gx, sx, sy, g);
                }
            }
        });
        Ok(grad_x)
    }

    /// The folded input point output pixel (x, y) reads, or None where the projection is singular
    /// (k = 0: the pixel is the fill value).
    fn source(&self, t: &[f32], x: usize, y: usize) -> Option<(f32, f32)> {
        let (x, y) = (x as f32, y as f32);
        let k = t[6] * x + t[7] * y + 1.0;
        if k == 0.0 {
            return None;
        }
        let sx = self.fill_mode.map((t[0] * x + t[1] * y + t[2]) / k, self.width);
        let sy = self.fill_mode.map((t[3] * x + t[4] * y + t[5]) / k, self.height);
        Some((sx, sy))
    }

    /// Offset of pixel (x, y) in an image, or None outside it (the tap reads `fill_value`).
    /// NaN coordinates are outside; huge ones saturate and fail the bound.
    fn tap(&self, x: f32, y: f32) -> Option<usize> {
        let inside = y >= 0.0 && x >= 0.0 && (y as usize) < self.height && (x as usize) < self.width;
        inside.then(|| ((y as usize) * self.width + x as usize) * self.channels)
    }

    /// The bilinear taps around (x, y): offsets of (y0, x0), (y0, x1), (y1, x0), (y1, x1) and the
    /// weights (x1 - x, x - x0, y1 - y, y - y0).
    fn corners(&self, x: f32, y: f32) -> ([Option<usize>; 4], [f32; 4]) {
        let (x0, y0) = (x.floor(), y.floor());
        let (x1, y1) = (x0 + 1.0, y0 + 1.0);
        let taps = [self.tap(x0, y0), self.tap(x1, y0), self.tap(x0, y1), self.tap(x1, y1)];
        (taps, [x1 - x, x - x0, y1 - y, y - y0])
    }

    /// Write the pixel at input point (x, y) into `px`.
    fn sample(&self, image: &[f32], x: f32, y: f32, px: &mut [f32]) {
        let read = |tap: Option<usize>, ch: usize| tap.map_or(self.fill_value, |i| image[i + ch]);
        match self.interpolation {
            Interpolation::Nearest => {
                let tap = self.tap(x.round(), y.round());
                px.iter_mut().enumerate().for_each(|(ch, v)| *v = read(tap, ch));
            }
            Interpolation::Bilinear => {
                let ([a, b, c, d], [wx0, wx1, wy0, wy1]) = self.corners(x, y);
                for (ch, v) in px.iter_mut().enumerate() {
                    let top = wx0 * read(a, ch) + wx1 * read(b, ch);
                    let bottom = wx0 * read(c, ch) + wx1 * read(d, ch);
                    *v = wy0 * top + wy1 * bottom;
                }
            }
        }
    }

    /// Add `g` (one output pixel's gradient) onto the taps `sample` read at (x, y), with its weights.
    fn scatter(&self, grad_image: &mut [f32], x: f32, y: f32, g: &[f32]) {
        let mut add = |tap: Option<usize>, w: f32| {
            if let Some(i) = tap {
                grad_image[i..][..g.len()].iter_mut().zip(g).for_each(|(d, &gv)| *d += w * gv);
            }
        };
        match self.interpolation {
            Interpolation::Nearest => add(self.tap(x.round(), y.round()), 1.0),
            Interpolation::Bilinear => {
                let ([a, b, c, d], [wx0, wx1, wy0, wy1]) = self.corners(x, y);
                add(a, wy0 * wx0);
                add(b, wy0 * wx1);
                add(c, wy1 * wx0);
                add(d, wy1 * wx1);
            }
        }
    }
}

/// One bilinear pixel of `C` channels from the pixel pairs `top` / `bottom` (2C values each) with the weights
/// (wx0, wx1, wy0, wy1): `sample`'s arithmetic in the same order, with the channel count known at compile time.
#[inline(always)]
fn lerp_pixel<const C: usize>(top: &[f32], bottom: &[f32], px: &mut [f32], w: [f32; 4]) {
    let [wx0, wx1, wy0, wy1] = w;
    let (top, bottom, px) = (&top[..2 * C], &bottom[..2 * C], &mut px[..C]);
    for ch in 0..C {
        let t = wx0 * top[ch] + wx1 * top[C + ch];
        let b = wx0 * bottom[ch] + wx1 * bottom[C + ch];
        px[ch] = wy0 * t + wy1 * b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(img: &[f32], h: usize, w: usize, t: [f32; 8], interp: Interpolation, fill: FillMode) -> Vec<f32> {
        Resample::new(&[1, h, w, 1], &[1, 8], None, interp, fill, -1.0).unwrap().forward(img, &t).unwrap()
    }

    const INTERPOLATIONS: [Interpolation; 2] = [Interpolation::Nearest, Interpolation::Bilinear];
    const FILL_MODES: [FillMode; 4] = [FillMode::Constant, FillMode::Nearest, FillMode::Reflect, FillMode::Wrap];

    /// Deterministic values in [-1, 1) (a small LCG; no rand dependency).
    fn noise(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Per image: a rotation about a point, a zoom, a shift that leaves the image, and a projective map.
    fn transforms(batch: usize) -> Vec<f32> {
        let pool: [[f32; 8]; 4] = [
            [0.8, -0.6, 2.3, 0.6, 0.8, -1.7, 0.0, 0.0],
            [1.37, 0.0, -1.1, 0.0, 0.63, 1.2, 0.0, 0.0],
            [1.0, 0.0, -4.6, 0.0, 1.0, 3.3, 0.0, 0.0],
            [0.9, 0.15, 0.4, -0.1, 1.1, 0.3, 0.02, -0.03],
        ];
        (0..batch).flat_map(|n| pool[n % pool.len()]).collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    #[test]
    fn backward_is_the_transpose_of_forward() {
        // Build M column by column from forward on unit images; backward must equal Mᵀ dy.
        let (h, w, c, oh, ow) = (5, 7, 2, 6, 4);
        for interp in INTERPOLATIONS {
            for fill in FILL_MODES {
                let r = Resample::new(&[4, h, w, c], &[4, 8], Some((oh, ow)), interp, fill, 0.7).unwrap();
                let t = transforms(4);
                let (in_len, out_len) = (h * w * c, oh * ow * c);
                let zero = r.forward(&vec![0.0; 4 * in_len], &t).unwrap(); // the fill's affine part
                let gy = noise(4 * out_len, 3);
                let gx = r.backward(&gy, &t).unwrap();
                for n in 0..4 {
                    for j in 0..in_len {
                        let mut unit = vec![0.0; 4 * in_len];
                        unit[n * in_len + j] = 1.0;
                        let col = r.forward(&unit, &t).unwrap();
                        let expected: f64 = (0..out_len)
                            .map(|i| (col[n * out_len + i] - zero[n * out_len + i]) as f64 * gy[n * out_len + i] as f64)
                            .sum();
                        let got = gx[n * in_len + j] as f64;
                        assert!((got - expected).abs() < 1e-5, "{interp:?}/{fill:?} n={n} j={j}: {got} vs {expected}");
                    }
                }
            }
        }
    }

    #[test]
    fn adjoint_dot_product_identity() {
        // <M x, dy> = <x, Mᵀ dy> with fill 0 (M is then linear, not affine).
        for interp in INTERPOLATIONS {
            for fill in FILL_MODES {
                let r = Resample::new(&[3, 9, 11, 3], &[3, 8], None, interp, fill, 0.0).unwrap();
                let t = transforms(3);
                let x = noise(3 * 9 * 11 * 3, 1);
                let dy = noise(3 * 9 * 11 * 3, 2);
                let lhs = dot(&r.forward(&x, &t).unwrap(), &dy);
                let rhs = dot(&x, &r.backward(&dy, &t).unwrap());
                assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{interp:?}/{fill:?}: {lhs} vs {rhs}");
            }
        }
    }

    #[test]
    fn backward_folds_like_forward() {
        // Shift left by one: output x reads input x + 1, the last column folds per fill mode.
        let shift = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        let g = [1.0, 10.0, 100.0];
        let grad = |fill| {
            Resample::new(&[1, 1, 3, 1], &[1, 8], None, Interpolation::Nearest, fill, 5.0).unwrap().backward(&g, &shift)
                .unwrap()
        };
        assert_eq!(grad(FillMode::Constant), [0.0, 1.0, 10.0]); // the fill value takes no gradient
        assert_eq!(grad(FillMode::Nearest), [0.0, 1.0, 110.0]); // clamped onto the last pixel
        assert_eq!(grad(FillMode::Reflect), [0.0, 1.0, 110.0]);
        assert_eq!(grad(FillMode::Wrap), [100.0, 1.0, 10.0]); // wrapped onto the first
    }

    #[test]
    fn backward_is_deterministic_across_thread_counts() {
        let r = Resample::new(&[5, 13, 9, 3], &[5, 8], Some((11, 10)), Interpolation::Bilinear, FillMode::Reflect, 0.0)
            .unwrap();
        let (t, gy) = (transforms(5), noise(5 * 11 * 10 * 3, 9));
        let runs: Vec<Vec<f32>> = [1, 2, 4]
            .iter()
            .map(|&threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| r.backward(&gy, &t).unwrap())
            })
            .collect();
        assert_eq!(runs[0], runs[1]);
        assert_eq!(runs[0], runs[2]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let (i, f) = (Interpolation::Bilinear, FillMode::Wrap);
        assert!(Resample::new(&[1, 2, 3], &[1, 8], None, i, f, 0.0).is_err());
        assert!(Resample::new(&[2, 2, 3, 1], &[1, 8], None, i, f, 0.0).is_err());
        assert!(Resample::for_gradient(&[2, 3, 1], &[2, 8], None, i, f).is_err());
        assert!(Resample::new(&[usize::MAX, 2, 2, 1], &[usize::MAX, 8], None, i, f, 0.0).is_err());
        let r = Resample::new(&[1, 2, 3, 1], &[1, 8], None, i, f, 0.0).unwrap();
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        assert!(r.forward(&[0.0; 5], &id).is_err());
        assert!(r.backward(&[0.0; 6], &id[..7]).is_err());
        // Empty images with a non-empty output, singular and non-finite transforms: no panic.
        for fill in FILL_MODES {
            let empty = Resample::new(&[1, 0, 3, 2], &[1, 8], Some((2, 2)), i, fill, 4.0).unwrap();
            assert_eq!(empty.forward(&[], &id).unwrap(), [4.0; 8]);
            assert!(empty.backward(&[1.0; 8], &id).unwrap().is_empty());
            let r = Resample::new(&[1, 3, 3, 1], &[1, 8], None, Interpolation::Nearest, fill, 0.0).unwrap();
            for t in [[f32::NAN; 8], [f32::INFINITY, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]] {
                r.forward(&[1.0; 9], &t).unwrap();
                r.backward(&[1.0; 9], &t).unwrap();
            }
        }
    }

    #[test]
    fn identity_and_shift() {
        let img = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(run(&img, 2, 3, id, Interpolation::Bilinear, FillMode::Constant), img);
        // Output x reads input x + 1: shift left, the last column filled.
        let shift = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(run(&img, 2, 3, shift, Interpolation::Nearest, FillMode::Constant), [2.0, 3.0, -1.0, 5.0, 6.0, -1.0]);
        assert_eq!(run(&img, 2, 3, shift, Interpolation::Nearest, FillMode::Nearest), [2.0, 3.0, 3.0, 5.0, 6.0, 6.0]);
        assert_eq!(run(&img, 2, 3, shift, Interpolation::Nearest, FillMode::Wrap), [2.0, 3.0, 1.0, 5.0, 6.0, 4.0]);
        assert_eq!(run(&img, 2, 3, shift, Interpolation::Nearest, FillMode::Reflect), [2.0, 3.0, 3.0, 5.0, 6.0, 6.0]);
    }

    #[test]
    fn inside_fast_path_equals_the_general_path() {
        // Every output pixel through `source` + `sample` only, against `forward` (which takes the in-bounds
        // shortcut): bit-identical, for odd sizes, 1 and 3 channels, every fill mode, affine and projective maps.
        for &(h, w, c) in &[(7, 9, 3), (5, 4, 1), (2, 2, 3), (1, 6, 2), (11, 8, 4)] {
            for fill in FILL_MODES {
                let batch = 4;
                let img = noise(batch * h * w * c, (h * 31 + w * 7 + c) as u64);
                let t = transforms(batch);
                let r = Resample::new(&[batch, h, w, c], &[batch, 8], Some((h + 1, w)), Interpolation::Bilinear,
                                      fill, -0.5).unwrap();
                let fast = r.forward(&img, &t).unwrap();
                let (image_len, out_w) = (h * w * c, w);
                let mut slow = vec![0.0f32; fast.len()];
                for n in 0..batch {
                    for y in 0..h + 1 {
                        for x in 0..out_w {
                            let px = &mut slow[((n * (h + 1) + y) * out_w + x) * c..][..c];
                            match r.source(&t[n * 8..][..8], x, y) {
                                Some((sx, sy)) => r.sample(&img[n * image_len..][..image_len], sx, sy, px),
                                None => px.fill(r.fill_value),
                            }
                        }
                    }
                }
                assert_eq!(fast, slow, "{h}x{w}x{c} {fill:?}");
            }
        }
    }

    #[test]
    fn bilinear_half_pixel() {
        let img = [0.0, 10.0];
        let half = [1.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(run(&img, 1, 2, half, Interpolation::Bilinear, FillMode::Nearest), [5.0, 10.0]);
    }

    #[test]
    fn reflect_folds_far_coordinates() {
        // len 3: ... c b a | a b c | c b a ...
        assert_eq!(FillMode::Reflect.map(-1.0, 3), 0.0);
        assert_eq!(FillMode::Reflect.map(-3.0, 3), 2.0);
        assert_eq!(FillMode::Reflect.map(4.0, 3), 1.0);
        assert_eq!(FillMode::Wrap.map(-1.0, 3), 2.0);
    }
}
