//! Activations with Keras 3's formulas, forward and backward: element-wise ones (some with parameters),
//! softmax and log-softmax over any axis, and PReLU (a learned slope broadcast over the sample).

use rayon::prelude::*;

use crate::alloc::{copied, zeros};
use crate::error::{shape_err, OpResult};

/// Elements per parallel work item: big enough that rayon's overhead disappears.
const CHUNK: usize = 1 << 14;

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    // The backward of these reads the output (see `saves_input`).
    Relu,
    Sigmoid,
    Tanh,
    Exponential,
    Softmax(isize),
    LogSoftmax(isize),
    // The backward of these reads the input.
    Elu(f32),
    Selu,
    Gelu,
    GeluTanh,
    Silu,
    Softplus,
    Softsign,
    HardSigmoid,
    HardSilu,
    LeakyRelu(f32),
    Relu6,
    Mish,
    /// Keras's `relu(x, negative_slope, max_value, threshold)` with a non-default parameter.
    ReluWith { slope: f32, max: Option<f32>, threshold: f32 },
}

impl Activation {
    /// `kind` with its default parameters (softmax over the last axis).
    pub fn parse(kind: &str) -> OpResult<Self> {
        Self::new(kind, &[], -1)
    }

    /// `kind` with `params` (Keras's argument order; missing ones take Keras's defaults): relu
    /// `[negative_slope, max_value (NaN: None), threshold]`, leaky_relu `[negative_slope]` (0.2), elu
    /// `[alpha]` (1.0), gelu `[approximate]` (0: exact). `axis` is softmax's and log_softmax's.
    pub fn new(kind: &str, params: &[f32], axis: isize) -> OpResult<Self> {
        let arity = match kind {
            "relu" => 3,
            "leaky_relu" | "elu" | "gelu" => 1,
            _ => 0,
        };
        if params.len() > arity {
            shape_err!("activation '{kind}' takes {arity} parameter(s), got {params:?}");
        }
        let p = |i: usize, default: f32| params.get(i).copied().unwrap_or(default);
        Ok(match kind {
            "relu" => {
                let (slope, max, threshold) = (p(0, 0.0), p(1, f32::NAN), p(2, 0.0));
                let max = (!max.is_nan()).then_some(max);
                if slope == 0.0 && max.is_none() && threshold == 0.0 {
                    Activation::Relu
                } else {
                    Activation::ReluWith { slope, max, threshold }
                }
            }
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "exponential" => Activation::Exponential,
            "softmax" => Activation::Softmax(axis),
            "log_softmax" => Activation::LogSoftmax(axis),
            "elu" => Activation::Elu(p(0, 1.0)),
            "selu" => Activation::Selu,
            "gelu" if p(0, 0.0) != 0.0 => Activation::GeluTanh,
            "gelu" => Activation::Gelu,
            "silu" | "swish" => Activation::Silu,
            "softplus" => Activation::Softplus,
            "softsign" => Activation::Softsign,
            "hard_sigmoid" => Activation::HardSigmoid,
            "hard_silu" | "hard_swish" => Activation::HardSilu,
            "leaky_relu" => Activation::LeakyRelu(p(0, 0.2)),
            "relu6" => Activation::Relu6,
            "mish" => Activation::Mish,
            other => shape_err!("unknown activation '{other}' (expected one of {})", KINDS.join(", ")),
        })
    }

    /// Whether `backward` wants the input (true) or the output (false) as `saved`.
    pub fn saves_input(self) -> bool {
        !matches!(self, Activation::Relu | Activation::Sigmoid | Activation::Tanh | Activation::Exponential
                        | Activation::Softmax(_) | Activation::LogSoftmax(_))
    }

    /// `shape` matters only to softmax and log_softmax, which normalise over their axis.
    pub fn forward(self, x: &[f32], shape: &[usize]) -> OpResult<Vec<f32>> {
        use Activation::*;
        match self {
            Softmax(axis) | LogSoftmax(axis) => {
                let lanes = Lanes::new(shape, axis)?;
                let log = matches!(self, LogSoftmax(_));
                let mut y = copied(x, "the output")?;
                lanes.apply(&mut y, x, |row, _| if log { log_softmax_row(row) } else { softmax_row(row) })?;
                Ok(y)
            }
            Relu => map(x, relu),
            Sigmoid => map(x, sigmoid),
            Tanh => map(x, tanh),
            Exponential => map(x, f32::exp),
            Elu(alpha) => map(x, move |v| if v > 0.0 { v } else { alpha * v.exp_m1() }),
            Selu => map(x, |v| SELU_SCALE * if v > 0.0 { v } else { SELU_ALPHA * v.exp_m1() }),
            Gelu => map(x, |v| 0.5 * v * erfc(-(v as f64) * std::f64::consts::FRAC_1_SQRT_2) as f32),
            // 0.5 (1 + tanh u) = sigmoid(2u), without the cancellation for negative u.
            GeluTanh => map(x, |v| v * sigmoid(2.0 * gelu_tanh_inner(v).0)),
            Silu => map(x, |v| v * sigmoid(v)),
            Softplus => map(x, softplus),
            Softsign => map(x, |v| v / (1.0 + v.abs())),
            HardSigmoid => map(x, hard_sigmoid),
            HardSilu => map(x, |v| v * hard_sigmoid(v)),
            LeakyRelu(slope) => map(x, move |v| if v > 0.0 { v } else { slope * v }),
            Relu6 => map(x, |v| clamp(v, 0.0, 6.0)),
            Mish => map(x, |v| v * mish_parts(v).0),
            ReluWith { slope, max, threshold } => map(x, move |v| relu_with(v, slope, max, threshold)),
        }
    }

    /// Gradient with respect to the input, given `saved` (the input or the output: `saves_input`).
    pub fn backward(self, saved: &[f32], dy: &[f32], shape: &[usize]) -> OpResult<Vec<f32>> {
        use Activation::*;
        match self {
            Softmax(axis) | LogSoftmax(axis) => {
                let lanes = Lanes::new(shape, axis)?;
                let log = matches!(self, LogSoftmax(_));
                let mut dx = copied(dy, "the input gradient")?;
                lanes.apply(&mut dx, saved, |g, y| {
                    if log {
                        // y = log p: dx = g - p * sum(g).
                        let total: f32 = g.iter().sum();
                        g.iter_mut().zip(y).for_each(|(gi, yi)| *gi -= yi.exp() * total);
                    } else {
                        let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                        g.iter_mut().zip(y).for_each(|(gi, yi)| *gi = yi * (*gi - dot));
                    }
                })?;
                Ok(dx)
            }
            Relu => pairs(saved, dy, relu_grad),
            Sigmoid => pairs(saved, dy, |y, g| g * y * (1.0 - y)),
            Tanh => pairs(saved, dy, |y, g| g * (1.0 - y * y)),
            Exponential => pairs(saved, dy, |y, g| g * y),
            Elu(alpha) => pairs(saved, dy, move |x, g| if x > 0.0 { g } else { g * alpha * x.exp() }),
            // At 0, TF (SeluGrad) takes the linear side.
            Selu => pairs(saved, dy, |x, g| g * SELU_SCALE * if x >= 0.0 { 1.0 } else { SELU_ALPHA * x.exp() }),
            Gelu => pairs(saved, dy, |x, g| {
                let xd = x as f64;
                let cdf = 0.5 * erfc(-xd * std::f64::consts::FRAC_1_SQRT_2);
                let pdf = (-0.5 * xd * xd).exp() * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
                g * (cdf + xd * pdf) as f32
            }),
            GeluTanh => pairs(saved, dy, |x, g| {
                let (u, du) = gelu_tanh_inner(x);
                let s = sigmoid(2.0 * u);
                g * (s + 2.0 * x * s * (1.0 - s) * du)
            }),
            Silu => pairs(saved, dy, |x, g| {
                let s = sigmoid(x);
                g * s * (1.0 + x * (1.0 - s))
            }),
            Softplus => pairs(saved, dy, |x, g| g * sigmoid(x)),
            Softsign => pairs(saved, dy, |x, g| {
                let d = 1.0 + x.abs();
                g / (d * d)
            }),
            HardSigmoid => pairs(saved, dy, |x, g| if x > -3.0 && x < 3.0 { g / 6.0 } else { 0.0 }),
            HardSilu => pairs(saved, dy, |x, g| {
                let slope = if x > -3.0 && x < 3.0 { x / 6.0 } else { 0.0 };
                g * (hard_sigmoid(x) + slope)
            }),
            LeakyRelu(slope) => pairs(saved, dy, move |x, g| if x > 0.0 { g } else { slope * g }),
            Relu6 => pairs(saved, dy, |x, g| if x > 0.0 && x < 6.0 { g } else { 0.0 }),
            Mish => pairs(saved, dy, |x, g| {
                let (t, one_minus_t2, s) = mish_parts(x);
                g * (t + x * one_minus_t2 * s)
            }),
            ReluWith { slope, max, threshold } => pairs(saved, dy, move |x, g| {
                let pass = x > threshold && max.is_none_or(|m| x > 0.0 && x < m);
                g * (if pass { 1.0 } else { 0.0 } + if x < threshold { slope } else { 0.0 })
            }),
        }
    }
}

/// Every name `Activation::new` accepts (for its error message).
const KINDS: [&str; 20] = [
    "relu", "sigmoid", "tanh", "exponential", "softmax", "log_softmax", "elu", "selu", "gelu", "silu",
    "swish", "softplus", "softsign", "hard_sigmoid", "hard_silu", "hard_swish", "leaky_relu", "relu6", "mish",
    "linear (handled by the caller)",
];

// Generic helpers (not `fn` pointers) so the element function is inlined and vectorised.
fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> OpResult<Vec<f32>> {
    let mut y = zeros(&[x.len()], "the output")?;
    y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, i)| {
        o.iter_mut().zip(i).for_each(|(o, &i)| *o = f(i));
    });
    Ok(y)
}

fn pairs(saved: &[f32], dy: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> OpResult<Vec<f32>> {
    if saved.len() != dy.len() {
        shape_err!("the saved tensor has {} elements but the output gradient {}", saved.len(), dy.len());
    }
    let mut dx = zeros(&[dy.len()], "the input gradient")?;
    dx.par_chunks_mut(CHUNK).zip(saved.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)).for_each(|((d, s), g)| {
        d.iter_mut().zip(s).zip(g).for_each(|((d, &v), &g)| *d = f(v, g));
    });
    Ok(dx)
}

/// The lanes of a softmax: `outer` blocks of `n` values along the axis, `inner` apart.
struct Lanes {
    n: usize,
    inner: usize,
    empty: bool,
}

impl Lanes {
    fn new(shape: &[usize], axis: isize) -> OpResult<Self> {
        let rank = shape.len() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        if rank == 0 || a < 0 || a >= rank {
            shape_err!("axis {axis} is out of range for an input of shape {shape:?}");
        }
        let a = a as usize;
        if shape[a] == 0 {
            shape_err!("softmax needs a positive size on its axis {a}, got shape {shape:?}");
        }
        let empty = shape.contains(&0);
        Ok(Lanes { n: shape[a], inner: shape[a + 1..].iter().product(), empty })
    }

    /// `f(lane of a, lane of b)` on every lane, in parallel. Lanes `inner` apart (an axis other than the
    /// last) are gathered into lane-major scratch, processed in parallel, and scattered back row by row.
    fn apply(&self, a: &mut [f32], b: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) -> OpResult<()> {
        let (n, inner) = (self.n, self.inner);
        if self.empty {
            return Ok(());
        }
        if inner == 1 {
            let chunk = (CHUNK / n).max(1) * n;
            a.par_chunks_mut(chunk).zip(b.par_chunks(chunk)).for_each(|(a, b)| {
                a.chunks_exact_mut(n).zip(b.chunks_exact(n)).for_each(|(a, b)| f(a, b));
            });
            return Ok(());
        }
        let mut sa = zeros::<f32>(&[a.len()], "the softmax scratch")?;
        let mut sb = zeros::<f32>(&[b.len()], "the softmax scratch")?;
        let src: &[f32] = a;
        sa.par_chunks_mut(n).zip(sb.par_chunks_mut(n)).enumerate().for_each(|(lane, (la, lb))| {
            let base = (lane / inner) * n * inner + lane % inner;
            for i in 0..n {
                la[i] = src[base + i * inner];
                lb[i] = b[base + i * inner];
            }
            f(la, lb);
        });
        a.par_chunks_mut(inner).enumerate().for_each(|(r, row)| {
            let (o, i) = (r / n, r % n);
            row.iter_mut().enumerate().for_each(|(j, v)| *v = sa[(o * inner + j) * n + i]);
        });
        Ok(())
    }
}

/// ReLU's gradient given its input (or output: both are positive at the same places).
#[inline(always)]
fn relu_grad(x: f32, g: f32) -> f32 {
    if x > 0.0 { g } else if x.is_nan() { x } else { 0.0 }
}

/// ReLU in place, for kernels that fuse it into their store.
pub fn relu_in_place(v: &mut [f32]) {
    v.iter_mut().for_each(|v| *v = relu(*v));
}

/// `dy` masked by a fused ReLU's output where there is one (the backward of conv/dense + ReLU).
pub fn mask_by_relu<'a>(dy: &'a [f32], relu_output: Option<&[f32]>) -> OpResult<std::borrow::Cow<'a, [f32]>> {
    Ok(match relu_output {
        Some(y) => std::borrow::Cow::Owned(pairs(y, dy, relu_grad)?),
        None => std::borrow::Cow::Borrowed(dy),
    })
}

#[inline(always)]
fn relu(v: f32) -> f32 {
    // `max` would turn NaN into 0; keep it visible.
    if v > 0.0 || v.is_nan() { v } else { 0.0 }
}

/// `v` limited to [lo, hi], NaN kept.
#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo { lo } else if v > hi { hi } else { v }
}

/// Keras's `relu(x, negative_slope, max_value, threshold)`: `x > threshold ? x : 0`, clipped to
/// [0, max_value] when there is one, minus `negative_slope * relu(threshold - x)`.
#[inline(always)]
fn relu_with(v: f32, slope: f32, max: Option<f32>, threshold: f32) -> f32 {
    let pos = if v > threshold || v.is_nan() { v } else { 0.0 };
    let pos = max.map_or(pos, |m| clamp(pos, 0.0, m));
    if slope != 0.0 && v < threshold { pos - slope * (threshold - v) } else { pos }
}

#[inline(always)]
pub fn sigmoid(v: f32) -> f32 {
    // Two branches so exp never overflows.
    if v >= 0.0 { 1.0 / (1.0 + (-v).exp()) } else { let e = v.exp(); e / (1.0 + e) }
}

/// log(1 + exp(v)) without overflow or loss for large |v|.
#[inline(always)]
fn softplus(v: f32) -> f32 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// tanh within 1.6e-7 relative (a few times faster than libm's `tanhf`): Cephes' odd polynomial below
/// 0.625, 1 - 2 / (e^2|v| + 1) above (no cancellation there), the sign restored.
#[inline(always)]
fn tanh(v: f32) -> f32 {
    let a = v.abs();
    let t = if a < 0.625 {
        let z = a * a;
        ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z - 3.333_328e-1)
            * z * a + a
    } else if a < 10.0 {
        1.0 - 2.0 / ((2.0 * a).exp() + 1.0)
    } else {
        1.0 // and NaN stays NaN below
    };
    if v.is_nan() { v } else { t.copysign(v) }
}

/// tanh(softplus(v)), 1 - its square and sigmoid(v) from one exp: with n = e^v, tanh(log(1 + n)) =
/// n (n + 2) / (n (n + 2) + 2), and 1 - tanh^2 = 4 (n (n + 2) + 1) / (n (n + 2) + 2)^2 without cancellation.
#[inline(always)]
fn mish_parts(v: f32) -> (f32, f32, f32) {
    if v > 20.0 {
        return (1.0, 0.0, 1.0);
    }
    let n = v.exp();
    let p = n * (n + 2.0);
    let d = p + 2.0;
    (p / d, 4.0 * (p + 1.0) / (d * d), n / (1.0 + n))
}

/// Keras 3: relu6(x + 3) / 6.
#[inline(always)]
fn hard_sigmoid(v: f32) -> f32 {
    clamp(v + 3.0, 0.0, 6.0) / 6.0
}

/// The tanh approximation's argument sqrt(2/pi) (x + 0.044715 x^3) and its derivative.
#[inline(always)]
fn gelu_tanh_inner(v: f32) -> (f32, f32) {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    (C * (v + 0.044715 * v * v * v), C * (1.0 + 3.0 * 0.044715 * v * v))
}

/// The complementary error function, relative error below 1.1e-7 everywhere (Numerical Recipes'
/// Chebyshev fit `erfcc`): enough for float32, and exact in the tails where 1 + erf would cancel.
#[inline(always)]
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23 + t * (1.000_023_68 + t * (0.374_091_96 + t * (0.096_784_18 + t * (-0.186_288_06
        + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * (-z * z + poly).exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Stable softmax in place: subtract the row maximum before exponentiating.
pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// Stable log-softmax in place: x - max - log(sum(exp(x - max))).
fn log_softmax_row(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
    let shift = max + sum.ln();
    row.iter_mut().for_each(|v| *v -= shift);
}

/// PReLU: `x > 0 ? x : alpha * x`, with `alpha` broadcast over each sample (`x.shape[1:]`; each of
/// alpha's axes has that size or 1, the shared axes).
pub struct Prelu {
    /// For each position within a sample, its alpha entry.
    index: Vec<usize>,
    alpha_len: usize,
}

impl Prelu {
    pub fn new(x_shape: &[usize], alpha_shape: &[usize]) -> OpResult<Self> {
        let sample = x_shape.get(1..).unwrap_or(&[]);
        if x_shape.len() < 2 || alpha_shape.len() != sample.len()
            || alpha_shape.iter().zip(sample).any(|(&a, &s)| a != s && a != 1) {
            shape_err!("alpha of shape {alpha_shape:?} does not broadcast over the samples of an input of shape \
                        {x_shape:?} (it needs rank {} and each axis equal to the input's or 1)", sample.len());
        }
        let period: usize = sample.iter().product();
        let mut index = Vec::new();
        index.try_reserve_exact(period).map_err(|_| crate::error::OpError::Memory(format!(
            "cannot allocate the PReLU index for samples of shape {sample:?}")))?;
        let mut coord = vec![0usize; sample.len()];
        for _ in 0..period {
            index.push(coord.iter().zip(alpha_shape).fold(0, |acc, (&c, &a)| acc * a + if a == 1 { 0 } else { c }));
            for k in (0..coord.len()).rev() {
                coord[k] += 1;
                if coord[k] < sample[k] {
                    break;
                }
                coord[k] = 0;
            }
        }
        Ok(Prelu { index, alpha_len: alpha_shape.iter().product() })
    }

    pub fn forward(&self, x: &[f32], alpha: &[f32]) -> OpResult<Vec<f32>> {
        let mut y = zeros(&[x.len()], "the output")?;
        if !self.index.is_empty() {
            let p = self.index.len();
            y.par_chunks_mut(p).zip(x.par_chunks(p)).for_each(|(o, i)| {
                for ((o, &v), &k) in o.iter_mut().zip(i).zip(&self.index) {
                    *o = if v > 0.0 || v.is_nan() { v } else { alpha[k] * v };
                }
            });
        }
        Ok(y)
    }

    /// (input gradient, alpha gradient summed over the batch and the shared axes). At exactly 0 both
    /// are 0, like TF's relu(x) - alpha * relu(-x).
    pub fn backward(&self, x: &[f32], alpha: &[f32], dy: &[f32]) -> OpResult<(Vec<f32>, Vec<f32>)> {
        let mut dx = zeros(&[x.len()], "the input gradient")?;
        let p = self.index.len();
        if p == 0 {
            return Ok((dx, vec![0.0; self.alpha_len]));
        }
        dx.par_chunks_mut(p).zip(x.par_chunks(p)).zip(dy.par_chunks(p)).for_each(|((d, xs), gs)| {
            for (((d, &v), &g), &k) in d.iter_mut().zip(xs).zip(gs).zip(&self.index) {
                *d = if v > 0.0 { g } else if v < 0.0 { alpha[k] * g } else { 0.0 };
            }
        });
        let zero = || vec![0.0f64; self.alpha_len];
        let da = x.par_chunks(p).zip(dy.par_chunks(p))
            .fold(zero, |mut acc, (xs, gs)| {
                for ((&v, &g), &k) in xs.iter().zip(gs).zip(&self.index) {
                    if v < 0.0 {
                        acc[k] += (g * v) as f64;
                    }
                }
                acc
            })
            .reduce(zero, |mut a, b| {
                a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
                a
            });
        Ok((dx, da.into_iter().map(|v| v as f32).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_normalised() {
        let y = Activation::parse("softmax").unwrap().forward(&[1000.0, 1000.0, 0.0, 1.0], &[2, 2]).unwrap();
        assert_eq!(&y[..2], &[0.5, 0.5]);
        assert!((y[2] + y[3] - 1.0).abs() < 1e-6 && y[3] > y[2]);
    }

    #[test]
    fn softmax_over_the_first_axis() {
        let y = Activation::new("softmax", &[], 0).unwrap().forward(&[0.0, 5.0, 0.0, 5.0], &[2, 2]).unwrap();
        assert_eq!(y, vec![0.5, 0.5, 0.5, 0.5]);
    }

    #[test]
    fn relu_backward_masks() {
        let g = Activation::Relu.backward(&[-1.0, 0.0, 2.0], &[5.0, 5.0, 5.0], &[3]).unwrap();
        assert_eq!(g, vec![0.0, 0.0, 5.0]);
    }

    #[test]
    fn sigmoid_extremes_do_not_overflow() {
        let y = Activation::Sigmoid.forward(&[-100.0, 0.0, 100.0], &[3]).unwrap();
        assert_eq!(y, vec![sigmoid(-100.0), 0.5, 1.0]);
        assert!(y[0] > 0.0 && y[0] < 1e-40);
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [(0.0, 1.0), (1.0, 0.157_299_207_050_285_1), (-2.0, 1.995_322_265_018_952_7),
                          (4.0, 1.541_725_790_028_002e-8)] {
            assert!((erfc(x) - want).abs() <= 1.1e-7 * want, "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn prelu_shares_alpha_over_axes() {
        let p = Prelu::new(&[1, 2, 2], &[1, 2]).unwrap();
        let y = p.forward(&[-1.0, -1.0, -2.0, 3.0], &[0.5, 0.25]).unwrap();
        assert_eq!(y, vec![-0.5, -0.25, -1.0, 3.0]);
        let (dx, da) = p.backward(&[-1.0, -1.0, -2.0, 3.0], &[0.5, 0.25], &[1.0; 4]).unwrap();
        assert_eq!(dx, vec![0.5, 0.25, 0.5, 1.0]);
        assert_eq!(da, vec![-3.0, -1.0]);
    }
}
