//! Optimizer steps, fused and in place, with Keras 3's formulas and float32 arithmetic.

#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;

use super::simd::multiversion;
use crate::error::{shape_err, OpResult};

const CHUNK: usize = 1 << 14;

fn same_len(what: &str, param: usize, other: usize) -> OpResult<()> {
    if param != other {
        shape_err!("{what} has {other} elements but the parameter has {param}");
    }
    Ok(())
}

/// SGD: with momentum `m = μ m - lr g; p += m` (Nesterov: `p += μ m - lr g`), else `p -= lr g`.
pub fn sgd(p: &mut [f32], g: &[f32], m: Option<&mut [f32]>, lr: f32, momentum: f32, nesterov: bool) -> OpResult<()> {
    same_len("gradient", p.len(), g.len())?;
    match m {
        Some(m) if momentum != 0.0 => {
            same_len("momentum buffer", p.len(), m.len())?;
            p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(m.par_chunks_mut(CHUNK)).for_each(|((p, g), m)| {
                for ((p, &g), m) in p.iter_mut().zip(g).zip(m) {
                    *m = momentum * *m - g * lr;
                    *p += if nesterov { momentum * *m - g * lr } else { *m };
                }
            });
        }
        None if momentum != 0.0 => shape_err!("SGD with momentum {momentum} needs a momentum buffer"),
        _ => p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(p, g)| {
            p.iter_mut().zip(g).for_each(|(p, &g)| *p -= g * lr);
        }),
    }
    Ok(())
}

/// Runs `f(param_chunk, grad_chunk, state_chunks)` over matching chunks of the parameter, its gradient and
/// its state buffers (each checked to have the parameter's length), in parallel.
fn par_update<F>(p: &mut [f32], g: &[f32], states: Vec<(&str, &mut [f32])>, f: F) -> OpResult<()>
where
    F: Fn(&mut [f32], &[f32], &mut [&mut [f32]]) + Sync + Send,
{
    same_len("gradient", p.len(), g.len())?;
    for (name, s) in &states {
        same_len(name, p.len(), s.len())?;
    }
    let mut per_chunk: Vec<Vec<&mut [f32]>> = (0..p.len().div_ceil(CHUNK)).map(|_| Vec::with_capacity(states.len())).collect();
    for (_, s) in states {
        for (c, piece) in s.chunks_mut(CHUNK).enumerate() {
            per_chunk[c].push(piece);
        }
    }
    p.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).zip(per_chunk.into_par_iter()).for_each(|((p, g), mut s)| f(p, g, &mut s));
    Ok(())
}

fn step_of(name: &str, step: u64) -> OpResult<f32> {
    if step == 0 {
        shape_err!("{name}'s step count is 1-based, got 0");
    }
    Ok(step as f32)
}

/// RMSprop's hyper-parameters (one chunk's arguments).
#[derive(Clone, Copy)]
struct RmsHyper {
    lr: f32,
    rho: f32,
    eps: f32,
    momentum: f32,
}

multiversion! {
    /// One chunk of `rmsprop`: the plain update (no momentum, not centered) as one vectorised pass.
    fn rmsprop_chunk(p: &mut [f32], g: &[f32], v: &mut [f32], m: Option<&mut [f32]>, a: Option<&mut [f32]>,
                     h: RmsHyper) {
        let RmsHyper { lr, rho, eps, momentum } = h;
        if let (None, None) = (&m, &a) {
            for ((p, &gi), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                *v = rho * *v + (1.0 - rho) * gi * gi;
                *p -= lr * gi / (*v + eps).sqrt();
            }
            return;
        }
        let (mut m, mut a) = (m, a);
        for i in 0..p.len() {
            let gi = g[i];
            v[i] = rho * v[i] + (1.0 - rho) * gi * gi;
            let denominator = match a.as_deref_mut() {
                Some(a) => {
                    a[i] = rho * a[i] + (1.0 - rho) * gi;
                    v[i] - a[i] * a[i] + eps
                }
                None => v[i] + eps,
            };
            let increment = lr * gi / denominator.sqrt();
            match m.as_deref_mut() {
                Some(m) => {
                    m[i] = momentum * m[i] + increment;
                    p[i] -= m[i];
                }
                None => p[i] -= increment,
            }
        }
    }
}

/// RMSprop: `v = ρ v + (1-ρ) g²`; centered (`a` given): `a = ρ a + (1-ρ) g`, `d = v - a² + ε`, else
/// `d = v + ε`; `inc = lr g / sqrt(d)`; with a momentum buffer `m = μ m + inc; p -= m`, else `p -= inc`.
#[allow(clippy::too_many_arguments)]
pub fn rmsprop(p: &mut [f32], g: &[f32], v: &mut [f32], m: Option<&mut [f32]>, momentum: f32, a: Option<&mut [f32]>,
               lr: f32, rho: f32, eps: f32) -> OpResult<()> {
    let (has_m, has_a) = (m.is_some(), a.is_some());
    let mut states = vec![("velocity", v)];
    states.extend(m.map(|m| ("momentum buffer", m)));
    states.extend(a.map(|a| ("average gradient", a)));
    let h = RmsHyper { lr, rho, eps, momentum };
    par_update(p, g, states, |p, g, s| {
        let mut s = s.iter_mut();
        let v = s.next().expect("velocity");
        let m = if has_m { s.next().map(|m| &mut **m) } else { None };
        let a = if has_a { s.next().map(|a| &mut **a) } else { None };
        rmsprop_chunk(p, g, v, m, a, h);
    })
}

/// Adam at 1-based `step`: `m += (g-m)(1-β1); v += (g²-v)(1-β2)`; AMSGrad (`v_hat` given):
/// `v̂ = max(v̂, v)` replaces `v` below; `p -= m α / (sqrt(v) + ε)` with `α = lr sqrt(1-β2^t) / (1-β1^t)`.
#[allow(clippy::too_many_arguments)]
pub fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], v_hat: Option<&mut [f32]>, lr: f32, beta_1: f32,
            beta_2: f32, eps: f32, step: u64) -> OpResult<()> {
    let t = step_of("Adam", step)?;
    let alpha = lr * (1.0 - beta_2.powf(t)).sqrt() / (1.0 - beta_1.powf(t));
    let mut states = vec![("first moment", m), ("second moment", v)];
    states.extend(v_hat.map(|h| ("velocity_hat", h)));
    par_update(p, g, states, |p, g, s| {
        let (m, rest) = s.split_first_mut().expect("first moment");
        let (v, rest) = rest.split_first_mut().expect("second moment");
        adam_chunk(p, g, m, v, rest.first_mut().map(|h| &mut **h), AdamHyper { alpha, beta_1, beta_2, eps });
    })
}

#[derive(Clone, Copy)]
struct AdamHyper {
    alpha: f32,
    beta_1: f32,
    beta_2: f32,
    eps: f32,
}

multiversion! {
    /// One chunk of `adam`, vectorised.
    fn adam_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], v_hat: Option<&mut [f32]>, h: AdamHyper) {
        let AdamHyper { alpha, beta_1, beta_2, eps } = h;
        match v_hat {
            None => for (((p, &gi), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m += (gi - *m) * (1.0 - beta_1);
                *v += (gi * gi - *v) * (1.0 - beta_2);
                *p -= *m * alpha / (v.sqrt() + eps);
            },
            Some(v_hat) => for ((((p, &gi), m), v), h) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                .zip(v_hat.iter_mut()) {
                *m += (gi - *m) * (1.0 - beta_1);
                *v += (gi * gi - *v) * (1.0 - beta_2);
                *h = h.max(*v);
                *p -= *m * alpha / (h.sqrt() + eps);
            },
        }
    }
}

/// Adadelta: `a = ρ a + (1-ρ) g²; Δ = -sqrt(d + ε) g / sqrt(a + ε); d = ρ d + (1-ρ) Δ²; p += lr Δ`.
pub fn adadelta(p: &mut [f32], g: &[f32], acc_grad: &mut [f32], acc_delta: &mut [f32], lr: f32, rho: f32, eps: f32) -> OpResult<()> {
    par_update(p, g, vec![("accumulated_grad", acc_grad), ("accumulated_delta_var", acc_delta)], |p, g, s| {
        for i in 0..p.len() {
            let gi = g[i];
            s[0][i] = rho * s[0][i] + (1.0 - rho) * gi * gi;
            let delta = -((s[1][i] + eps).sqrt() * gi / (s[0][i] + eps).sqrt());
            s[1][i] = rho * s[1][i] + (1.0 - rho) * delta * delta;
            p[i] += lr * delta;
        }
    })
}

/// Adagrad: `a += g²; p -= lr g / sqrt(a + ε)`.
pub fn adagrad(p: &mut [f32], g: &[f32], acc: &mut [f32], lr: f32, eps: f32) -> OpResult<()> {
    par_update(p, g, vec![("accumulator", acc)], |p, g, s| {
        for i in 0..p.len() {
            let gi = g[i];
            s[0][i] += gi * gi;
            p[i] -= lr * gi / (s[0][i] + eps).sqrt();
        }
    })
}

/// Adamax at 1-based `step`: `m += (g-m)(1-β1); u = max(β2 u, |g|); p -= lr m / ((1-β1^t)(u + ε))`.
#[allow(clippy::too_many_arguments)]
pub fn adamax(p: &mut [f32], g: &[f32], m: &mut [f32], u: &mut [f32], lr: f32, beta_1: f32, beta_2: f32, eps: f32,
              step: u64) -> OpResult<()> {
    let correction = 1.0 - beta_1.powf(step_of("Adamax", step)?);
    par_update(p, g, vec![("momentum", m), ("norm", u)], |p, g, s| {
        for i in 0..p.len() {
            let gi = g[i];
            s[0][i] += (gi - s[0][i]) * (1.0 - beta_1);
            s[1][i] = (beta_2 * s[1][i]).max(gi.abs());
            p[i] -= lr * s[0][i] / (correction * (s[1][i] + eps));
        }
    })
}

/// Nadam at 1-based `step` t, with `u_product` = Π_{k≤t} u_k already including this step's
/// `u_t = β1 (1 - ½ 0.96^t)`: `m += (g-m)(1-β1); v += (g²-v)(1-β2)`;
/// `m̂ = u_{t+1} m / (1 - u_product u_{t+1}) + (1-u_t) g / (1 - u_product)`, `v̂ = v / (1-β2^t)`,
/// `p -= lr m̂ / (sqrt(v̂) + ε)`.
#[allow(clippy::too_many_arguments)]
pub fn nadam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], lr: f32, beta_1: f32, beta_2: f32, eps: f32,
             step: u64, u_product: f32) -> OpResult<()> {
    let t = step_of("Nadam", step)?;
    let u_t = beta_1 * (1.0 - 0.5 * 0.96f32.powf(t));
    let u_t1 = beta_1 * (1.0 - 0.5 * 0.96f32.powf(t + 1.0));
    let u_product_t1 = u_product * u_t1;
    let beta_2_power = beta_2.powf(t);
    par_update(p, g, vec![("momentum", m), ("velocity", v)], |p, g, s| {
        for i in 0..p.len() {
            let gi = g[i];
            s[0][i] += (gi - s[0][i]) * (1.0 - beta_1);
            s[1][i] += (gi * gi - s[1][i]) * (1.0 - beta_2);
            let m_hat = u_t1 * s[0][i] / (1.0 - u_product_t1) + (1.0 - u_t) * gi / (1.0 - u_product);
            let v_hat = s[1][i] / (1.0 - beta_2_power);
            p[i] -= m_hat * lr / (v_hat.sqrt() + eps);
        }
    })
}

/// `sign` as Keras's `ops.sign`: 0 at 0 (and NaN stays NaN).
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// Lion: `p -= lr sign(β1 m + (1-β1) g); m = β2 m + (1-β2) g`.
pub fn lion(p: &mut [f32], g: &[f32], m: &mut [f32], lr: f32, beta_1: f32, beta_2: f32) -> OpResult<()> {
    par_update(p, g, vec![("momentum", m)], |p, g, s| {
        for i in 0..p.len() {
            let gi = g[i];
            p[i] -= lr * sign(s[0][i] * beta_1 + gi * (1.0 - beta_1));
            s[0][i] = s[0][i] * beta_2 + gi * (1.0 - beta_2);
        }
    })
}

/// Decoupled weight decay, as Keras applies it before the update: `p -= p wd lr`.
pub fn weight_decay(p: &mut [f32], wd: f32, lr: f32) {
    p.par_chunks_mut(CHUNK).for_each(|p| p.iter_mut().for_each(|p| *p -= *p * wd * lr));
}

/// Exponential moving average of a variable: `a = μ a + (1-μ) x`.
pub fn ema(average: &mut [f32], x: &[f32], momentum: f32) -> OpResult<()> {
    same_len("variable", average.len(), x.len())?;
    average.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(a, x)| {
        a.iter_mut().zip(x).for_each(|(a, &x)| *a = momentum * *a + (1.0 - momentum) * x);
    });
    Ok(())
}

/// Σ x², accumulated in f64 (for clipping by norm).
pub fn sum_squares(x: &[f32]) -> f64 {
    x.par_chunks(CHUNK).map(|c| c.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmsprop_first_step() {
        let (mut p, mut v) = ([1.0f32], [0.0f32]);
        rmsprop(&mut p, &[2.0], &mut v, None, 0.0, None, 0.1, 0.9, 1e-7).unwrap();
        assert!((v[0] - 0.4).abs() < 1e-7);
        assert!((p[0] - (1.0 - 0.1 * 2.0 / (0.4f32 + 1e-7).sqrt())).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let (mut p, mut m, mut v) = ([0.0f32], [0.0f32], [0.0f32]);
        adam(&mut p, &[3.0], &mut m, &mut v, None, 0.01, 0.9, 0.999, 1e-7, 1).unwrap();
        assert!((p[0] + 0.01).abs() < 1e-5);
    }

    #[test]
    fn sgd_momentum_needs_buffer() {
        assert!(sgd(&mut [0.0], &[1.0], None, 0.1, 0.9, false).is_err());
        let (mut p, mut m) = ([0.0f32], [0.0f32]);
        sgd(&mut p, &[1.0], Some(&mut m), 0.1, 0.9, true).unwrap();
        assert!((p[0] + 0.19).abs() < 1e-7);
    }

    #[test]
    fn state_lengths_are_checked_and_chunks_cover_everything() {
        let mut acc = vec![0.0f32; 3];
        assert!(adagrad(&mut [0.0; 2], &[1.0; 2], &mut acc, 0.1, 1e-7).is_err());
        let n = 2 * CHUNK + 5;
        let (mut p, g, mut m) = (vec![1.0f32; n], vec![-1.0f32; n], vec![0.0f32; n]);
        lion(&mut p, &g, &mut m, 0.5, 0.9, 0.99).unwrap();
        assert!(p.iter().all(|&x| x == 1.5) && m.iter().all(|&x| (x + 0.01).abs() < 1e-6));
        assert_eq!(sign(0.0), 0.0);
        assert!((sum_squares(&g) - n as f64).abs() < 1e-9);
    }
}
