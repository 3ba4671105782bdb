//! Transposed 2-D convolution (Keras `Conv2DTranspose`, TF's `conv2d_transpose`): the adjoint of a
//! convolution, computed with that convolution's own kernels and no GEMM of its own.
//!
//! With input x (n, h, w, cin), kernel (kh, kw, filters, cin) as Keras stores it and output size
//! (oh, ow), the transposed convolution is the input gradient of the convolution `conv` that maps
//! (n, oh, ow, filters) to (n, h, w, cin) with that same kernel (its (kh, kw, in, out) layout read as is),
//! so: forward = conv.input_grad(x); input gradient = conv.forward(dy); kernel gradient =
//! conv.kernel_grad(dy, x). Like TF, the padding is the one `conv` has on an input of (oh, ow), and
//! (oh, ow) must map back onto (h, w).

use rayon::prelude::*;

use super::conv::grouped::GroupedConv;
use super::gemm::column_sums;
use super::geometry::Padding;
use super::LinearGrads;
use crate::error::{shape_err, OpResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvTranspose {
    /// The convolution this op is the transpose of: from this op's output to its input.
    pub conv: GroupedConv,
}

impl ConvTranspose {
    /// Geometry from an input (n, h, w, cin), a kernel (kh, kw, filters, cin) and the output's (oh, ow).
    pub fn new(x: &[usize], kernel: &[usize], output_size: (usize, usize), strides: (usize, usize), padding: Padding,
               dilation: (usize, usize)) -> OpResult<Self> {
        if x.len() != 4 {
            shape_err!("input must have rank 4 (batch, height, width, channels), got shape {x:?}");
        }
        if kernel.len() != 4 {
            shape_err!("kernel must have rank 4 (kh, kw, filters, in_channels), got shape {kernel:?}");
        }
        if x[3] != kernel[3] {
            shape_err!("input has {} channels but the kernel (kh, kw, filters, in_channels) expects {} (input {x:?}, kernel {kernel:?})",
                       x[3], kernel[3]);
        }
        let out = [x[0], output_size.0, output_size.1, kernel[2]];
        let conv = GroupedConv::new(&out, kernel, strides, padding, dilation, 1)?;
        if (conv.rows.output, conv.cols.output) != (x[1], x[2]) {
            shape_err!("an output of size {output_size:?} does not match the input {x:?}: a convolution with kernel {kernel:?}, \
                        strides {strides:?}, dilation {dilation:?} and this padding maps {output_size:?} to ({}, {}), not ({}, {})",
                       conv.rows.output, conv.cols.output, x[1], x[2]);
        }
        Ok(ConvTranspose { conv })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        self.conv.input_shape()
    }

    /// y = conv_transpose(x, kernel) + bias.
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>) -> OpResult<Vec<f32>> {
        let mut y = self.conv.input_grad(kernel, x)?;
        if let Some(b) = bias {
            let filters = self.conv.cin;
            y.par_chunks_mut(filters * 1024).for_each(|block| {
                block.chunks_exact_mut(filters).for_each(|p| p.iter_mut().zip(b).for_each(|(v, b)| *v += b));
            });
        }
        Ok(y)
    }

    /// (grad_x if asked, grad_kernel, grad_bias) of `forward`, from the output's gradient `dy`.
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads> {
        let grad_x = need_dx.then(|| self.conv.forward(dy, kernel, None)).transpose()?;
        Ok((grad_x, self.conv.kernel_grad(dy, x)?, column_sums(dy, self.conv.cin)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    /// Direct scatter in f64: each input pixel adds its kernel-weighted values onto the output.
    fn naive(t: &ConvTranspose, x: &[f32], k: &[f32]) -> Vec<f64> {
        let c = &t.conv;
        let [n, oh, ow, f] = t.output_shape();
        let (h, w, ci, (kh, kw), (dh, dw)) = (c.rows.output, c.cols.output, c.cout, c.kernel, c.dilation);
        let mut y = vec![0.0; n * oh * ow * f];
        for b in 0..n { for iy in 0..h { for ix in 0..w { for ky in 0..kh { for kx in 0..kw {
            let (Some(oy), Some(ox)) = (c.rows.source(iy, ky * dh), c.cols.source(ix, kx * dw)) else { continue };
            for o in 0..f { for i in 0..ci {
                y[((b * oh + oy) * ow + ox) * f + o] += x[((b * h + iy) * w + ix) * ci + i] as f64 * k[((ky * kw + kx) * f + o) * ci + i] as f64;
            }}
        }}}}}
        y
    }

    #[test]
    fn forward_matches_naive_scatter() {
        for (xs, ks, out, s, pad, d) in [
            ([2, 3, 4, 2], [3, 3, 5, 2], (6, 8), (2, 2), Padding::Same, (1, 1)),
            ([1, 3, 3, 1], [2, 3, 2, 1], (8, 9), (3, 3), Padding::Valid, (1, 1)),
            ([2, 4, 5, 3], [3, 2, 1, 3], (6, 6), (1, 1), Padding::Valid, (1, 1)),
            ([1, 5, 4, 2], [3, 3, 3, 2], (9, 8), (1, 1), Padding::Valid, (2, 2)),
        ] {
            let t = ConvTranspose::new(&xs, &ks, out, s, pad, d).unwrap();
            let (x, k) = (data(xs.iter().product(), 1), data(ks.iter().product(), 5));
            let y = t.forward(&x, &k, None).unwrap();
            for (a, b) in y.iter().zip(naive(&t, &x, &k)) {
                assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn output_size_must_map_back_onto_the_input() {
        assert!(ConvTranspose::new(&[1, 3, 3, 1], &[3, 3, 2, 1], (9, 6), (2, 2), Padding::Valid, (1, 1)).is_err());
        assert!(ConvTranspose::new(&[1, 3, 3, 1], &[3, 3, 2, 2], (6, 6), (2, 2), Padding::Same, (1, 1)).is_err());
    }
}
