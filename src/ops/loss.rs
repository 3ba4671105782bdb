//! Losses, each returning the mean over the batch (Keras's "sum_over_batch_size") and the gradient of
//! that mean with respect to the prediction. Sums run in f64 so the reported loss is exact enough.

use super::activation::sigmoid;
use crate::alloc::zeros;
use crate::error::{shape_err, OpResult};

/// Keras's backend epsilon, used to clip probabilities.
const EPSILON: f32 = 1e-7;

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

    fn takes_class_ids(self) -> bool {
        matches!(self, LossKind::SoftmaxCrossEntropy | LossKind::CategoricalCrossEntropy)
    }
}

/// Targets: integer class ids (one per row) or an array shaped like the prediction.
#[derive(Debug, Clone, Copy)]
pub enum Labels<'a> {
    Ids(&'a [i64]),
    Dense(&'a [f32], &'a [usize]),
}

pub fn loss(kind: LossKind, pred: &[f32], shape: &[usize], labels: Labels) -> OpResult<(f32, Vec<f32>)> {
    let classes = match shape.last() {
        Some(&c) if c > 0 => c,
        _ => shape_err!("predictions must have a last axis of positive size, got shape {shape:?}"),
    };
    let rows = pred.len() / classes;
    if rows == 0 {
        shape_err!("predictions of shape {shape:?} hold no samples");
    }
    // Targets as one dense row per sample; class ids become one-hot rows on the fly.
    let targets: Vec<f32>;
    let y: &[f32] = match labels {
        Labels::Dense(y, y_shape) => {
            if y_shape != shape {
                shape_err!("labels have shape {y_shape:?} but predictions have shape {shape:?}");
            }
            y
        }
        Labels::Ids(ids) => {
            if !kind.takes_class_ids() {
                shape_err!("integer class ids are only accepted by the categorical losses; give labels shaped like the predictions {shape:?}");
            }
            if ids.len() != rows {
                shape_err!("got {} class ids for {rows} samples (predictions {shape:?})", ids.len());
            }
            if let Some(bad) = ids.iter().find(|&&i| i < 0 || i as usize >= classes) {
                shape_err!("class id {bad} is out of range for {classes} classes (predictions {shape:?})");
            }
            let mut t = zeros(&[pred.len()], "the one-hot targets")?;
            ids.iter().enumerate().for_each(|(r, &i)| t[r * classes + i as usize] = 1.0);
            targets = t;
            &targets
        }
    };
    let mut grad = zeros(&[pred.len()], "the gradient")?;
    let mut total = 0.0f64;
    match kind {
        LossKind::SoftmaxCrossEntropy | LossKind::CategoricalCrossEntropy => {
            let scale = 1.0 / rows as f32;
            for ((z, t), g) in pred.chunks_exact(classes).zip(y.chunks_exact(classes)).zip(grad.chunks_exact_mut(classes)) {
                let t_sum: f32 = t.iter().sum();
                if kind == LossKind::SoftmaxCrossEntropy {
                    // log p_i = z_i - logsumexp(z); dL/dz_i = p_i Σt - t_i.
                    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f64 = z.iter().map(|&v| ((v - max) as f64).exp()).sum();
                    let lse = max as f64 + sum.ln();
                    total -= t.iter().zip(z).map(|(&ti, &zi)| ti as f64 * (zi as f64 - lse)).sum::<f64>();
                    for ((gi, &zi), &ti) in g.iter_mut().zip(z).zip(t) {
                        *gi = (((zi as f64 - lse).exp() as f32) * t_sum - ti) * scale;
                    }
                } else {
                    // Keras: q = p / Σp, clipped to [ε, 1-ε]; the clip passes no gradient.
                    let s: f32 = z.iter().sum();
                    // dL/dp_i = Σ_j t_j [unclipped_j] / s - t_i [unclipped_i] / p_i, from dq_j/dp_i = (δ_ij - q_j) / s.
                    let mut inner = 0.0f32;
                    for (&pj, &tj) in z.iter().zip(t) {
                        let q = pj / s;
                        total -= tj as f64 * (q.clamp(EPSILON, 1.0 - EPSILON) as f64).ln();
                        if (EPSILON..=1.0 - EPSILON).contains(&q) {
                            inner += tj / s;
                        }
                    }
                    for ((gi, &pi), &ti) in g.iter_mut().zip(z).zip(t) {
                        let q = pi / s;
                        let own = if (EPSILON..=1.0 - EPSILON).contains(&q) { ti / (q * s) } else { 0.0 };
                        *gi = (inner - own) * scale;
                    }
                }
            }
        }
        LossKind::SigmoidCrossEntropy => {
            let scale = 1.0 / pred.len() as f32;
            for ((&z, &t), g) in pred.iter().zip(y).zip(grad.iter_mut()) {
                // max(z,0) - z t + log(1 + e^{-|z|}), the stable form.
                total += (z.max(0.0) - z * t) as f64 + ((-(z.abs()) as f64).exp()).ln_1p();
                *g = (sigmoid(z) - t) * scale;
            }
            total *= rows as f64 / pred.len() as f64;
        }
        LossKind::BinaryCrossEntropy => {
            let scale = 1.0 / pred.len() as f32;
            for ((&p, &t), g) in pred.iter().zip(y).zip(grad.iter_mut()) {
                let pc = p.clamp(EPSILON, 1.0 - EPSILON);
                total -= t as f64 * (pc as f64).ln() + (1.0 - t) as f64 * ((1.0 - pc) as f64).ln();
                *g = if (EPSILON..=1.0 - EPSILON).contains(&p) { (-(t / pc) + (1.0 - t) / (1.0 - pc)) * scale } else { 0.0 };
            }
            total *= rows as f64 / pred.len() as f64;
        }
        LossKind::MeanSquaredError => {
            let scale = 2.0 / pred.len() as f32;
            for ((&p, &t), g) in pred.iter().zip(y).zip(grad.iter_mut()) {
                total += ((p - t) as f64).powi(2);
                *g = (p - t) * scale;
            }
            total *= rows as f64 / pred.len() as f64;
        }
    }
    Ok(((total / rows as f64) as f32, grad))
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
}
