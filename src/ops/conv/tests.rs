//! Unit tests of the direct convolution against a float64 reference, its adjoint and its error paths.

use super::*;

/// Direct 7-loop convolution in f64, the unit tests' reference.
fn naive(c: &Conv2d, x: &[f32], k: &[f32]) -> Vec<f64> {
    let [n, oh, ow, co] = c.output_shape();
    let (w, ci, kh, kw) = (c.cols.input, c.cin, c.rows.window, c.cols.window);
    let h = c.rows.input;
    let mut y = vec![0.0; n * oh * ow * co];
    for b in 0..n { for oy in 0..oh { for ox in 0..ow { for o in 0..co {
        let mut s = 0.0f64;
        for ky in 0..kh { for kx in 0..kw {
            let (Some(iy), Some(ix)) = (c.rows.source(oy, ky), c.cols.source(ox, kx)) else { continue };
            for i in 0..ci {
                s += x[((b * h + iy) * w + ix) * ci + i] as f64 * k[((ky * kw + kx) * ci + i) * co + o] as f64;
            }
        }}
        y[((b * oh + oy) * ow + ox) * co + o] = s;
    }}}}
    y
}

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) % 1000) as f32 / 500.0 - 1.0).collect()
}

#[test]
fn forward_matches_naive_over_shapes() {
    for &(n, h, w, ci, kh, kw, co, s, pad) in &[
        (1, 5, 5, 1, 3, 3, 2, (1, 1), Padding::Valid),
        (2, 7, 6, 3, 3, 2, 4, (2, 1), Padding::Same),
        (3, 4, 4, 2, 1, 1, 5, (1, 1), Padding::Valid),
        (1, 9, 9, 2, 2, 2, 3, (3, 3), Padding::Same),
        (2, 3, 3, 1, 3, 3, 1, (1, 1), Padding::Valid),
        (1, 40, 40, 2, 3, 3, 3, (1, 1), Padding::Same),
        // Few taps and whole vectors of channels: the gather kernels (on AVX-512 CPUs).
        (2, 9, 7, 1, 3, 3, 32, (1, 1), Padding::Same),
        (1, 8, 8, 3, 3, 2, 16, (2, 3), Padding::Same),
        (3, 6, 6, 2, 2, 2, 64, (1, 1), Padding::Valid),
        (1, 5, 5, 1, 3, 3, 48, (3, 3), Padding::Valid),
        (1, 7, 7, 1, 3, 3, 80, (2, 2), Padding::Same),
    ] {
        let c = Conv2d::new(&[n, h, w, ci], &[kh, kw, ci, co], s, pad).unwrap();
        let x = data(n * h * w * ci, 1);
        let k = data(kh * kw * ci * co, 7);
        let y = c.forward(&x, &k, None, false).unwrap();
        for (a, b) in y.iter().zip(naive(&c, &x, &k)) {
            assert!((*a as f64 - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

#[test]
fn backward_is_the_adjoint_of_forward() {
    // <dy, conv(x)> must equal <dx, x> and <dk, k> for a linear map (the second shape gathers).
    for (xs, ks, strides) in [([2, 6, 5, 3], [3, 2, 3, 4], (2, 1)), ([3, 7, 6, 2], [3, 3, 2, 32], (1, 2))] {
        let c = Conv2d::new(&xs, &ks, strides, Padding::Same).unwrap();
        let x = data(xs.iter().product(), 3);
        let k = data(ks.iter().product(), 5);
        let y = c.forward(&x, &k, None, false).unwrap();
        let dy = data(y.len(), 11);
        let (dx, dk, _) = c.backward(&x, &k, &dy, true, None).unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>();
        let lhs = dot(&dy, &y);
        assert!((lhs - dot(&dx.unwrap(), &x)).abs() < 1e-3 * lhs.abs().max(1.0));
        assert!((lhs - dot(&dk, &k)).abs() < 1e-3 * lhs.abs().max(1.0));
    }
}

#[test]
fn whole_and_blocked_backward_agree() {
    // `backward` picks one by size; both must give the same gradients on any shape.
    for (xs, ks, strides, pad) in [([3, 7, 6, 5], [3, 2, 5, 4], (1, 2), Padding::Same), ([2, 9, 9, 8], [3, 3, 8, 16], (2, 2), Padding::Valid),
                                   ([1, 5, 5, 64], [3, 3, 64, 64], (1, 1), Padding::Valid)] {
        let c = Conv2d::new(&xs, &ks, strides, pad).unwrap();
        let (x, k) = (data(xs.iter().product(), 3), data(ks.iter().product(), 5));
        let dy = data(c.output_shape().iter().product(), 11);
        let (wdx, wdk, wdb) = c.backward_whole(&x, &k, &dy, true).unwrap();
        let (bdx, bdk, bdb) = c.backward_blocked(&c.operand(&x).unwrap(), &k, &dy, true).unwrap();
        for (a, b) in [(wdx.unwrap(), bdx.unwrap()), (wdk, bdk), (wdb, bdb)] {
            for (p, q) in a.iter().zip(&b) {
                assert!((p - q).abs() <= 1e-4 * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }
}

#[test]
fn fused_relu_matches_separate_passes() {
    let c = Conv2d::new(&[2, 5, 5, 2], &[3, 3, 2, 3], (1, 1), Padding::Same).unwrap();
    let (x, k, b) = (data(100, 1), data(54, 2), [0.1, -0.2, 0.0]);
    let z = c.forward(&x, &k, Some(&b), false).unwrap();
    let y = c.forward(&x, &k, Some(&b), true).unwrap();
    assert_eq!(y, z.iter().map(|&v| v.max(0.0)).collect::<Vec<_>>());
    let dy = data(y.len(), 3);
    let masked: Vec<f32> = dy.iter().zip(&y).map(|(&g, &v)| if v > 0.0 { g } else { 0.0 }).collect();
    assert_eq!(c.backward(&x, &k, &dy, true, Some(&y)).unwrap(), c.backward(&x, &k, &masked, true, None).unwrap());
}

#[test]
fn shape_errors() {
    assert!(Conv2d::new(&[1, 5, 5, 2], &[3, 3, 3, 4], (1, 1), Padding::Valid).is_err());
    assert!(Conv2d::new(&[1, 2, 5, 2], &[3, 3, 2, 4], (1, 1), Padding::Valid).is_err());
    assert!(Conv2d::new(&[1, 2, 5, 2], &[3, 3, 2, 4], (1, 1), Padding::Same).is_ok());
    assert!(Conv2d::new(&[5, 5, 2], &[3, 3, 2, 4], (1, 1), Padding::Valid).is_err());
}

#[test]
fn sizes_beyond_memory_are_errors_not_aborts() {
    use crate::error::OpError;
    // Products that overflow a usize are refused with the geometry.
    let huge = Conv2d::new(&[1 << 40, 1 << 20, 1, 1], &[1, 1, 1, 1 << 20], (1, 1), Padding::Same).unwrap_err();
    assert!(matches!(huge, OpError::Memory(ref m) if m.contains("too large")), "{huge:?}");
    // A 2 × 1 kernel over 2^49 channels: each thread's im2col scratch (512 × 2^50 floats) cannot be
    // allocated. Every worker records the failure instead of aborting; no data is ever read.
    let c = Conv2d::new(&[1, 2, 1, 1 << 49], &[2, 1, 1 << 49, 1], (1, 1), Padding::Valid).unwrap();
    let err = c.forward(&[], &[], None, false).unwrap_err();
    assert!(matches!(err, OpError::Memory(ref m) if m.contains("im2col scratch")), "{err:?}");
    let err = c.backward(&[], &[], &[0.0], false, None).unwrap_err();
    assert!(matches!(err, OpError::Memory(_)), "{err:?}");
}
