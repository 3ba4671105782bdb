//! 2-D convolution with dilation and groups (Keras `dilation_rate`, `groups`), through im2col + GEMM
//! per group: beside `Conv2d` (the hot path: dilation 1, one group), and the engine of `Conv1D` (height 1)
//! and `Conv2DTranspose` (whose forward is this convolution's input gradient, `input_grad`).
//!
//! Kernel (kh, kw, cin/groups, cout) as Keras stores it: read as a (taps × cout) matrix, group g's
//! columns are g·cout/g.. and its im2col rows hold input channels g·cin/groups.. only. Every GEMM
//! addresses its group's columns in place through the leading dimension, so nothing is repacked.
//! Dilation d spreads the taps: tap t of an axis reads input o·stride + t·d − pad_before, and the axis
//! geometry (output size, TF 'same' padding) is that of a window of the dilated extent (k−1)·d+1.

use rayon::prelude::*;

use super::{partial_count, sum_partials};
use crate::alloc::{zeros, FirstError};
use crate::error::{shape_err, OpError, OpResult};
use crate::ops::gemm::{column_sums, sgemm};
use crate::ops::geometry::{Axis, Padding};
use crate::ops::LinearGrads;
use crate::ops::PARALLEL_MIN_FLOPS;

/// Output pixels per im2col block (BLOCK_PIXELS × taps floats stay in L2).
const BLOCK_PIXELS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupedConv {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub groups: usize,
    /// Axes whose `window` is the dilated extent (k−1)·d+1.
    pub rows: Axis,
    pub cols: Axis,
    pub kernel: (usize, usize),
    pub dilation: (usize, usize),
}

impl GroupedConv {
    /// Geometry from an input (n, h, w, cin) and a kernel (kh, kw, cin/groups, cout).
    pub fn new(x: &[usize], kernel: &[usize], strides: (usize, usize), padding: Padding, dilation: (usize, usize),
               groups: usize) -> OpResult<Self> {
        if x.len() != 4 {
            shape_err!("input must have rank 4 (batch, height, width, channels), got shape {x:?}");
        }
        if kernel.len() != 4 {
            shape_err!("kernel must have rank 4 (kh, kw, in_channels / groups, filters), got shape {kernel:?}");
        }
        if strides.0 == 0 || strides.1 == 0 || dilation.0 == 0 || dilation.1 == 0 || groups == 0 {
            shape_err!("strides, dilation_rate and groups must be positive, got {strides:?}, {dilation:?}, {groups}");
        }
        if x[3] == 0 || kernel[3] == 0 || !x[3].is_multiple_of(groups) || !kernel[3].is_multiple_of(groups) {
            shape_err!("input channels ({}) and filters ({}) must be positive multiples of groups ({groups})", x[3], kernel[3]);
        }
        if kernel[2] * groups != x[3] {
            shape_err!("input has {} channels but the kernel expects {} × {groups} groups (input {x:?}, kernel {kernel:?})",
                       x[3], kernel[2]);
        }
        let extent = |k: usize, d: usize| k.checked_sub(1)?.checked_mul(d)?.checked_add(1);
        let axis = |n, k, d, s| extent(k, d).and_then(|e| Axis::new(n, e, s, padding));
        let (Some(rows), Some(cols)) = (axis(x[1], kernel[0], dilation.0, strides.0), axis(x[2], kernel[1], dilation.1, strides.1)) else {
            shape_err!("kernel {kernel:?} with dilation {dilation:?} is larger than the input {x:?} with 'valid' padding (or has a zero size)");
        };
        let conv = GroupedConv { batch: x[0], cin: x[3], cout: kernel[3], groups, rows, cols,
                                 kernel: (kernel[0], kernel[1]), dilation };
        let [n, oh, ow, co] = conv.output_shape();
        let products = [[n, oh, ow, co], [n, oh * ow.max(1), conv.taps(), 1], [BLOCK_PIXELS, conv.taps(), conv.cout, 2],
                        [n, x[1], x[2], x[3]]];
        if products.iter().any(|dims| dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none()) {
            return Err(OpError::Memory(format!(
                "a convolution of input {x:?} with kernel {kernel:?} and strides {strides:?} is too large to compute")));
        }
        Ok(conv)
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.output, self.cols.output, self.cout]
    }

    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.input, self.cols.input, self.cin]
    }

    fn image_len(&self) -> usize {
        self.rows.input * self.cols.input * self.cin
    }

    fn pixels_per_image(&self) -> usize {
        self.rows.output * self.cols.output
    }

    /// Length of one group's im2col row: kh · kw · cin/groups.
    fn taps(&self) -> usize {
        self.kernel.0 * self.kernel.1 * (self.cin / self.groups)
    }

    /// Parallel work items smaller than this many blocks are not worth a thread.
    fn min_blocks(&self) -> usize {
        PARALLEL_MIN_FLOPS.div_ceil((2 * BLOCK_PIXELS * self.taps() * self.cout / self.groups).max(1))
    }

    /// Group `g`'s im2col rows of global output pixels `first..first + col.len()/taps`.
    fn im2col(&self, x: &[f32], g: usize, first: usize, col: &mut [f32]) {
        let (cg, (kh, kw), (dh, dw)) = (self.cin / self.groups, self.kernel, self.dilation);
        let (ppi, ow, taps) = (self.pixels_per_image(), self.cols.output, self.taps());
        for (i, row) in col.chunks_exact_mut(taps).enumerate() {
            let pixel = first + i;
            let image = &x[(pixel / ppi) * self.image_len()..][..self.image_len()];
            let (oy, ox) = ((pixel % ppi) / ow, pixel % ow);
            for ky in 0..kh {
                for kx in 0..kw {
                    let dst = &mut row[(ky * kw + kx) * cg..][..cg];
                    match (self.rows.source(oy, ky * dh), self.cols.source(ox, kx * dw)) {
                        (Some(iy), Some(ix)) => dst.copy_from_slice(&image[(iy * self.cols.input + ix) * self.cin + g * cg..][..cg]),
                        _ => dst.fill(0.0),
                    }
                }
            }
        }
    }

    /// Scatter-add group `g`'s im2col-shaped gradient rows of pixels `first..` of one image onto its
    /// input gradient `dx`.
    fn col2im(&self, dcol: &[f32], g: usize, first: usize, dx: &mut [f32]) {
        let (cg, (kh, kw), (dh, dw)) = (self.cin / self.groups, self.kernel, self.dilation);
        let ow = self.cols.output;
        for (p, row) in dcol.chunks_exact(self.taps()).enumerate() {
            let (oy, ox) = ((first + p) / ow, (first + p) % ow);
            for ky in 0..kh {
                let Some(iy) = self.rows.source(oy, ky * dh) else { continue };
                for kx in 0..kw {
                    let Some(ix) = self.cols.source(ox, kx * dw) else { continue };
                    let dst = &mut dx[(iy * self.cols.input + ix) * self.cin + g * cg..][..cg];
                    dst.iter_mut().zip(&row[(ky * kw + kx) * cg..][..cg]).for_each(|(d, s)| *d += s);
                }
            }
        }
    }

    /// y = conv(x, kernel) + bias, shape `output_shape()`.
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>) -> OpResult<Vec<f32>> {
        let (taps, cout, og) = (self.taps(), self.cout, self.cout / self.groups);
        let mut y = zeros(&self.output_shape(), "the output")?;
        let failed = FirstError::default();
        y.par_chunks_mut(BLOCK_PIXELS * cout).with_min_len(self.min_blocks()).enumerate().for_each_init(
            || zeros::<f32>(&[BLOCK_PIXELS, taps], "the im2col scratch"),
            |col, (block, out)| {
                let col = match col {
                    Ok(col) => col,
                    Err(e) => return failed.record(e),
                };
                let rows = out.len() / cout;
                if let Some(b) = bias {
                    out.chunks_exact_mut(cout).for_each(|r| r.copy_from_slice(b));
                }
                let beta = if bias.is_some() { 1.0 } else { 0.0 };
                for g in 0..self.groups {
                    let col = &mut col[..rows * taps];
                    self.im2col(x, g, block * BLOCK_PIXELS, col);
                    sgemm(rows, taps, og, col, false, taps, &kernel[g * og..], false, cout, &mut out[g * og..], cout, beta);
                }
            },
        );
        failed.into_result()?;
        Ok(y)
    }

    /// The gradient of the input from the output's gradient `dy` (the transposed convolution of `dy`).
    pub fn input_grad(&self, kernel: &[f32], dy: &[f32]) -> OpResult<Vec<f32>> {
        let (taps, cout, og, ppi) = (self.taps(), self.cout, self.cout / self.groups, self.pixels_per_image());
        let mut dx = zeros(&self.input_shape(), "the input gradient")?;
        if self.image_len() == 0 || ppi == 0 {
            return Ok(dx);
        }
        let failed = FirstError::default();
        let min_images = (self.min_blocks() * BLOCK_PIXELS).div_ceil(ppi);
        // One image per work item: scatters into the same image never race.
        dx.par_chunks_mut(self.image_len()).with_min_len(min_images).enumerate().for_each_init(
            || zeros::<f32>(&[BLOCK_PIXELS, taps], "the im2col scratch"),
            |dcol, (n, dxn)| {
                let dcol = match dcol {
                    Ok(dcol) => dcol,
                    Err(e) => return failed.record(e),
                };
                for first in (0..ppi).step_by(BLOCK_PIXELS) {
                    let rows = BLOCK_PIXELS.min(ppi - first);
                    let dy = &dy[(n * ppi + first) * cout..];
                    for g in 0..self.groups {
                        let d = &mut dcol[..rows * taps];
                        // dcol (rows × taps) = dy_g (rows × og) · K_gᵀ, K_g read transposed in place.
                        sgemm(rows, og, taps, &dy[g * og..], false, cout, &kernel[g * og..], true, cout, d, taps, 0.0);
                        self.col2im(d, g, first, dxn);
                    }
                }
            },
        );
        failed.into_result()?;
        Ok(dx)
    }

    /// The kernel's gradient colᵀ · dy, summed over pixel chunks fixed by the shape alone (the result
    /// never depends on the thread count).
    pub fn kernel_grad(&self, x: &[f32], dy: &[f32]) -> OpResult<Vec<f32>> {
        let (taps, cout, og) = (self.taps(), self.cout, self.cout / self.groups);
        let pixels = self.batch * self.pixels_per_image();
        let chunks = partial_count(pixels);
        let per_chunk = pixels.div_ceil(chunks);
        let mut partials = zeros(&[chunks, taps, cout], "the kernel-gradient partial sums")?;
        let failed = FirstError::default();
        partials.par_chunks_mut((taps * cout).max(1)).enumerate().for_each_init(
            || zeros::<f32>(&[BLOCK_PIXELS, taps], "the im2col scratch"),
            |col, (i, part)| {
                let col = match col {
                    Ok(col) => col,
                    Err(e) => return failed.record(e),
                };
                let end = ((i + 1) * per_chunk).min(pixels);
                for first in (i * per_chunk..end).step_by(BLOCK_PIXELS) {
                    let rows = BLOCK_PIXELS.min(end - first);
                    for g in 0..self.groups {
                        let col = &mut col[..rows * taps];
                        self.im2col(x, g, first, col);
                        sgemm(taps, rows, og, col, true, taps, &dy[first * cout + g * og..], false, cout, &mut part[g * og..], cout, 1.0);
                    }
                }
            },
        );
        failed.into_result()?;
        sum_partials(&partials, taps * cout)
    }

    /// (grad_x if asked, grad_kernel, grad_bias) of `forward`.
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads> {
        let grad_x = need_dx.then(|| self.input_grad(kernel, dy)).transpose()?;
        Ok((grad_x, self.kernel_grad(x, dy)?, column_sums(dy, self.cout)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    /// Direct loops in f64: the unit tests' reference.
    fn naive(c: &GroupedConv, x: &[f32], k: &[f32]) -> Vec<f64> {
        let [n, oh, ow, co] = c.output_shape();
        let (h, w, ci, (kh, kw), (dh, dw)) = (c.rows.input, c.cols.input, c.cin, c.kernel, c.dilation);
        let (cg, og) = (ci / c.groups, co / c.groups);
        let mut y = vec![0.0; n * oh * ow * co];
        for b in 0..n { for oy in 0..oh { for ox in 0..ow { for o in 0..co {
            let g = o / og;
            let mut s = 0.0f64;
            for ky in 0..kh { for kx in 0..kw {
                let (Some(iy), Some(ix)) = (c.rows.source(oy, ky * dh), c.cols.source(ox, kx * dw)) else { continue };
                for i in 0..cg {
                    s += x[((b * h + iy) * w + ix) * ci + g * cg + i] as f64 * k[((ky * kw + kx) * cg + i) * co + o] as f64;
                }
            }}
            y[((b * oh + oy) * ow + ox) * co + o] = s;
        }}}}
        y
    }

    type Case = ([usize; 4], [usize; 4], (usize, usize), Padding, (usize, usize), usize);
    const SHAPES: [Case; 6] = [
        ([2, 7, 6, 4], [3, 2, 2, 6], (1, 1), Padding::Same, (2, 1), 2),
        ([1, 9, 9, 3], [3, 3, 1, 3], (2, 1), Padding::Valid, (1, 2), 3),
        ([3, 5, 8, 2], [2, 3, 2, 16], (1, 2), Padding::Same, (1, 1), 1),
        ([1, 11, 4, 6], [3, 1, 2, 9], (1, 1), Padding::Valid, (3, 1), 3),
        ([2, 1, 13, 4], [1, 3, 4, 5], (1, 3), Padding::Same, (1, 2), 1),
        ([1, 20, 20, 4], [3, 3, 1, 32], (1, 1), Padding::Same, (2, 2), 4),
    ];

    #[test]
    fn forward_matches_naive_and_backward_is_its_adjoint() {
        for (xs, ks, s, pad, d, groups) in SHAPES {
            let c = GroupedConv::new(&xs, &ks, s, pad, d, groups).unwrap();
            let (x, k) = (data(xs.iter().product(), 1), data(ks.iter().product(), 7));
            let y = c.forward(&x, &k, None).unwrap();
            for (a, b) in y.iter().zip(naive(&c, &x, &k)) {
                assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b} for {xs:?} {ks:?}");
            }
            let dy = data(y.len(), 11);
            let (dx, dk, db) = c.backward(&x, &k, &dy, true).unwrap();
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
            let lhs = dot(&dy, &y);
            assert!((lhs - dot(&dx.unwrap(), &x)).abs() < 1e-3 * lhs.abs().max(1.0));
            assert!((lhs - dot(&dk, &k)).abs() < 1e-3 * lhs.abs().max(1.0));
            assert_eq!(db.len(), c.cout);
        }
    }

    #[test]
    fn shape_errors() {
        let err = |x: [usize; 4], k: [usize; 4], g| GroupedConv::new(&x, &k, (1, 1), Padding::Valid, (1, 1), g).is_err();
        assert!(err([1, 5, 5, 4], [3, 3, 4, 4], 2)); // kernel should hold 4 / 2 channels
        assert!(err([1, 5, 5, 4], [3, 3, 2, 3], 2)); // filters not divisible
        assert!(err([1, 5, 5, 3], [3, 3, 1, 4], 2)); // input channels not divisible
        assert!(GroupedConv::new(&[1, 5, 5, 1], &[3, 3, 1, 1], (1, 1), Padding::Valid, (3, 3), 1).is_err());
        assert!(GroupedConv::new(&[1, 5, 5, 1], &[3, 3, 1, 1], (1, 1), Padding::Same, (3, 3), 1).is_ok());
    }
}
