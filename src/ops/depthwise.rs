//! Depthwise 2-D convolution (Keras `DepthwiseConv2D`, the first half of `SeparableConv2D`): every input
//! channel c convolved with its own `depth_multiplier` filters, output channel c·dm + m (TF's order).
//!
//! Kernel (kh, kw, cin, dm) as Keras stores it: the taps of one window position are a contiguous
//! cin·dm vector, like an output pixel, so every inner loop is a contiguous multiply-add over channels
//! (compiled for AVX-512 / AVX2 / baseline by `multiversion!`). Work is split over output rows
//! (forward, kernel gradient) or input rows (input gradient, written as a gather so rows never race);
//! the kernel gradient sums per-chunk partials in a fixed order, so no result depends on the thread count.

use rayon::prelude::*;

use super::conv::{partial_count, sum_partials};
use super::geometry::{Axis, Padding};
use super::gemm::column_sums;
use super::simd::multiversion;
use super::LinearGrads;
use crate::alloc::zeros;
use crate::error::{shape_err, OpError, OpResult};

/// Below about this much work per call the rows run on the calling thread.
const PARALLEL_MIN_FLOPS: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depthwise {
    pub batch: usize,
    pub cin: usize,
    pub multiplier: usize,
    /// Axes whose `window` is the dilated extent (k−1)·d+1.
    pub rows: Axis,
    pub cols: Axis,
    pub kernel: (usize, usize),
    pub dilation: (usize, usize),
}

impl Depthwise {
    /// Geometry from an input (n, h, w, cin) and a kernel (kh, kw, cin, depth_multiplier).
    pub fn new(x: &[usize], kernel: &[usize], strides: (usize, usize), padding: Padding, dilation: (usize, usize))
               -> OpResult<Self> {
        if x.len() != 4 {
            shape_err!("input must have rank 4 (batch, height, width, channels), got shape {x:?}");
        }
        if kernel.len() != 4 {
            shape_err!("kernel must have rank 4 (kh, kw, in_channels, depth_multiplier), got shape {kernel:?}");
        }
        if x[3] != kernel[2] {
            shape_err!("input has {} channels but the kernel expects {} (input {x:?}, kernel {kernel:?})", x[3], kernel[2]);
        }
        if x[3] == 0 || kernel[3] == 0 {
            shape_err!("channels and depth_multiplier must be positive (input {x:?}, kernel {kernel:?})");
        }
        if strides.0 == 0 || strides.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
            shape_err!("strides and dilation_rate must be positive, got {strides:?} and {dilation:?}");
        }
        let extent = |k: usize, d: usize| k.checked_sub(1)?.checked_mul(d)?.checked_add(1);
        let axis = |n, k, d, s| extent(k, d).and_then(|e| Axis::new(n, e, s, padding));
        let (Some(rows), Some(cols)) = (axis(x[1], kernel[0], dilation.0, strides.0), axis(x[2], kernel[1], dilation.1, strides.1)) else {
            shape_err!("kernel {kernel:?} with dilation {dilation:?} is larger than the input {x:?} with 'valid' padding (or has a zero size)");
        };
        let conv = Depthwise { batch: x[0], cin: x[3], multiplier: kernel[3], rows, cols, kernel: (kernel[0], kernel[1]), dilation };
        let [n, oh, ow, co] = conv.output_shape_checked().ok_or_else(|| OpError::Memory(format!(
            "a depthwise convolution of input {x:?} with kernel {kernel:?} is too large to compute")))?;
        if [n, oh, ow, co, kernel[0], kernel[1], partial_count(n * oh * ow)].iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none()
            || x.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none() {
            return Err(OpError::Memory(format!("a depthwise convolution of input {x:?} with kernel {kernel:?} is too large to compute")));
        }
        Ok(conv)
    }

    fn output_shape_checked(&self) -> Option<[usize; 4]> {
        Some([self.batch, self.rows.output, self.cols.output, self.cin.checked_mul(self.multiplier)?])
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.output, self.cols.output, self.cin * self.multiplier]
    }

    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.input, self.cols.input, self.cin]
    }

    fn cout(&self) -> usize {
        self.cin * self.multiplier
    }

    fn taps(&self) -> usize {
        self.kernel.0 * self.kernel.1
    }

    /// Rows per work item so that a tiny call stays on one thread.
    fn min_rows(&self, row_len: usize) -> usize {
        PARALLEL_MIN_FLOPS.div_ceil((2 * row_len * self.taps() * self.multiplier).max(1))
    }

    /// y = depthwise(x, kernel) + bias, shape `output_shape()`.
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>) -> OpResult<Vec<f32>> {
        let mut y = zeros(&self.output_shape(), "the output")?;
        let row_len = self.cols.output * self.cout();
        if row_len > 0 {
            y.par_chunks_mut(row_len).with_min_len(self.min_rows(row_len)).enumerate()
                .for_each(|(r, out)| forward_row(self, x, kernel, bias, r, out));
        }
        Ok(y)
    }

    /// The input's gradient from the output's gradient `dy`.
    pub fn input_grad(&self, kernel: &[f32], dy: &[f32]) -> OpResult<Vec<f32>> {
        let mut dx = zeros(&self.input_shape(), "the input gradient")?;
        let row_len = self.cols.input * self.cin;
        if row_len > 0 {
            dx.par_chunks_mut(row_len).with_min_len(self.min_rows(row_len)).enumerate()
                .for_each(|(r, d)| input_grad_row(self, kernel, dy, r, d));
        }
        Ok(dx)
    }

    /// The kernel's gradient, summed over chunks of output rows fixed by the shape alone.
    pub fn kernel_grad(&self, x: &[f32], dy: &[f32]) -> OpResult<Vec<f32>> {
        let len = self.taps() * self.cout();
        let rows = self.batch * self.rows.output;
        let chunks = partial_count(rows * self.cols.output).min(rows.max(1));
        let per_chunk = rows.div_ceil(chunks);
        let mut partials = zeros(&[chunks, len], "the kernel-gradient partial sums")?;
        if len > 0 {
            partials.par_chunks_mut(len).enumerate().for_each(|(i, part)| {
                for r in i * per_chunk..((i + 1) * per_chunk).min(rows) {
                    kernel_grad_row(self, x, dy, r, part);
                }
            });
        }
        sum_partials(&partials, len)
    }

    /// (grad_x if asked, grad_kernel, grad_bias) of `forward`.
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads> {
        let grad_x = need_dx.then(|| self.input_grad(kernel, dy)).transpose()?;
        Ok((grad_x, self.kernel_grad(x, dy)?, column_sums(dy, self.cout())?))
    }

    /// The input pixel (offset of its channel vector in `x`) that tap (ky, kx) of output (n, oy, ox) reads.
    #[inline(always)]
    fn source(&self, n: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
        let iy = self.rows.source(oy, ky * self.dilation.0)?;
        let ix = self.cols.source(ox, kx * self.dilation.1)?;
        Some(((n * self.rows.input + iy) * self.cols.input + ix) * self.cin)
    }
}

/// The output coordinate whose tap `t` reads input coordinate `i` along `axis`, if any.
#[inline(always)]
fn reader(axis: &Axis, i: usize, t: usize) -> Option<usize> {
    let at = (i + axis.pad_before).checked_sub(t)?;
    (at % axis.stride == 0 && at / axis.stride < axis.output).then_some(at / axis.stride)
}

/// out[c·dm + m] += a[c] · b[c·dm + m] (one window tap of the forward, one pixel of the kernel gradient).
#[inline(always)]
fn spread_mul_add(out: &mut [f32], a: &[f32], b: &[f32], dm: usize) {
    if dm == 1 {
        out.iter_mut().zip(a).zip(b).for_each(|((o, &p), &q)| *o += p * q);
    } else {
        for ((o, &p), q) in out.chunks_exact_mut(dm).zip(a).zip(b.chunks_exact(dm)) {
            o.iter_mut().zip(q).for_each(|(o, &q)| *o += p * q);
        }
    }
}

multiversion! {
    /// Output row r (= n·oh + oy) of the forward pass.
    fn forward_row(c: &Depthwise, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, r: usize, out: &mut [f32]) {
        let (cout, (kh, kw)) = (c.cout(), c.kernel);
        let (n, oy) = (r / c.rows.output, r % c.rows.output);
        for (ox, o) in out.chunks_exact_mut(cout).enumerate() {
            match bias {
                Some(b) => o.copy_from_slice(b),
                None => o.fill(0.0),
            }
            for ky in 0..kh {
                for kx in 0..kw {
                    if let Some(at) = c.source(n, oy, ox, ky, kx) {
                        spread_mul_add(o, &x[at..][..c.cin], &kernel[(ky * kw + kx) * cout..][..cout], c.multiplier);
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Input row r (= n·h + iy) of the input gradient, gathered from the outputs that read it.
    fn input_grad_row(c: &Depthwise, kernel: &[f32], dy: &[f32], r: usize, d: &mut [f32]) {
        let (cout, dm, (kh, kw), (dh, dw)) = (c.cout(), c.multiplier, c.kernel, c.dilation);
        let (n, iy) = (r / c.rows.input, r % c.rows.input);
        for (ix, dst) in d.chunks_exact_mut(c.cin).enumerate() {
            for ky in 0..kh {
                let Some(oy) = reader(&c.rows, iy, ky * dh) else { continue };
                for kx in 0..kw {
                    let Some(ox) = reader(&c.cols, ix, kx * dw) else { continue };
                    let g = &dy[((n * c.rows.output + oy) * c.cols.output + ox) * cout..][..cout];
                    let k = &kernel[(ky * kw + kx) * cout..][..cout];
                    if dm == 1 {
                        dst.iter_mut().zip(g).zip(k).for_each(|((s, &p), &q)| *s += p * q);
                    } else {
                        for ((s, g), k) in dst.iter_mut().zip(g.chunks_exact(dm)).zip(k.chunks_exact(dm)) {
                            *s += g.iter().zip(k).map(|(p, q)| p * q).sum::<f32>();
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Adds output row r's contribution to the kernel gradient `part` (kh·kw·cout).
    fn kernel_grad_row(c: &Depthwise, x: &[f32], dy: &[f32], r: usize, part: &mut [f32]) {
        let (cout, (kh, kw)) = (c.cout(), c.kernel);
        let (n, oy) = (r / c.rows.output, r % c.rows.output);
        let row = &dy[r * c.cols.output * cout..][..c.cols.output * cout];
        for (ox, g) in row.chunks_exact(cout).enumerate() {
            for ky in 0..kh {
                for kx in 0..kw {
                    if let Some(at) = c.source(n, oy, ox, ky, kx) {
                        spread_mul_add(&mut part[(ky * kw + kx) * cout..][..cout], &x[at..][..c.cin], g, c.multiplier);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    fn naive(c: &Depthwise, x: &[f32], k: &[f32]) -> Vec<f64> {
        let [n, oh, ow, co] = c.output_shape();
        let (dm, (kh, kw)) = (c.multiplier, c.kernel);
        let mut y = vec![0.0; n * oh * ow * co];
        for b in 0..n { for oy in 0..oh { for ox in 0..ow { for o in 0..co {
            let mut s = 0.0f64;
            for ky in 0..kh { for kx in 0..kw {
                if let Some(at) = c.source(b, oy, ox, ky, kx) {
                    s += x[at + o / dm] as f64 * k[(ky * kw + kx) * co + o] as f64;
                }
            }}
            y[((b * oh + oy) * ow + ox) * co + o] = s;
        }}}}
        y
    }

    #[test]
    fn forward_matches_naive_and_backward_is_its_adjoint() {
        for (xs, ks, s, pad, d) in [
            ([2, 7, 6, 3], [3, 2, 3, 1], (1, 1), Padding::Same, (1, 1)),
            ([1, 9, 8, 2], [3, 3, 2, 3], (2, 3), Padding::Same, (1, 1)),
            ([3, 6, 7, 1], [2, 2, 1, 2], (1, 1), Padding::Valid, (2, 3)),
            ([1, 5, 5, 4], [1, 1, 4, 2], (3, 3), Padding::Valid, (1, 1)),
            ([2, 40, 30, 8], [3, 3, 8, 1], (1, 1), Padding::Same, (2, 2)),
        ] {
            let c = Depthwise::new(&xs, &ks, s, pad, d).unwrap();
            let (x, k) = (data(xs.iter().product(), 1), data(ks.iter().product(), 7));
            let y = c.forward(&x, &k, None).unwrap();
            for (a, b) in y.iter().zip(naive(&c, &x, &k)) {
                assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
            }
            let dy = data(y.len(), 11);
            let (dx, dk, _) = c.backward(&x, &k, &dy, true).unwrap();
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
            let lhs = dot(&dy, &y);
            assert!((lhs - dot(&dx.unwrap(), &x)).abs() < 1e-3 * lhs.abs().max(1.0));
            assert!((lhs - dot(&dk, &k)).abs() < 1e-3 * lhs.abs().max(1.0));
        }
    }

    #[test]
    fn shape_errors() {
        assert!(Depthwise::new(&[1, 5, 5, 2], &[3, 3, 3, 1], (1, 1), Padding::Valid, (1, 1)).is_err());
        assert!(Depthwise::new(&[1, 2, 5, 2], &[3, 3, 2, 1], (1, 1), Padding::Valid, (1, 1)).is_err());
        assert!(Depthwise::new(&[1, 5, 5, 2], &[3, 3, 2, 1], (1, 1), Padding::Valid, (3, 1)).is_err());
        assert!(Depthwise::new(&[1, 5, 5, 2], &[3, 3, 2, 0], (1, 1), Padding::Valid, (1, 1)).is_err());
    }
}
