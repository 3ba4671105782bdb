//! Group normalization: statistics per (sample, group of channels) over every position and the group's
//! channels, then a per-channel affine map. Two strategies, chosen by the shape (same results up to rounding):
//!
//! * across positions (`positions > 1`, e.g. NHWC images): per-channel float64 sums over a block of rows,
//!   folded per group when the sample changes, so narrow groups cost no more than wide ones;
//! * within rows (`positions == 1`: one row per sample, e.g. layer normalization): each (sample, group) is
//!   one run of a row, reduced in place in one row-parallel pass.
//!
//! Both are deterministic whatever the thread count (block layouts depend on the shape only).

use rayon::prelude::*;

use super::{or_filled, Rows};
use crate::error::{shape_err, OpResult};
use crate::ops::LinearGrads;

/// A channels-last tensor seen as (samples, positions, channels), its channels cut into `groups` equal runs:
/// group normalization takes its statistics per (sample, group), over all positions and the group's
/// channels. Layer normalization over the last axis is the case of one sample (one position, one group) per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Groups {
    pub samples: usize,
    pub positions: usize,
    pub channels: usize,
    pub groups: usize,
}

impl Groups {
    /// `shape` = (samples, ..., channels), rank >= 2; the axes between the first and the last are positions.
    pub fn new(shape: &[usize], groups: usize) -> OpResult<Self> {
        if shape.len() < 2 {
            shape_err!("`x` must have rank >= 2 (samples, ..., channels), got shape {shape:?}");
        }
        let rows = Rows::new(shape)?;
        if groups == 0 || !rows.cols.is_multiple_of(groups) {
            shape_err!("`groups` must divide the number of channels ({}), got groups={groups}", rows.cols);
        }
        Ok(Groups { samples: shape[0], positions: rows.rows / shape[0], channels: rows.cols, groups })
    }

    /// Layer normalization's view of a (rows, cols) tensor: each row one sample with one group.
    pub fn per_row(shape: Rows) -> Self {
        Groups { samples: shape.rows, positions: 1, channels: shape.cols, groups: 1 }
    }

    pub fn rows(self) -> Rows {
        Rows { rows: self.samples * self.positions, cols: self.channels }
    }

    /// Channels per group.
    fn width(self) -> usize {
        self.channels / self.groups
    }

    /// Elements per (sample, group).
    fn count(self) -> f64 {
        (self.positions * self.width()) as f64
    }

    /// Calls `f(r, expanded)` for the rows `r0..r1` of the flat tensor, in order, with `expanded[i]` the values of
    /// `stats[i]` (one per (sample, group)) of the row's sample, repeated per channel (expanded once per sample).
    fn walk_rows(self, r0: usize, r1: usize, stats: &[&[f32]], mut f: impl FnMut(usize, &[Vec<f32>])) {
        let (w, groups) = (self.width(), self.groups);
        let mut expanded = vec![vec![0.0f32; self.channels]; stats.len()];
        let mut current = usize::MAX;
        for r in r0..r1 {
            let s = r / self.positions;
            if s != current {
                for (e, v) in expanded.iter_mut().zip(stats) {
                    for (g, run) in e.chunks_exact_mut(w).enumerate() {
                        run.fill(v[s * groups + g]);
                    }
                }
                current = s;
            }
            f(r, &expanded);
        }
    }

    /// `K` float64 sums per (sample, group), each laid out `[sample * groups + group]`: `add(r, expanded, acc)`
    /// adds row `r`'s terms per channel into `acc` (`acc[k * channels + c]`), `expanded` as in `walk_rows`.
    /// Deterministic whatever the thread count: the rows are cut into blocks by the shape only; a block adds
    /// its rows in order into per-channel sums, folded into its per-group partials whenever the sample
    /// changes; the blocks' partials are added in block order.
    fn group_sums<const K: usize>(self, stats: &[&[f32]], add: impl Fn(usize, &[Vec<f32>], &mut [f64]) + Sync)
                                  -> [Vec<f64>; K] {
        let rows = self.rows();
        let (c, w, groups, per) = (self.channels, self.width(), self.groups, rows.reduce_rows());
        let partials: Vec<(usize, usize, Vec<f64>)> = (0..rows.rows.div_ceil(per))
            .into_par_iter()
            .map(|b| {
                let (r0, r1) = (b * per, ((b + 1) * per).min(rows.rows));
                let s0 = r0 / self.positions;
                let ns = (r1 - 1) / self.positions + 1 - s0;
                let mut out = vec![0.0f64; K * ns * groups]; // [k][sample - s0][group]
                let mut acc = vec![0.0f64; K * c];
                let fold = |s: usize, acc: &mut [f64], out: &mut [f64]| {
                    for (k, per_k) in acc.chunks_exact(c).enumerate() {
                        for (g, run) in per_k.chunks_exact(w).enumerate() {
                            out[(k * ns + s - s0) * groups + g] += run.iter().sum::<f64>();
                        }
                    }
                    acc.fill(0.0);
                };
                let mut current = s0;
                self.walk_rows(r0, r1, stats, |r, expanded| {
                    if r / self.positions != current {
                        fold(current, &mut acc, &mut out);
                        current = r / self.positions;
                    }
                    add(r, expanded, &mut acc);
                });
                fold(current, &mut acc, &mut out);
                (s0, ns, out)
            })
            .collect();
        let mut total: [Vec<f64>; K] = std::array::from_fn(|_| vec![0.0f64; self.samples * groups]);
        for (s0, ns, out) in &partials {
            for (k, t) in total.iter_mut().enumerate() {
                let part = &out[k * ns * groups..(k + 1) * ns * groups];
                t[s0 * groups..(s0 + ns) * groups].iter_mut().zip(part).for_each(|(t, v)| *t += v);
            }
        }
        total
    }

    /// A new tensor filled over row blocks in parallel by `f(r, expanded, out_row)` per row (see `walk_rows`).
    fn map_rows(self, what: &str, stats: &[&[f32]], f: impl Fn(usize, &[Vec<f32>], &mut [f32]) + Sync)
                -> OpResult<Vec<f32>> {
        let c = self.channels;
        self.rows().map_rows(what, |r0, out| {
            let mut rows = out.chunks_exact_mut(c);
            self.walk_rows(r0, r0 + rows.len(), stats, |r, expanded| {
                if let Some(o) = rows.next() {
                    f(r, expanded, o);
                }
            });
        })
    }

    fn check_stats(self, mean: &[f32], inv_std: &[f32]) -> OpResult<()> {
        let k = self.samples * self.groups;
        if mean.len() != k || inv_std.len() != k {
            shape_err!("`mean` and `inv_std` need {k} values (one per sample and group), got {} and {}",
                       mean.len(), inv_std.len());
        }
        Ok(())
    }
}

/// Across positions: mean and 1 / sqrt(biased variance + epsilon) of every (sample, group): float64 sums, the variance's
/// centred on the float32 mean (exact differences; its rounding adds a negligible square).
fn stats_across(x: &[f32], shape: Groups, epsilon: f32) -> (Vec<f32>, Vec<f32>) {
    let (n, c) = (shape.count(), shape.channels);
    let [sum] = shape.group_sums::<1>(&[], |r, _, acc| {
        acc.iter_mut().zip(&x[r * c..(r + 1) * c]).for_each(|(a, &v)| *a += f64::from(v));
    });
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let [sq] = shape.group_sums::<1>(&[&mean], |r, e, acc| {
        for ((a, &v), &m) in acc.iter_mut().zip(&x[r * c..(r + 1) * c]).zip(&e[0]) {
            let d = f64::from(v) - f64::from(m);
            *a += d * d;
        }
    });
    let inv = sq.iter().map(|q| (1.0 / (q / n + f64::from(epsilon)).sqrt()) as f32).collect();
    (mean, inv)
}

/// Across positions: `group_norm_forward` for `positions > 1`.
fn forward_across(x: &[f32], shape: Groups, gamma: &[f32], beta: &[f32], epsilon: f32) -> OpResult<Forward> {
    let c = shape.channels;
    let (mean, inv) = stats_across(x, shape, epsilon);
    let y = shape.map_rows("the output", &[&mean, &inv], |r, e, out| {
        let stats = e[0].iter().zip(&e[1]);
        for ((o, &v), ((&m, &s), (&g, &b))) in out.iter_mut().zip(&x[r * c..]).zip(stats.zip(gamma.iter().zip(beta.iter()))) {
            *o = (v - m) * s * g + b;
        }
    })?;
    Ok((y, mean, inv))
}

/// Across positions: `group_norm_backward` for `positions > 1`.
fn backward_across(x: &[f32], dy: &[f32], shape: Groups, gamma: &[f32], mean: &[f32], inv_std: &[f32],
                   need_grad_x: bool) -> OpResult<LinearGrads> {
    let (rows, c) = (shape.rows(), shape.channels);
    let stats: [&[f32]; 2] = [mean, inv_std];
    let [dbeta, dgamma] = rows.column_sums::<2>(|r0, nr, acc| {
        let (sum_g, sum_gx) = acc.split_at_mut(c);
        shape.walk_rows(r0, r0 + nr, &stats, |r, e| {
            let span = r * c..(r + 1) * c;
            let terms = sum_g.iter_mut().zip(sum_gx.iter_mut()).zip(x[span.clone()].iter().zip(&dy[span]));
            for (((sg, sgx), (&xv, &gv)), (&m, &s)) in terms.zip(e[0].iter().zip(&e[1])) {
                let g = f64::from(gv);
                *sg += g;
                *sgx += g * f64::from((xv - m) * s);
            }
        });
    });
    // dx = s * (g - mean(g) - x_hat * mean(g * x_hat)) with g = dy * gamma, the means over each (sample, group).
    let dx = need_grad_x.then(|| {
        let n = shape.count();
        let [sg, sgx] = shape.group_sums::<2>(&stats, |r, e, acc| {
            let span = r * c..(r + 1) * c;
            let (acc_g, acc_gx) = acc.split_at_mut(c);
            let terms = acc_g.iter_mut().zip(acc_gx.iter_mut()).zip(x[span.clone()].iter().zip(&dy[span]));
            for ((((ag, agx), (&xv, &gv)), &gc), (&m, &s)) in terms.zip(gamma.iter()).zip(e[0].iter().zip(&e[1])) {
                let g = f64::from(gv * gc);
                *ag += g;
                *agx += g * f64::from((xv - m) * s);
            }
        });
        let mg: Vec<f32> = sg.iter().map(|v| (v / n) as f32).collect();
        let mgx: Vec<f32> = sgx.iter().map(|v| (v / n) as f32).collect();
        shape.map_rows("the input gradient", &[mean, inv_std, &mg, &mgx], |r, e, out| {
            let span = r * c..(r + 1) * c;
            let inputs = x[span.clone()].iter().zip(&dy[span]).zip(gamma.iter());
            let per_channel = e[0].iter().zip(&e[1]).zip(e[2].iter().zip(&e[3]));
            for ((o, ((&xv, &gv), &gc)), ((&m, &s), (&a, &b))) in out.iter_mut().zip(inputs).zip(per_channel) {
                *o = s * (gv * gc - a - (xv - m) * s * b);
            }
        })
    });
    Ok((dx.transpose()?, dgamma.iter().map(|&v| v as f32).collect(), dbeta.iter().map(|&v| v as f32).collect()))
}


/// Within rows: mean and 1 / sqrt(biased variance + epsilon) of one run, in float64.
fn run_stats(run: &[f32], epsilon: f32) -> (f32, f32) {
    let n = run.len() as f64;
    let mean = row_sum(run, f64::from) / n;
    let var = row_sum(run, |v| (f64::from(v) - mean).powi(2)) / n;
    (mean as f32, (1.0 / (var + f64::from(epsilon)).sqrt()) as f32)
}

/// `sum(f(v) for v in run)` in float64 over four interleaved partial sums (a fixed order, so deterministic,
/// without one long chain of dependent additions).
fn row_sum(run: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0.0f64; 4];
    let chunks = run.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
}

/// Within rows: calls `f(k, start, c0, out_run)` for every group run of the rows of an output block starting at
/// row `r0`: `k` is the (sample, group) index, `start` the run's first element in the flat tensor, `c0` its
/// first channel.
fn for_runs(shape: Groups, r0: usize, out: &mut [f32], mut f: impl FnMut(usize, usize, usize, &mut [f32])) {
    let (c, w) = (shape.channels, shape.width());
    for (i, row) in out.chunks_exact_mut(c).enumerate() {
        let r = r0 + i;
        for (g, run) in row.chunks_exact_mut(w).enumerate() {
            f(r * shape.groups + g, r * c + g * w, g * w, run);
        }
    }
}

/// Within rows: `group_norm_forward` for `positions == 1`.
fn forward_in_rows(x: &[f32], shape: Groups, gamma: &[f32], beta: &[f32], epsilon: f32) -> OpResult<Forward> {
    let (c, w) = (shape.channels, shape.width());
    let (mean, inv): (Vec<f32>, Vec<f32>) =
        x.par_chunks(c).flat_map_iter(|row| row.chunks_exact(w).map(|run| run_stats(run, epsilon))).unzip();
    let y = shape.rows().map_rows("the output", |r0, out| {
        for_runs(shape, r0, out, |k, start, c0, o| {
            let (m, s, xs) = (mean[k], inv[k], &x[start..start + o.len()]);
            for ((o, &v), (&g, &b)) in o.iter_mut().zip(xs).zip(gamma[c0..].iter().zip(&beta[c0..])) {
                *o = (v - m) * s * g + b;
            }
        })
    })?;
    Ok((y, mean, inv))
}

/// Within rows: `group_norm_backward` for `positions == 1`.
fn backward_in_rows(x: &[f32], dy: &[f32], shape: Groups, gamma: &[f32], mean: &[f32], inv_std: &[f32],
                    need_grad_x: bool) -> OpResult<LinearGrads> {
    let (rows, c, w) = (shape.rows(), shape.channels, shape.width());
    let [dbeta, dgamma] = rows.column_sums::<2>(|r0, nr, acc| {
        let span = r0 * c..(r0 + nr) * c;
        let (sum_g, sum_gx) = acc.split_at_mut(c);
        for (i, (xr, gr)) in x[span.clone()].chunks_exact(c).zip(dy[span].chunks_exact(c)).enumerate() {
            let runs = sum_g.chunks_exact_mut(w).zip(sum_gx.chunks_exact_mut(w)).zip(xr.chunks_exact(w).zip(gr.chunks_exact(w)));
            for (g, ((sg, sgx), (xs, gs))) in runs.enumerate() {
                let k = (r0 + i) * shape.groups + g;
                let (m, s) = (mean[k], inv_std[k]);
                for ((sg, sgx), (&xv, &gv)) in sg.iter_mut().zip(sgx.iter_mut()).zip(xs.iter().zip(gs)) {
                    let g = f64::from(gv);
                    *sg += g;
                    *sgx += g * f64::from((xv - m) * s);
                }
            }
        }
    });
    // dx = s * (g - mean(g) - x_hat * mean(g * x_hat)) with g = dy * gamma, the means over each run.
    let dx = need_grad_x.then(|| {
        rows.map_rows("the input gradient", |r0, out| {
            for_runs(shape, r0, out, |k, start, c0, o| {
                let (m, s) = (mean[k], inv_std[k]);
                let (xs, gs, gm) = (&x[start..start + o.len()], &dy[start..start + o.len()], &gamma[c0..c0 + o.len()]);
                let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                for ((&xv, &gv), &gc) in xs.iter().zip(gs).zip(gm) {
                    let g = f64::from(gv * gc);
                    sg += g;
                    sgx += g * f64::from((xv - m) * s);
                }
                let (mg, mgx) = ((sg / w as f64) as f32, (sgx / w as f64) as f32);
                for ((o, (&xv, &gv)), &gc) in o.iter_mut().zip(xs.iter().zip(gs)).zip(gm) {
                    *o = s * (gv * gc - mg - (xv - m) * s * mgx);
                }
            })
        })
    });
    Ok((dx.transpose()?, dgamma.iter().map(|&v| v as f32).collect(), dbeta.iter().map(|&v| v as f32).collect()))
}

/// (y, mean, 1/std) of a group-norm forward.
type Forward = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Group normalization: `gamma * (x - mean) / sqrt(variance + epsilon) + beta` with the statistics of each
/// (sample, group) and gamma/beta per channel (1 and 0 when absent). Returns (y, mean, 1/std), the last two one
/// value per (sample, group), in (sample, group) order, for the backward.
pub fn group_norm_forward(x: &[f32], shape: Groups, gamma: Option<&[f32]>, beta: Option<&[f32]>, epsilon: f32)
                          -> OpResult<Forward> {
    let rows = shape.rows();
    rows.check_vec("gamma", gamma)?;
    rows.check_vec("beta", beta)?;
    let (gamma, beta) = (or_filled(gamma, rows.cols, 1.0), or_filled(beta, rows.cols, 0.0));
    if shape.positions == 1 {
        forward_in_rows(x, shape, &gamma, &beta, epsilon)
    } else {
        forward_across(x, shape, &gamma, &beta, epsilon)
    }
}

/// Backward of `group_norm_forward` given its mean and 1/std per (sample, group):
/// (grad_x if asked, grad_gamma, grad_beta).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(x: &[f32], dy: &[f32], shape: Groups, gamma: Option<&[f32]>, mean: &[f32],
                           inv_std: &[f32], need_grad_x: bool) -> OpResult<LinearGrads> {
    let rows = shape.rows();
    rows.check_vec("gamma", gamma)?;
    shape.check_stats(mean, inv_std)?;
    let gamma = or_filled(gamma, rows.cols, 1.0);
    if shape.positions == 1 {
        backward_in_rows(x, dy, shape, &gamma, mean, inv_std, need_grad_x)
    } else {
        backward_across(x, dy, shape, &gamma, mean, inv_std, need_grad_x)
    }
}
