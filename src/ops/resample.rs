//! Resampling kernels: nearest and bilinear up-sampling and resizing (NHWC), forward and backward.
//!
//! Semantics are TensorFlow's `tf.image.resize` (what Keras 3's `ops.image.resize`, `Resizing` and
//! `UpSampling2D(interpolation="bilinear")` call): half-pixel centres, no corner alignment, no
//! antialiasing. Along each axis an output index `o` reads the input point `s = (o + 0.5) * scale`
//! (nearest: index `floor(s)`, clamped) or `s - 0.5` (bilinear: the two neighbours `floor` and `ceil`,
//! clamped to the image, weighted by `s - floor(s)`), with `scale = in / out` in float32, exactly as
//! TF's CPU kernels compute it. Bilinear values use TF's form `top + (bottom - top) * y_lerp` with
//! `top = left + (right - left) * x_lerp`, so outputs agree with TF to rounding.
//!
//! The resize is linear, y = M x; the input gradient is its adjoint dx = Mᵀ dy, computed in two
//! deterministic passes (no atomics): every gradient row is scattered along the width into a
//! (batch, out_height, width, channels) buffer, then each input row gathers the buffer rows that
//! read it, with their weights. Both passes, and the forward, run in parallel over batch × rows.

use rayon::prelude::*;

use crate::alloc::zeros;
use crate::error::{shape_err, OpResult};
pub use crate::ops::augment::Interpolation;

/// What one output index reads along an axis: `v[lo] + (v[hi] - v[lo]) * lerp` (nearest: lo == hi, lerp 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tap {
    pub lo: usize,
    pub hi: usize,
    pub lerp: f32,
}

/// TF's taps for resizing an axis of `len` (>= 1) samples to `out` samples.
pub fn taps(len: usize, out: usize, interpolation: Interpolation) -> Vec<Tap> {
    let scale = len as f32 / out as f32;
    let last = len as i64 - 1;
    (0..out)
        .map(|o| match interpolation {
            Interpolation::Nearest => {
                let i = (((o as f32 + 0.5) * scale).floor() as i64).clamp(0, last) as usize;
                Tap { lo: i, hi: i, lerp: 0.0 }
            }
            Interpolation::Bilinear => {
                let s = (o as f32 + 0.5) * scale - 0.5;
                let f = s.floor();
                let lo = (f as i64).clamp(0, last) as usize;
                let hi = (s.ceil() as i64).clamp(0, last) as usize;
                Tap { lo, hi, lerp: s - f }
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
pub struct Resize {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub out_height: usize,
    pub out_width: usize,
    pub interpolation: Interpolation,
}

fn check_len(actual: usize, expected: usize, what: &str) -> OpResult<()> {
    if actual != expected {
        shape_err!("{what} has {actual} elements, expected {expected}");
    }
    Ok(())
}

impl Resize {
    /// Geometry of resizing `images` (NHWC) to `out` = (height, width).
    pub fn new(images: &[usize], out: (usize, usize), interpolation: Interpolation) -> OpResult<Self> {
        if images.len() != 4 {
            shape_err!("images must have rank 4 (batch, height, width, channels), got shape {images:?}");
        }
        if images[1] == 0 || images[2] == 0 {
            shape_err!("cannot resize images of shape {images:?}: height and width must be at least 1");
        }
        if out.0 == 0 || out.1 == 0 {
            shape_err!("the output size must be at least 1x1, got {out:?} for images of shape {images:?}");
        }
        let resize = Resize {
            batch: images[0], height: images[1], width: images[2], channels: images[3],
            out_height: out.0, out_width: out.1, interpolation,
        };
        // Both buffers must have a size that fits (the allocations report it as a MemoryError otherwise).
        crate::alloc::checked_len(&resize.input_shape(), "images")?;
        crate::alloc::checked_len(&resize.output_shape(), "the output")?;
        crate::alloc::checked_len(&[resize.batch, resize.out_height, resize.width, resize.channels], "the scratch")?;
        Ok(resize)
    }

    /// Geometry of the adjoint: `grad` is the output gradient (NHWC), `image` = (height, width) of the
    /// images that were resized.
    pub fn for_gradient(grad: &[usize], image: (usize, usize), interpolation: Interpolation) -> OpResult<Self> {
        if grad.len() != 4 {
            shape_err!("grad_y must have rank 4 (batch, height, width, channels), got shape {grad:?}");
        }
        Resize::new(&[grad[0], image.0, image.1, grad[3]], (grad[1], grad[2]), interpolation)
    }

    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.height, self.width, self.channels]
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_height, self.out_width, self.channels]
    }

    /// Resize `images` (the input shape) into the output shape.
    pub fn forward(&self, images: &[f32]) -> OpResult<Vec<f32>> {
        check_len(images.len(), self.input_shape().iter().product(), "images")?;
        let mut out = zeros::<f32>(&self.output_shape(), "the output")?;
        let (c, oh) = (self.channels, self.out_height);
        let row_len = self.out_width * c;
        if row_len == 0 || out.is_empty() {
            return Ok(out);
        }
        let (ty, tx) = (taps(self.height, oh, self.interpolation), taps(self.width, self.out_width, self.interpolation));
        let image_len = self.height * self.width * c;
        let in_row = self.width * c;
        let nearest = self.interpolation == Interpolation::Nearest;
        out.par_chunks_mut(row_len).enumerate().for_each(|(r, row)| {
            let (b, t) = (r / oh, ty[r % oh]);
            let image = &images[b * image_len..(b + 1) * image_len];
            let top = &image[t.lo * in_row..(t.lo + 1) * in_row];
            let bottom = &image[t.hi * in_row..(t.hi + 1) * in_row];
            for (px, tap) in row.chunks_exact_mut(c).zip(&tx) {
                let (l, h) = (tap.lo * c, tap.hi * c);
                if nearest {
                    px.copy_from_slice(&top[l..l + c]);
                    continue;
                }
                let (tl, th, bl, bh) = (&top[l..l + c], &top[h..h + c], &bottom[l..l + c], &bottom[h..h + c]);
                for ((((v, &a), &b), &p), &q) in px.iter_mut().zip(tl).zip(th).zip(bl).zip(bh) {
                    let upper = a + (b - a) * tap.lerp;
                    let lower = p + (q - p) * tap.lerp;
                    *v = upper + (lower - upper) * t.lerp;
                }
            }
        });
        Ok(out)
    }

    /// The input gradient: the adjoint of `forward` applied to `grad_y` (the output shape).
    pub fn backward(&self, grad_y: &[f32]) -> OpResult<Vec<f32>> {
        check_len(grad_y.len(), self.output_shape().iter().product(), "grad_y")?;
        let mut grad_x = zeros::<f32>(&self.input_shape(), "the input gradient")?;
        let c = self.channels;
        let (in_row, out_row) = (self.width * c, self.out_width * c);
        if grad_x.is_empty() {
            return Ok(grad_x);
        }
        let (ty, tx) = (taps(self.height, self.out_height, self.interpolation),
                        taps(self.width, self.out_width, self.interpolation));
        // Pass 1: scatter each gradient row along the width (adjoint of the horizontal interpolation).
        let mut rows = zeros::<f32>(&[self.batch, self.out_height, self.width, c], "the scratch")?;
        rows.par_chunks_mut(in_row).zip(grad_y.par_chunks(out_row)).for_each(|(acc, g)| {
            for (gp, tap) in g.chunks_exact(c).zip(&tx) {
                axpy(&mut acc[tap.lo * c..(tap.lo + 1) * c], 1.0 - tap.lerp, gp);
                if tap.lerp != 0.0 {
                    axpy(&mut acc[tap.hi * c..(tap.hi + 1) * c], tap.lerp, gp);
                }
            }
        });
        // Pass 2: each input row gathers the scattered rows that read it (adjoint of the vertical one).
        let readers = readers_by_input(&ty, self.height);
        let (h, oh) = (self.height, self.out_height);
        grad_x.par_chunks_mut(in_row).enumerate().for_each(|(r, dx)| {
            let (b, i) = (r / h, r % h);
            for &(o, w) in &readers[i] {
                axpy(dx, w, &rows[(b * oh + o) * in_row..(b * oh + o + 1) * in_row]);
            }
        });
        Ok(grad_x)
    }
}

/// `y += a * x` (the slices have equal lengths).
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (d, &s) in y.iter_mut().zip(x) {
        *d += a * s;
    }
}

/// For each of `len` input indices, the (output index, weight) pairs that read it (zero weights left out).
fn readers_by_input(taps: &[Tap], len: usize) -> Vec<Vec<(usize, f32)>> {
    let mut readers = vec![Vec::new(); len];
    for (o, t) in taps.iter().enumerate() {
        let below = 1.0 - t.lerp;
        if below != 0.0 {
            readers[t.lo].push((o, below));
        }
        if t.lerp != 0.0 {
            readers[t.hi].push((o, t.lerp));
        }
    }
    readers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn nearest_integer_upsampling_repeats_pixels() {
        let r = Resize::new(&[1, 2, 3, 2], (4, 9), Interpolation::Nearest).unwrap();
        let x = data(12, 1);
        let y = r.forward(&x).unwrap();
        for o in 0..4 {
            for j in 0..9 {
                for k in 0..2 {
                    assert_eq!(y[(o * 9 + j) * 2 + k], x[((o / 2) * 3 + j / 3) * 2 + k]);
                }
            }
        }
    }

    #[test]
    fn backward_is_the_adjoint() {
        for interpolation in [Interpolation::Nearest, Interpolation::Bilinear] {
            for (shape, out) in [([2, 3, 5, 2], (7, 4)), ([1, 5, 4, 1], (2, 9)), ([1, 1, 1, 3], (3, 2))] {
                let r = Resize::new(&shape, out, interpolation).unwrap();
                let x = data(shape.iter().product(), 3);
                let g = data(r.output_shape().iter().product(), 7);
                let y = r.forward(&x).unwrap();
                let dx = r.backward(&g).unwrap();
                let lhs: f64 = y.iter().zip(&g).map(|(a, b)| *a as f64 * *b as f64).sum();
                let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| *a as f64 * *b as f64).sum();
                assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{interpolation:?} {shape:?}: {lhs} vs {rhs}");
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Resize::new(&[1, 0, 3, 1], (2, 2), Interpolation::Bilinear).is_err());
        assert!(Resize::new(&[1, 2, 3, 1], (0, 2), Interpolation::Bilinear).is_err());
        assert!(Resize::new(&[2, 3, 1], (2, 2), Interpolation::Bilinear).is_err());
    }
}
