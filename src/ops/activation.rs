//! Element-wise activations and softmax over the last axis, forward and backward.

use rayon::prelude::*;


use crate::alloc::{copied, zeros};
use crate::error::{shape_err, OpResult};

/// Elements per parallel work item: big enough that rayon's overhead disappears.
const CHUNK: usize = 1 << 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Sigmoid,
    Softmax,
}

impl Activation {
    pub fn parse(s: &str) -> OpResult<Self> {
        match s {
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "softmax" => Ok(Activation::Softmax),
            other => shape_err!("unknown activation '{other}' (expected relu, sigmoid or softmax)"),
        }
    }

    /// `shape` matters only to softmax, which normalises over the last axis.
    pub fn forward(self, x: &[f32], shape: &[usize]) -> OpResult<Vec<f32>> {
        // Generic helpers (not `fn` pointers) so the element function is inlined and vectorised.
        fn map(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> OpResult<Vec<f32>> {
            let mut y = zeros(&[x.len()], "the output")?;
            y.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, i)| {
                o.iter_mut().zip(i).for_each(|(o, &i)| *o = f(i));
            });
            Ok(y)
        }
        match self {
            Activation::Relu => map(x, relu),
            Activation::Sigmoid => map(x, sigmoid),
            Activation::Softmax => {
                let mut y = copied(x, "the output")?;
                let classes = last_axis(shape)?;
                y.par_chunks_mut(rows_per_chunk(classes) * classes)
                    .for_each(|c| c.chunks_exact_mut(classes).for_each(softmax_row));
                Ok(y)
            }
        }
    }

    /// Gradient with respect to the input. `saved` is the input for ReLU and the output for sigmoid
    /// and softmax, the values each derivative is cheapest to write in.
    pub fn backward(self, saved: &[f32], dy: &[f32], shape: &[usize]) -> OpResult<Vec<f32>> {
        fn pairs(saved: &[f32], dy: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> OpResult<Vec<f32>> {
            let mut dx = zeros(&[dy.len()], "the input gradient")?;
            dx.par_chunks_mut(CHUNK).zip(saved.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)).for_each(|((d, s), g)| {
                d.iter_mut().zip(s).zip(g).for_each(|((d, &v), &g)| *d = f(v, g));
            });
            Ok(dx)
        }
        match self {
            Activation::Relu => pairs(saved, dy, relu_grad),
            Activation::Sigmoid => pairs(saved, dy, |y, g| g * y * (1.0 - y)),
            Activation::Softmax => {
                let mut dx = copied(dy, "the input gradient")?;
                let classes = last_axis(shape)?;
                let chunk = rows_per_chunk(classes) * classes;
                dx.par_chunks_mut(chunk).zip(saved.par_chunks(chunk)).for_each(|(d, s)| {
                    for (g, y) in d.chunks_exact_mut(classes).zip(s.chunks_exact(classes)) {
                        let dot: f32 = g.iter().zip(y).map(|(a, b)| a * b).sum();
                        g.iter_mut().zip(y).for_each(|(gi, yi)| *gi = yi * (*gi - dot));
                    }
                });
                Ok(dx)
            }
        }
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
        Some(y) => std::borrow::Cow::Owned(relu_mask(y, dy)?),
        None => std::borrow::Cow::Borrowed(dy),
    })
}

/// `dy` masked by a ReLU's output, in parallel.
fn relu_mask(y: &[f32], dy: &[f32]) -> OpResult<Vec<f32>> {
    let mut out = zeros(&[dy.len()], "the masked output gradient")?;
    out.par_chunks_mut(CHUNK).zip(y.par_chunks(CHUNK)).zip(dy.par_chunks(CHUNK)).for_each(|((o, y), g)| {
        o.iter_mut().zip(y).zip(g).for_each(|((o, &y), &g)| *o = relu_grad(y, g));
    });
    Ok(out)
}

fn last_axis(shape: &[usize]) -> OpResult<usize> {
    match shape.last() {
        Some(&c) if c > 0 => Ok(c),
        _ => shape_err!("softmax needs at least one axis with a positive size, got shape {shape:?}"),
    }
}

fn rows_per_chunk(classes: usize) -> usize {
    (CHUNK / classes).max(1)
}

#[inline(always)]
fn relu(v: f32) -> f32 {
    // `max` would turn NaN into 0; keep it visible.
    if v > 0.0 || v.is_nan() { v } else { 0.0 }
}

#[inline(always)]
pub fn sigmoid(v: f32) -> f32 {
    // Two branches so exp never overflows.
    if v >= 0.0 { 1.0 / (1.0 + (-v).exp()) } else { let e = v.exp(); e / (1.0 + e) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_is_stable_and_normalised() {
        let y = Activation::Softmax.forward(&[1000.0, 1000.0, 0.0, 1.0], &[2, 2]).unwrap();
        assert_eq!(&y[..2], &[0.5, 0.5]);
        assert!((y[2] + y[3] - 1.0).abs() < 1e-6 && y[3] > y[2]);
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
}
