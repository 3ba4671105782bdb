//! Losses, Keras 3 formulas. One kernel, `row_loss`, computes any loss that reduces the last axis of the
//! prediction (one "row" per sample position): the per-row values `L_r` and the gradient of the weighted
//! sum `Σ_r c_r L_r` with respect to the prediction, for per-row coefficients `c` (sample weights times the
//! reduction's scale, given by the caller). `loss` is the batch-mean form kept for the fused cross-entropy
//! hot path. Values accumulate in f64.

use super::activation::sigmoid;
use crate::alloc::zeros;
use crate::error::{shape_err, OpResult};

/// Keras's backend epsilon, used to clip probabilities.
const EPSILON: f32 = 1e-7;
/// The clip bounds as float32 computes them (TF clips in float32: 1 - ε rounds to 1 - 2^-23).
const EPS: f64 = EPSILON as f64;
const ONE_MINUS_EPS: f64 = (1.0 - EPSILON) as f64;

/// A loss over the last axis, with its parameters (Keras names).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowLoss {
    MeanSquared,
    MeanAbsolute,
    MeanAbsolutePercentage,
    MeanSquaredLogarithmic,
    Huber { delta: f64 },
    LogCosh,
    /// Targets in {0, 1} (all of them) are first mapped to {-1, 1}, as Keras does.
    Hinge { squared: bool },
    CategoricalHinge,
    KlDivergence,
    Poisson,
    CosineSimilarity,
    /// Binary cross-entropy, mean over the row; `focal` = Some((alpha, gamma, apply_class_balancing)).
    Binary { logits: bool, smoothing: f64, focal: Option<(f64, f64, bool)> },
    /// Categorical cross-entropy over the row; `focal` = Some((alpha, gamma)).
    Categorical { logits: bool, smoothing: f64, focal: Option<(f64, f64)> },
    /// Integer targets; on probabilities TF's form (clip, then log-softmax of the logs). Rows whose
    /// target is `ignore` give 0 and no gradient.
    SparseCategorical { logits: bool, ignore: Option<i64> },
    Dice,
    Tversky { alpha: f64, beta: f64 },
}

impl RowLoss {
    /// The loss `kind` with parameters read by `param(name, default)`.
    pub fn parse(kind: &str, param: impl Fn(&str, f64) -> f64) -> OpResult<Self> {
        let logits = param("from_logits", 0.0) != 0.0;
        let smoothing = param("label_smoothing", 0.0);
        if !(0.0..=1.0).contains(&smoothing) {
            shape_err!("label_smoothing must be in [0, 1], got {smoothing}");
        }
        let (alpha, gamma) = (param("alpha", 0.25), param("gamma", 2.0));
        Ok(match kind {
            "mean_squared_error" => RowLoss::MeanSquared,
            "mean_absolute_error" => RowLoss::MeanAbsolute,
            "mean_absolute_percentage_error" => RowLoss::MeanAbsolutePercentage,
            "mean_squared_logarithmic_error" => RowLoss::MeanSquaredLogarithmic,
            "huber" => RowLoss::Huber { delta: param("delta", 1.0) },
            "log_cosh" => RowLoss::LogCosh,
            "hinge" => RowLoss::Hinge { squared: false },
            "squared_hinge" => RowLoss::Hinge { squared: true },
            "categorical_hinge" => RowLoss::CategoricalHinge,
            "kl_divergence" => RowLoss::KlDivergence,
            "poisson" => RowLoss::Poisson,
            "cosine_similarity" => RowLoss::CosineSimilarity,
            "binary_crossentropy" => RowLoss::Binary { logits, smoothing, focal: None },
            "binary_focal_crossentropy" => RowLoss::Binary {
                logits, smoothing, focal: Some((alpha, gamma, param("apply_class_balancing", 0.0) != 0.0)) },
            "categorical_crossentropy" => RowLoss::Categorical { logits, smoothing, focal: None },
            "categorical_focal_crossentropy" => RowLoss::Categorical { logits, smoothing, focal: Some((alpha, gamma)) },
            "sparse_categorical_crossentropy" => {
                let ignore = param("ignore_class", f64::NAN);
                RowLoss::SparseCategorical { logits, ignore: (!ignore.is_nan()).then_some(ignore as i64) }
            }
            "dice" => RowLoss::Dice,
            "tversky" => RowLoss::Tversky { alpha: param("alpha", 0.5), beta: param("beta", 0.5) },
            other => shape_err!("unknown loss '{other}'"),
        })
    }

    fn takes_ids(self) -> bool {
        matches!(self, RowLoss::SparseCategorical { .. } | RowLoss::Categorical { .. })
    }
}

/// Targets: integer class ids (one per row) or an array shaped like the prediction.
#[derive(Debug, Clone, Copy)]
pub enum Labels<'a> {
    Ids(&'a [i64]),
    Dense(&'a [f32], &'a [usize]),
}

/// `row_loss`'s result: `total` = Σ_r c_r L_r, `values` = L_r, `grad` = d total / d pred.
#[derive(Debug, Clone)]
pub struct RowLossOut {
    pub total: f64,
    pub values: Vec<f32>,
    pub grad: Vec<f32>,
}

/// Any `RowLoss` over the last axis of `pred` (shape `shape`); `coef` has one coefficient per row or a
/// single one for every row.
pub fn row_loss(kind: RowLoss, pred: &[f32], shape: &[usize], labels: Labels, coef: &[f32]) -> OpResult<RowLossOut> {
    let cols = match shape.last() {
        Some(&c) if c > 0 => c,
        _ => shape_err!("predictions must have a last axis of positive size, got shape {shape:?}"),
    };
    let rows = pred.len() / cols;
    if coef.len() != 1 && coef.len() != rows {
        shape_err!("got {} loss coefficients (sample weights) for {rows} rows of predictions {shape:?}", coef.len());
    }
    match labels {
        Labels::Dense(_, y_shape) if y_shape != shape => {
            shape_err!("labels have shape {y_shape:?} but predictions have shape {shape:?}")
        }
        Labels::Dense(..) if matches!(kind, RowLoss::SparseCategorical { .. }) => {
            shape_err!("sparse categorical cross-entropy takes integer class ids, one per row of {shape:?}")
        }
        Labels::Ids(_) if !kind.takes_ids() => {
            shape_err!("integer class ids are only accepted by the categorical losses; give labels shaped like the predictions {shape:?}")
        }
        Labels::Ids(ids) if ids.len() != rows => {
            shape_err!("got {} class ids for {rows} samples (predictions {shape:?})", ids.len())
        }
        Labels::Ids(ids) => {
            let ignore = match kind { RowLoss::SparseCategorical { ignore, .. } => ignore, _ => None };
            if let Some(bad) = ids.iter().find(|&&i| (i < 0 || i as usize >= cols) && Some(i) != ignore) {
                shape_err!("class id {bad} is out of range for {cols} classes (predictions {shape:?})");
            }
        }
        _ => {}
    }
    // Hinge maps {0, 1} targets to {-1, 1} when every target of the batch is 0 or 1 (Keras's rule).
    let hinge_binary = matches!((kind, labels), (RowLoss::Hinge { .. }, Labels::Dense(y, _)) if y.iter().all(|&v| v == 0.0 || v == 1.0));
    let mut values = zeros(&[rows], "the per-sample losses")?;
    let mut grad = zeros(&[pred.len()], "the gradient")?;
    let mut scratch = vec![0f64; 2 * cols];
    let mut onehot = vec![0f32; if matches!(labels, Labels::Ids(_)) { cols } else { 0 }];
    let mut total = 0.0f64;
    for (r, ((p, g), value)) in pred.chunks_exact(cols).zip(grad.chunks_exact_mut(cols)).zip(values.iter_mut()).enumerate() {
        let c = if coef.len() == 1 { coef[0] } else { coef[r] } as f64;
        let l = match labels {
            Labels::Ids(ids) => {
                let id = ids[r];
                if let RowLoss::SparseCategorical { logits, ignore } = kind {
                    if Some(id) == ignore { 0.0 } else { sparse_row(logits, p, id as usize, c, g) }
                } else {
                    onehot.iter_mut().enumerate().for_each(|(j, t)| *t = (j as i64 == id) as u8 as f32);
                    dense_row(kind, p, &onehot, c, g, &mut scratch, false)
                }
            }
            Labels::Dense(y, _) => dense_row(kind, p, &y[r * cols..(r + 1) * cols], c, g, &mut scratch, hinge_binary),
        };
        *value = l as f32;
        total += c * l;
    }
    Ok(RowLossOut { total, values, grad })
}

#[inline]
fn clip(v: f64) -> (f64, bool) {
    (v.clamp(EPS, ONE_MINUS_EPS), (EPS..=ONE_MINUS_EPS).contains(&v))
}

/// (1 - x)^γ and its derivative with respect to x (0 where the power's derivative is undefined).
#[inline]
fn modulate(x: f64, gamma: f64) -> (f64, f64) {
    let base = 1.0 - x;
    let d = if base > 0.0 { -gamma * base.powf(gamma - 1.0) } else if gamma == 1.0 { -1.0 } else { 0.0 };
    (base.powf(gamma), d)
}

/// One row of a loss on dense targets: returns L, writes g = c dL/dp.
fn dense_row(kind: RowLoss, p: &[f32], t: &[f32], c: f64, g: &mut [f32], scratch: &mut [f64], hinge_binary: bool) -> f64 {
    let n = p.len() as f64;
    let elementwise = |g: &mut [f32], f: &dyn Fn(f64, f64) -> (f64, f64)| -> f64 {
        let mut sum = 0.0;
        for ((gi, &pi), &ti) in g.iter_mut().zip(p).zip(t) {
            let (l, d) = f(pi as f64, ti as f64);
            sum += l;
            *gi = (c * d / n) as f32;
        }
        sum / n
    };
    match kind {
        RowLoss::MeanSquared => elementwise(g, &|p, t| ((p - t) * (p - t), 2.0 * (p - t))),
        RowLoss::MeanAbsolute => elementwise(g, &|p, t| ((p - t).abs(), sign(p - t))),
        RowLoss::MeanAbsolutePercentage => elementwise(g, &|p, t| {
            let d = t.abs().max(EPS);
            (100.0 * (t - p).abs() / d, 100.0 * sign(p - t) / d)
        }),
        RowLoss::MeanSquaredLogarithmic => elementwise(g, &|p, t| {
            let (a, b) = ((p.max(EPS) + 1.0).ln(), (t.max(EPS) + 1.0).ln());
            ((a - b) * (a - b), if p >= EPS { 2.0 * (a - b) / (p + 1.0) } else { 0.0 })
        }),
        RowLoss::Huber { delta } => elementwise(g, &|p, t| {
            let e = p - t;
            if e.abs() <= delta { (0.5 * e * e, e) } else { (delta * e.abs() - 0.5 * delta * delta, delta * sign(e)) }
        }),
        RowLoss::LogCosh => elementwise(g, &|p, t| {
            let x = p - t;
            (x + softplus(-2.0 * x) - std::f64::consts::LN_2, x.tanh())
        }),
        RowLoss::Hinge { squared } => elementwise(g, &|p, t| {
            let t = if hinge_binary { 2.0 * t - 1.0 } else { t };
            let m = (1.0 - t * p).max(0.0);
            if squared { (m * m, -2.0 * t * m) } else { (m, if m > 0.0 { -t } else { 0.0 }) }
        }),
        RowLoss::Poisson => elementwise(g, &|p, t| (p - t * (p + EPS).ln(), 1.0 - t / (p + EPS))),
        RowLoss::KlDivergence => {
            let mut sum = 0.0;
            for ((gi, &pi), &ti) in g.iter_mut().zip(p).zip(t) {
                let (tc, pc) = ((ti as f64).clamp(EPS, 1.0), (pi as f64).clamp(EPS, 1.0));
                sum += tc * (tc / pc).ln();
                *gi = if (EPS..=1.0).contains(&(pi as f64)) { (-c * tc / pc) as f32 } else { 0.0 };
            }
            sum
        }
        RowLoss::Binary { logits, smoothing, focal } => elementwise(g, &|z, t| {
            let t = t * (1.0 - smoothing) + 0.5 * smoothing;
            binary_element(z, t, logits, focal)
        }),
        RowLoss::CategoricalHinge => {
            let pos: f64 = p.iter().zip(t).map(|(&a, &b)| a as f64 * b as f64).sum();
            let (mut arg, mut neg) = (0, f64::NEG_INFINITY);
            for (j, (&a, &b)) in p.iter().zip(t).enumerate() {
                let v = (1.0 - b as f64) * a as f64;
                if v > neg {
                    (arg, neg) = (j, v);
                }
            }
            let l = (neg - pos + 1.0).max(0.0);
            let on = if l > 0.0 { c } else { 0.0 };
            for (j, (gi, &b)) in g.iter_mut().zip(t).enumerate() {
                let dneg = if j == arg { 1.0 - b as f64 } else { 0.0 };
                *gi = (on * (dneg - b as f64)) as f32;
            }
            l
        }
        RowLoss::CosineSimilarity => {
            let norm = |v: &[f32]| v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
            let (np, nt) = (norm(p), norm(t));
            let (ip, it) = ((1.0 / np).min(1.0 / EPS), (1.0 / nt).min(1.0 / EPS));
            let dot: f64 = p.iter().zip(t).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() * ip * it;
            let reduced = np * EPS < 1.0; // the norm, not the epsilon bound, normalises the prediction
            for ((gi, &pi), &ti) in g.iter_mut().zip(p).zip(t) {
                let u = ti as f64 * it;
                let d = if reduced { -(u - dot * pi as f64 * ip) * ip } else { -u * ip };
                *gi = (c * d) as f32;
            }
            -dot
        }
        RowLoss::Dice => {
            let (mut inter, mut sum) = (0.0, EPS);
            for (&a, &b) in p.iter().zip(t) {
                inter += a as f64 * b as f64;
                sum += a as f64 + b as f64;
            }
            for (gi, &b) in g.iter_mut().zip(t) {
                *gi = (-c * (2.0 * b as f64 * sum - 2.0 * inter) / (sum * sum)) as f32;
            }
            1.0 - 2.0 * inter / sum
        }
        RowLoss::Tversky { alpha, beta } => {
            let (mut inter, mut fp, mut fn_) = (0.0, 0.0, 0.0);
            for (&a, &b) in p.iter().zip(t) {
                let (a, b) = (a as f64, b as f64);
                inter += a * b;
                fp += (1.0 - a) * b;
                fn_ += a * (1.0 - b);
            }
            let den = inter + alpha * fp + beta * fn_ + EPS;
            for (gi, &b) in g.iter_mut().zip(t) {
                let b = b as f64;
                let dden = b - alpha * b + beta * (1.0 - b);
                *gi = (-c * (b * den - inter * dden) / (den * den)) as f32;
            }
            1.0 - inter / den
        }
        RowLoss::Categorical { logits, smoothing, focal } => categorical_row(p, t, c, g, scratch, logits, smoothing, focal),
        RowLoss::SparseCategorical { .. } => unreachable!("sparse targets are class ids"),
    }
}

fn sign(v: f64) -> f64 {
    if v > 0.0 { 1.0 } else if v < 0.0 { -1.0 } else { 0.0 }
}

fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// One element of (focal) binary cross-entropy: (loss, d loss / d prediction).
fn binary_element(z: f64, t: f64, logits: bool, focal: Option<(f64, f64, bool)>) -> (f64, f64) {
    match focal {
        None if logits => (z.max(0.0) - z * t + (-z.abs()).exp().ln_1p(), sigmoid(z as f32) as f64 - t),
        None => {
            let (pc, inside) = clip(z);
            let l = -(t * pc.ln() + (1.0 - t) * (1.0 - pc).ln());
            (l, if inside { -t / pc + (1.0 - t) / (1.0 - pc) } else { 0.0 })
        }
        Some((alpha, gamma, balanced)) => {
            let p = if logits { sigmoid(z as f32) as f64 } else { z };
            let (pc, inside) = clip(p);
            let bce = -(t * pc.ln() + (1.0 - t) * (1.0 - pc).ln());
            let dbce = if inside { -t / pc + (1.0 - t) / (1.0 - pc) } else { 0.0 };
            let p_t = t * p + (1.0 - t) * (1.0 - p);
            let (f, df) = modulate(p_t, gamma);
            let w = if balanced { t * alpha + (1.0 - t) * (1.0 - alpha) } else { 1.0 };
            let d = w * (df * (2.0 * t - 1.0) * bce + f * dbce);
            (w * f * bce, if logits { d * p * (1.0 - p) } else { d })
        }
    }
}

/// Categorical (focal) cross-entropy of one row. Logits without focus: the stable log-softmax form.
/// Otherwise Keras's: softmax if logits, renormalise, clip, then the (focal) sum; the gradient flows
/// back through each step (the clip passes none).
#[allow(clippy::too_many_arguments)]
fn categorical_row(p: &[f32], t: &[f32], c: f64, g: &mut [f32], scratch: &mut [f64], logits: bool, smoothing: f64,
                   focal: Option<(f64, f64)>) -> f64 {
    let k = p.len() as f64;
    let smooth = |v: f32| v as f64 * (1.0 - smoothing) + smoothing / k;
    let (q, dq) = scratch.split_at_mut(p.len());
    if logits {
        // One exponential per element: q = e^(z - max) / Σ, log q = z - max - log Σ.
        let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        q.iter_mut().zip(p).for_each(|(qi, &zi)| *qi = (zi as f64 - max).exp());
        let sum: f64 = q.iter().sum();
        let (lse, inv) = (max + sum.ln(), 1.0 / sum);
        q.iter_mut().for_each(|qi| *qi *= inv);
        if focal.is_none() {
            let (mut l, mut t_sum) = (0.0, 0.0);
            for (&zi, &ti) in p.iter().zip(t) {
                let ti = smooth(ti);
                t_sum += ti;
                l -= ti * (zi as f64 - lse);
            }
            for ((gi, &qi), &ti) in g.iter_mut().zip(q.iter()).zip(t) {
                *gi = (c * (qi * t_sum - smooth(ti))) as f32;
            }
            return l;
        }
    } else {
        q.iter_mut().zip(p).for_each(|(qi, &pi)| *qi = pi as f64);
    }
    // out = q / Σq, clipped; L = Σ_j w_j(out_j) (-t_j log out_j) with w = α (1 - out)^γ (or 1).
    let s: f64 = q.iter().sum();
    let mut l = 0.0;
    for ((dj, &qj), &tj) in dq.iter_mut().zip(q.iter()).zip(t) {
        let (oc, inside) = clip(qj / s);
        let (tj, ce) = (smooth(tj), -oc.ln());
        let (w, dw) = match focal {
            Some((alpha, gamma)) => {
                let (f, df) = modulate(oc, gamma);
                (alpha * f, alpha * df)
            }
            None => (1.0, 0.0),
        };
        l += w * tj * ce;
        *dj = if inside { tj * (dw * ce - w / oc) } else { 0.0 };
    }
    // Back through out = q / s: dL/dq_i = (dL/dout_i - Σ_j dL/dout_j out_j) / s.
    let back: f64 = dq.iter().zip(q.iter()).map(|(d, qj)| d * qj / s).sum();
    dq.iter_mut().for_each(|d| *d = (*d - back) / s);
    if logits {
        // Back through the softmax: dL/dz_i = q_i (dL/dq_i - Σ_j dL/dq_j q_j).
        let back: f64 = dq.iter().zip(q.iter()).map(|(d, qj)| d * qj).sum();
        dq.iter_mut().zip(q.iter()).for_each(|(d, qi)| *d = qi * (*d - back));
    }
    g.iter_mut().zip(dq.iter()).for_each(|(gi, d)| *gi = (c * d) as f32);
    l
}

/// Sparse categorical cross-entropy of one row with class `id` (TF's forms).
fn sparse_row(logits: bool, p: &[f32], id: usize, c: f64, g: &mut [f32]) -> f64 {
    if logits {
        let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut sum = 0.0;
        for (gi, &zi) in g.iter_mut().zip(p) {
            let e = (zi as f64 - max).exp();
            sum += e;
            *gi = e as f32;
        }
        let scale = (c / sum) as f32;
        g.iter_mut().for_each(|gi| *gi *= scale);
        g[id] -= c as f32;
        return max + sum.ln() - p[id] as f64;
    }
    // On probabilities: log(clip(p)) as logits, so L = log Σ clip(p) - log clip(p_id).
    let s: f64 = p.iter().map(|&v| clip(v as f64).0).sum();
    let own = clip(p[id] as f64).0;
    for (j, (gi, &pj)) in g.iter_mut().zip(p).enumerate() {
        let (pc, inside) = clip(pj as f64);
        let d = 1.0 / s - if j == id { 1.0 / pc } else { 0.0 };
        *gi = if inside { (c * d) as f32 } else { 0.0 };
    }
    s.ln() - own.ln()
}

/// The batch-mean losses the fused paths and `ops` call by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Fused softmax + categorical cross-entropy on logits.
    SoftmaxCrossEntropy,
    /// Fused sigmoid + binary cross-entropy on logits.
    SigmoidCrossEntropy,
    /// Categorical cross-entropy on probabilities.
    CategoricalCrossEntropy,
    /// Binary cross-entropy on probabilities.
    BinaryCrossEntropy,
    MeanSquaredError,
}

impl LossKind {
    pub fn parse(s: &str) -> OpResult<Self> {
        Ok(match s {
            "softmax_cross_entropy" => LossKind::SoftmaxCrossEntropy,
            "sigmoid_cross_entropy" => LossKind::SigmoidCrossEntropy,
            "categorical_cross_entropy" => LossKind::CategoricalCrossEntropy,
            "binary_cross_entropy" => LossKind::BinaryCrossEntropy,
            "mean_squared_error" => LossKind::MeanSquaredError,
            other => shape_err!("unknown loss '{other}'"),
        })
    }

    fn row_loss(self) -> RowLoss {
        match self {
            LossKind::SoftmaxCrossEntropy => RowLoss::Categorical { logits: true, smoothing: 0.0, focal: None },
            LossKind::CategoricalCrossEntropy => RowLoss::Categorical { logits: false, smoothing: 0.0, focal: None },
            LossKind::SigmoidCrossEntropy => RowLoss::Binary { logits: true, smoothing: 0.0, focal: None },
            LossKind::BinaryCrossEntropy => RowLoss::Binary { logits: false, smoothing: 0.0, focal: None },
            LossKind::MeanSquaredError => RowLoss::MeanSquared,
        }
    }
}

/// The mean of `kind` over the rows (Keras's "sum_over_batch_size") and its gradient.
pub fn loss(kind: LossKind, pred: &[f32], shape: &[usize], labels: Labels) -> OpResult<(f32, Vec<f32>)> {
    let rows = match shape.last() {
        Some(&c) if c > 0 => pred.len() / c,
        _ => shape_err!("predictions must have a last axis of positive size, got shape {shape:?}"),
    };
    if rows == 0 {
        shape_err!("predictions of shape {shape:?} hold no samples");
    }
    let out = row_loss(kind.row_loss(), pred, shape, labels, &[1.0 / rows as f32])?;
    Ok((out.total as f32, out.grad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_ce_ids_and_one_hot_agree() {
        let z = [1.0, 2.0, 3.0, 0.5, 0.5, 0.5];
        let (a, ga) = loss(LossKind::SoftmaxCrossEntropy, &z, &[2, 3], Labels::Ids(&[2, 0])).unwrap();
        let y = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let (b, gb) = loss(LossKind::SoftmaxCrossEntropy, &z, &[2, 3], Labels::Dense(&y, &[2, 3])).unwrap();
        assert!((a - b).abs() < 1e-7 && ga == gb);
        let expected = ((1f64.exp() + 2f64.exp() + 3f64.exp()).ln() - 3.0 + 3f64.ln()) / 2.0;
        assert!((a as f64 - expected).abs() < 1e-6);
    }

    #[test]
    fn sigmoid_ce_is_stable_for_large_logits() {
        let (l, g) = loss(LossKind::SigmoidCrossEntropy, &[100.0, -100.0], &[2, 1], Labels::Dense(&[0.0, 1.0], &[2, 1])).unwrap();
        assert!((l - 100.0).abs() < 1e-3);
        assert!((g[0] - 0.5).abs() < 1e-6 && (g[1] + 0.5).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_ids() {
        assert!(loss(LossKind::SoftmaxCrossEntropy, &[0.0; 4], &[2, 2], Labels::Ids(&[0, 2])).is_err());
        assert!(loss(LossKind::SoftmaxCrossEntropy, &[0.0; 4], &[2, 2], Labels::Ids(&[0])).is_err());
        assert!(loss(LossKind::MeanSquaredError, &[0.0; 4], &[2, 2], Labels::Ids(&[0, 1])).is_err());
    }

    #[test]
    fn sparse_ignores_its_class_and_weights_rows() {
        let kind = RowLoss::SparseCategorical { logits: true, ignore: Some(-1) };
        let out = row_loss(kind, &[1.0, 2.0, 0.0, 0.0], &[2, 2], Labels::Ids(&[-1, 1]), &[3.0, 2.0]).unwrap();
        assert_eq!(out.values[0], 0.0);
        assert!((out.values[1] as f64 - 2f64.ln()).abs() < 1e-6);
        assert!((out.total - 2.0 * 2f64.ln()).abs() < 1e-6);
        assert_eq!(&out.grad[..2], &[0.0, 0.0]);
        assert!((out.grad[2] - 1.0).abs() < 1e-6 && (out.grad[3] + 1.0).abs() < 1e-6);
    }
}
