//! Fully connected layer: y = x · W + b with x (n, in), W (in, out) as Keras stores it.

use rayon::prelude::*;


use super::activation::mask_by_relu;
use super::gemm::{affine, column_sums, sgemm, transpose};
use super::LinearGrads;
use crate::alloc::zeros;
use crate::error::{shape_err, OpResult};

/// Rows per parallel work item; fixed so results never depend on the thread count.
const BLOCK_ROWS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dense {
    pub batch: usize,
    pub inputs: usize,
    pub units: usize,
}

impl Dense {
    pub fn new(x: &[usize], kernel: &[usize]) -> OpResult<Self> {
        if x.len() != 2 {
            shape_err!("input must have rank 2 (batch, features), got shape {x:?}");
        }
        if kernel.len() != 2 {
            shape_err!("kernel must have rank 2 (in, out), got shape {kernel:?}");
        }
        if x[1] != kernel[0] {
            shape_err!("input has {} features but the kernel expects {} (input {x:?}, kernel {kernel:?})", x[1], kernel[0]);
        }
        if kernel[0] == 0 || kernel[1] == 0 {
            shape_err!("kernel dimensions must be positive, got {kernel:?}");
        }
        Ok(Dense { batch: x[0], inputs: x[1], units: kernel[1] })
    }

    /// y = x · W + b, with ReLU fused into the store when `relu` is set.
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, relu: bool) -> OpResult<Vec<f32>> {
        let (k, u) = (self.inputs, self.units);
        let mut y = zeros(&[self.batch, u], "the output")?;
        y.par_chunks_mut(BLOCK_ROWS * u).enumerate().for_each(|(block, out)| {
            affine(out.len() / u, k, u, &x[block * BLOCK_ROWS * k..], kernel, bias, relu, out);
        });
        Ok(y)
    }

    /// (grad_x if asked, grad_kernel, grad_bias); `relu_output` masks `dy` first, as in `Conv2d::backward`.
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool, relu_output: Option<&[f32]>)
                    -> OpResult<LinearGrads> {
        let dy = &*mask_by_relu(dy, relu_output)?;
        let (n, k, u) = (self.batch, self.inputs, self.units);
        let dx = need_dx.then(|| -> OpResult<Vec<f32>> {
            let kernel_t = transpose(kernel, k, u)?; // dy · Wᵀ with a row-major right operand
            let mut dx = zeros(&[n, k], "the input gradient")?;
            dx.par_chunks_mut(BLOCK_ROWS * k).enumerate().for_each(|(block, d)| {
                sgemm(d.len() / k, u, k, &dy[block * BLOCK_ROWS * u..], false, u, &kernel_t, false, k, d, k, 0.0);
            });
            Ok(dx)
        }).transpose()?;
        // grad_kernel rows are independent: split over input features, each summing the whole batch.
        let mut dk = zeros(&[k, u], "the kernel gradient")?;
        dk.par_chunks_mut(BLOCK_ROWS * u).enumerate().for_each(|(block, g)| {
            sgemm(g.len() / u, n, u, &x[block * BLOCK_ROWS..], true, k, dy, false, u, g, u, 0.0);
        });
        Ok((dx, dk, column_sums(dy, u)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_small() {
        let d = Dense::new(&[2, 3], &[3, 2]).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        assert_eq!(d.forward(&x, &w, Some(&[0.5, -0.5]), false).unwrap(), vec![4.5, 4.5, 10.5, 10.5]);
        assert_eq!(d.forward(&x, &w, Some(&[0.5, -5.0]), true).unwrap(), vec![4.5, 0.0, 10.5, 6.0]);
        let (dx, dw, db) = d.backward(&x, &w, &[1.0, 0.0, 0.0, 1.0], true, None).unwrap();
        assert_eq!(dx.unwrap(), vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(dw, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(db, vec![1.0, 1.0]);
    }

    #[test]
    fn rejects_mismatched_features() {
        assert!(Dense::new(&[2, 3], &[4, 2]).is_err());
    }
}
