//! Normalization kernels over a (rows, cols) row-major view of a channels-last tensor.
//!
//! * Batch normalization: per-column (channel) statistics over all rows, then `y = x * a + b` per column;
//!   its backward reduces `dy` and `dy * x_hat` per column.
//! * Layer normalization: per-row statistics over the columns, then a per-column affine map; its backward
//!   reduces per row (input gradient) and per column (gamma, beta).
//!
//! Every reduction over rows is deterministic whatever the thread count: the rows are cut into blocks
//! whose size depends on the shape only, each block sums in float64 in row order, and the block partials
//! are added in block order. Reductions within a row run sequentially.

use rayon::prelude::*;

use super::LinearGrads;
use crate::alloc::zeros;
use crate::error::{shape_err, OpResult};

/// Target elements per parallel block of an element-wise pass or a reduction.
const BLOCK: usize = 1 << 13;
/// At most this many partial sums per column (bounds the memory of the partials).
const MAX_BLOCKS: usize = 64;

/// A channels-last tensor seen as a (rows, cols) matrix: `cols` is the last axis, `rows` the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rows {
    pub rows: usize,
    pub cols: usize,
}

impl Rows {
    pub fn new(shape: &[usize]) -> OpResult<Self> {
        let Some((&cols, lead)) = shape.split_last() else {
            shape_err!("`x` must have rank >= 1, got a scalar");
        };
        let rows: usize = lead.iter().product();
        if rows == 0 || cols == 0 {
            shape_err!("`x` must be non-empty, got shape {shape:?}");
        }
        Ok(Rows { rows, cols })
    }

    /// Rows per block of a row-parallel element-wise pass.
    fn pass_rows(self) -> usize {
        (BLOCK / self.cols).max(1)
    }

    /// Rows per block of a reduction over rows: a function of the shape only (never of the thread count).
    fn reduce_rows(self) -> usize {
        self.rows.div_ceil(MAX_BLOCKS).max(BLOCK.div_ceil(self.cols)).max(1)
    }

    fn check_vec(self, what: &str, v: Option<&[f32]>) -> OpResult<()> {
        match v {
            Some(v) if v.len() != self.cols => shape_err!("`{what}` has {} values for {} channels", v.len(), self.cols),
            _ => Ok(()),
        }
    }

    /// `K` per-column sums over all rows: `add(first_row, block, acc)` adds the terms of the rows of `block`
    /// (a run of whole rows starting at `first_row`) into `acc`, laid out as `acc[k * cols + c]`.
    fn column_sums<const K: usize>(self, add: impl Fn(usize, usize, &mut [f64]) + Sync) -> [Vec<f64>; K] {
        let (rows, cols, per) = (self.rows, self.cols, self.reduce_rows());
        let partials: Vec<Vec<f64>> = (0..rows.div_ceil(per))
            .into_par_iter()
            .map(|b| {
                let mut acc = vec![0.0f64; K * cols];
                let start = b * per;
                add(start, (start + per).min(rows) - start, &mut acc);
                acc
            })
            .collect();
        let mut total = vec![0.0f64; K * cols];
        for p in &partials {
            total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
        }
        std::array::from_fn(|k| total[k * cols..(k + 1) * cols].to_vec())
    }

    /// A new (rows, cols) output filled over row blocks in parallel: `f(first_row, out_block)`.
    fn map_rows(self, what: &str, f: impl Fn(usize, &mut [f32]) + Sync) -> OpResult<Vec<f32>> {
        let mut out = zeros(&[self.rows, self.cols], what)?;
        let per = self.pass_rows();
        out.par_chunks_mut(per * self.cols).enumerate().for_each(|(b, o)| f(b * per, o));
        Ok(out)
    }
}

fn value_or(v: Option<&[f32]>, c: usize, default: f32) -> f32 {
    v.map_or(default, |v| v[c])
}

fn inv_std(variance: &[f32], epsilon: f32) -> Vec<f32> {
    variance.iter().map(|&v| (1.0 / (f64::from(v) + f64::from(epsilon)).sqrt()) as f32).collect()
}

/// Per-channel mean and biased variance over all rows (two passes: mean, then squared deviations).
pub fn channel_moments(x: &[f32], shape: Rows) -> (Vec<f32>, Vec<f32>) {
    let cols = shape.cols;
    let n = shape.rows as f64;
    let [sum] = shape.column_sums::<1>(|r0, nr, acc| {
        for row in x[r0 * cols..(r0 + nr) * cols].chunks_exact(cols) {
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += f64::from(v));
        }
    });
    let mean64: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let [sq] = shape.column_sums::<1>(|r0, nr, acc| {
        for row in x[r0 * cols..(r0 + nr) * cols].chunks_exact(cols) {
            for ((a, &v), m) in acc.iter_mut().zip(row).zip(&mean64) {
                let d = f64::from(v) - m;
                *a += d * d;
            }
        }
    });
    (mean64.iter().map(|&m| m as f32).collect(), sq.iter().map(|s| (s / n) as f32).collect())
}

/// `gamma * (x - mean) / sqrt(variance + epsilon) + beta` per channel (gamma 1 and beta 0 when absent).
pub fn batch_norm_forward(x: &[f32], shape: Rows, gamma: Option<&[f32]>, beta: Option<&[f32]>, mean: &[f32],
                          variance: &[f32], epsilon: f32) -> OpResult<Vec<f32>> {
    for (what, v) in [("gamma", gamma), ("beta", beta), ("mean", Some(mean)), ("variance", Some(variance))] {
        shape.check_vec(what, v)?;
    }
    let s = inv_std(variance, epsilon);
    let a: Vec<f32> = (0..shape.cols).map(|c| value_or(gamma, c, 1.0) * s[c]).collect();
    let b: Vec<f32> = (0..shape.cols).map(|c| value_or(beta, c, 0.0) - mean[c] * a[c]).collect();
    let cols = shape.cols;
    shape.map_rows("the output", |r0, out| {
        let xs = &x[r0 * cols..r0 * cols + out.len()];
        for (o, i) in out.chunks_exact_mut(cols).zip(xs.chunks_exact(cols)) {
            for c in 0..cols {
                o[c] = i[c].mul_add(a[c], b[c]);
            }
        }
    })
}

/// Backward of `batch_norm_forward`: (grad_x if asked, grad_gamma, grad_beta). With `batch_stats` the
/// mean and variance are the batch's own (the full training backward through the statistics); without,
/// they are constants (inference mode: an affine map per channel).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(x: &[f32], dy: &[f32], shape: Rows, gamma: Option<&[f32]>, mean: &[f32], variance: &[f32],
                           epsilon: f32, batch_stats: bool, need_grad_x: bool)
                           -> OpResult<LinearGrads> {
    for (what, v) in [("gamma", gamma), ("mean", Some(mean)), ("variance", Some(variance))] {
        shape.check_vec(what, v)?;
    }
    let cols = shape.cols;
    let s = inv_std(variance, epsilon);
    let [dbeta, dgamma] = shape.column_sums::<2>(|r0, nr, acc| {
        let span = r0 * cols..(r0 + nr) * cols;
        for (xr, gr) in x[span.clone()].chunks_exact(cols).zip(dy[span].chunks_exact(cols)) {
            for c in 0..cols {
                let g = f64::from(gr[c]);
                acc[c] += g;
                acc[cols + c] += g * f64::from((xr[c] - mean[c]) * s[c]);
            }
        }
    });
    let dx = need_grad_x.then(|| {
        let a: Vec<f32> = (0..cols).map(|c| value_or(gamma, c, 1.0) * s[c]).collect();
        let n = shape.rows as f64;
        // Training: dx = a * (dy - dbeta / n - x_hat * dgamma / n); inference: dx = a * dy.
        let (mb, mg): (Vec<f32>, Vec<f32>) = if batch_stats {
            (dbeta.iter().map(|v| (v / n) as f32).collect(), dgamma.iter().map(|v| (v / n) as f32).collect())
        } else {
            (vec![0.0; cols], vec![0.0; cols])
        };
        shape.map_rows("the input gradient", |r0, out| {
            let span = r0 * cols..r0 * cols + out.len();
            let rows = out.chunks_exact_mut(cols).zip(x[span.clone()].chunks_exact(cols)).zip(dy[span].chunks_exact(cols));
            for ((o, xr), gr) in rows {
                for c in 0..cols {
                    let xhat = (xr[c] - mean[c]) * s[c];
                    o[c] = a[c] * (gr[c] - mb[c] - xhat * mg[c]);
                }
            }
        })
    });
    Ok((dx.transpose()?, dgamma.iter().map(|&v| v as f32).collect(), dbeta.iter().map(|&v| v as f32).collect()))
}

/// Mean and 1 / sqrt(biased variance + epsilon) of one row, in float64.
fn row_stats(row: &[f32], epsilon: f32) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + f64::from(epsilon)).sqrt())
}

/// Layer normalization over the last axis: (y, per-row mean, per-row 1/std) — the last two for the backward.
pub fn layer_norm_forward(x: &[f32], shape: Rows, gamma: Option<&[f32]>, beta: Option<&[f32]>, epsilon: f32)
                          -> OpResult<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    shape.check_vec("gamma", gamma)?;
    shape.check_vec("beta", beta)?;
    let cols = shape.cols;
    let stats: Vec<(f64, f64)> = x.par_chunks(cols).map(|row| row_stats(row, epsilon)).collect();
    let y = shape.map_rows("the output", |r0, out| {
        let xs = &x[r0 * cols..r0 * cols + out.len()];
        for (r, (o, i)) in out.chunks_exact_mut(cols).zip(xs.chunks_exact(cols)).enumerate() {
            let (m, s) = stats[r0 + r];
            let (m, s) = (m as f32, s as f32);
            for c in 0..cols {
                o[c] = ((i[c] - m) * s).mul_add(value_or(gamma, c, 1.0), value_or(beta, c, 0.0));
            }
        }
    })?;
    let (mean, inv) = stats.iter().map(|&(m, s)| (m as f32, s as f32)).unzip();
    Ok((y, mean, inv))
}

/// Backward of `layer_norm_forward` given its per-row mean and 1/std: (grad_x if asked, grad_gamma, grad_beta).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(x: &[f32], dy: &[f32], shape: Rows, gamma: Option<&[f32]>, mean: &[f32], inv_std: &[f32],
                           need_grad_x: bool) -> OpResult<LinearGrads> {
    shape.check_vec("gamma", gamma)?;
    let (rows, cols) = (shape.rows, shape.cols);
    if mean.len() != rows || inv_std.len() != rows {
        shape_err!("`mean` and `inv_std` need {rows} values (one per row), got {} and {}", mean.len(), inv_std.len());
    }
    let [dbeta, dgamma] = shape.column_sums::<2>(|r0, nr, acc| {
        let span = r0 * cols..(r0 + nr) * cols;
        for (r, (xr, gr)) in x[span.clone()].chunks_exact(cols).zip(dy[span].chunks_exact(cols)).enumerate() {
            let (m, s) = (mean[r0 + r], inv_std[r0 + r]);
            for c in 0..cols {
                let g = f64::from(gr[c]);
                acc[c] += g;
                acc[cols + c] += g * f64::from((xr[c] - m) * s);
            }
        }
    });
    // dx = s * (g - mean(g) - x_hat * mean(g * x_hat)) with g = dy * gamma, per row.
    let dx = need_grad_x.then(|| {
        shape.map_rows("the input gradient", |r0, out| {
            let span = r0 * cols..r0 * cols + out.len();
            let rows = out.chunks_exact_mut(cols).zip(x[span.clone()].chunks_exact(cols)).zip(dy[span].chunks_exact(cols));
            for (r, ((o, xr), gr)) in rows.enumerate() {
                let (m, s) = (mean[r0 + r], inv_std[r0 + r]);
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for c in 0..cols {
                    let g = f64::from(gr[c] * value_or(gamma, c, 1.0));
                    sg += g;
                    sgx += g * f64::from((xr[c] - m) * s);
                }
                let (mg, mgx) = ((sg / cols as f64) as f32, (sgx / cols as f64) as f32);
                for c in 0..cols {
                    let xhat = (xr[c] - m) * s;
                    o[c] = s * (gr[c] * value_or(gamma, c, 1.0) - mg - xhat * mgx);
                }
            }
        })
    });
    Ok((dx.transpose()?, dgamma.iter().map(|&v| v as f32).collect(), dbeta.iter().map(|&v| v as f32).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 % 113) as f32 / 113.0 - 0.5) * 3.0 + 10.0).collect()
    }

    #[test]
    fn moments_match_float64() {
        let shape = Rows { rows: 1000, cols: 3 };
        let x = data(3000);
        let (mean, var) = channel_moments(&x, shape);
        for c in 0..3 {
            let col: Vec<f64> = x.iter().skip(c).step_by(3).map(|&v| v as f64).collect();
            let m = col.iter().sum::<f64>() / 1000.0;
            let v = col.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 1000.0;
            assert!((mean[c] as f64 - m).abs() < 1e-5 && (var[c] as f64 - v).abs() < 1e-5);
        }
    }

    #[test]
    fn batch_norm_training_output_is_normalized() {
        let shape = Rows { rows: 37, cols: 5 };
        let x = data(37 * 5);
        let (mean, var) = channel_moments(&x, shape);
        let y = batch_norm_forward(&x, shape, None, None, &mean, &var, 0.0).unwrap();
        let (m2, v2) = channel_moments(&y, shape);
        assert!(m2.iter().all(|m| m.abs() < 1e-5) && v2.iter().all(|v| (v - 1.0).abs() < 1e-4));
    }

    #[test]
    fn bad_lengths_are_errors() {
        let shape = Rows { rows: 2, cols: 3 };
        assert!(batch_norm_forward(&[0.0; 6], shape, Some(&[1.0; 2]), None, &[0.0; 3], &[1.0; 3], 1e-3).is_err());
        assert!(Rows::new(&[0, 3]).is_err() && Rows::new(&[]).is_err());
    }
}
