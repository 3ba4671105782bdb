//! Normalization kernels over a (rows, cols) row-major view of a channels-last tensor.
//!
//! * Batch normalization: per-column (channel) statistics over all rows, then `y = x * a + b` per column;
//!   its backward reduces `dy` and `dy * x_hat` per column.
//! * Group normalization (`group.rs`): statistics per (sample, group of channels) over all positions and the
//!   group's channels, then a per-channel affine map; its backward reduces per (sample, group) (input
//!   gradient) and per column (gamma, beta). Layer normalization over the last axis is its case of one sample
//!   and one group per row.
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

/// `v`, or `cols` copies of `default` when absent (no gamma: 1, no beta: 0).
fn or_filled(v: Option<&[f32]>, cols: usize, default: f32) -> std::borrow::Cow<'_, [f32]> {
    v.map_or_else(|| std::borrow::Cow::Owned(vec![default; cols]), std::borrow::Cow::Borrowed)
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
            for ((o, &v), (&ac, &bc)) in o.iter_mut().zip(i).zip(a.iter().zip(&b)) {
                *o = v * ac + bc;
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
        let (sum_g, sum_gx) = acc.split_at_mut(cols);
        for (xr, gr) in x[span.clone()].chunks_exact(cols).zip(dy[span].chunks_exact(cols)) {
            let terms = sum_g.iter_mut().zip(sum_gx.iter_mut()).zip(xr.iter().zip(gr)).zip(mean.iter().zip(&s));
            for (((sg, sgx), (&xv, &gv)), (&m, &sc)) in terms {
                let g = f64::from(gv);
                *sg += g;
                *sgx += g * f64::from((xv - m) * sc);
            }
        }
    });
    let dx = need_grad_x.then(|| {
        // Training: dx = a * (dy - dbeta / n - x_hat * dgamma / n), a = gamma * s; inference: dx = a * dy.
        // Per channel that is dx = a * dy + k1 * x + k0.
        let n = shape.rows as f64;
        let (mut a, mut k1, mut k0) = (vec![0.0f32; cols], vec![0.0f32; cols], vec![0.0f32; cols]);
        for c in 0..cols {
            let ac = f64::from(value_or(gamma, c, 1.0)) * f64::from(s[c]);
            let (mb, mg) = if batch_stats { (dbeta[c] / n, dgamma[c] / n) } else { (0.0, 0.0) };
            let slope = -ac * mg * f64::from(s[c]);
            (a[c], k1[c], k0[c]) = (ac as f32, slope as f32, (-ac * mb - slope * f64::from(mean[c])) as f32);
        }
        shape.map_rows("the input gradient", |r0, out| {
            let span = r0 * cols..r0 * cols + out.len();
            let rows = out.chunks_exact_mut(cols).zip(x[span.clone()].chunks_exact(cols)).zip(dy[span].chunks_exact(cols));
            for ((o, xr), gr) in rows {
                let terms = o.iter_mut().zip(xr.iter().zip(gr)).zip(a.iter().zip(k1.iter().zip(&k0)));
                for ((o, (&xv, &gv)), (&ac, (&k1c, &k0c))) in terms {
                    *o = ac * gv + k1c * xv + k0c;
                }
            }
        })
    });
    Ok((dx.transpose()?, dgamma.iter().map(|&v| v as f32).collect(), dbeta.iter().map(|&v| v as f32).collect()))
}

mod group;

pub use group::{group_norm_backward, group_norm_forward, Groups};

/// Layer normalization over the last axis (group normalization with one group per row): (y, per-row mean,
/// per-row 1/std) — the last two for the backward.
pub fn layer_norm_forward(x: &[f32], shape: Rows, gamma: Option<&[f32]>, beta: Option<&[f32]>, epsilon: f32)
                          -> OpResult<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    group_norm_forward(x, Groups::per_row(shape), gamma, beta, epsilon)
}

/// Backward of `layer_norm_forward` given its per-row mean and 1/std: (grad_x if asked, grad_gamma, grad_beta).
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(x: &[f32], dy: &[f32], shape: Rows, gamma: Option<&[f32]>, mean: &[f32], inv_std: &[f32],
                           need_grad_x: bool) -> OpResult<LinearGrads> {
    group_norm_backward(x, dy, Groups::per_row(shape), gamma, mean, inv_std, need_grad_x)
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
    fn group_norm_with_one_group_per_channel_normalizes_each_channel_of_each_sample() {
        let x = data(2 * 5 * 4);
        let shape = Groups::new(&[2, 5, 4], 4).unwrap();
        let (y, mean, inv) = group_norm_forward(&x, shape, None, None, 0.0).unwrap();
        assert_eq!((mean.len(), inv.len()), (8, 8));
        for (n, c) in (0..2).flat_map(|n| (0..4).map(move |c| (n, c))) {
            let col: Vec<f64> = (0..5).map(|p| f64::from(y[(n * 5 + p) * 4 + c])).collect();
            let m = col.iter().sum::<f64>() / 5.0;
            let v = col.iter().map(|a| (a - m).powi(2)).sum::<f64>() / 5.0;
            assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4, "sample {n} channel {c}: mean {m}, var {v}");
        }
        assert!(Groups::new(&[2, 5, 4], 3).is_err() && Groups::new(&[4], 1).is_err() && Groups::new(&[2, 4], 0).is_err());
    }

    #[test]
    fn bad_lengths_are_errors() {
        let shape = Rows { rows: 2, cols: 3 };
        assert!(batch_norm_forward(&[0.0; 6], shape, Some(&[1.0; 2]), None, &[0.0; 3], &[1.0; 3], 1e-3).is_err());
        assert!(Rows::new(&[0, 3]).is_err() && Rows::new(&[]).is_err());
    }
}
