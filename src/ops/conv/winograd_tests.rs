//! Unit tests of the Winograd kernels against a direct float64 convolution and its gradients.

use super::*;
use crate::ops::geometry::Padding;

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) % 1000) as f32 / 500.0 - 1.0).collect()
}

/// Direct float64 forward, input gradient and kernel gradient of a 3×3 stride-1 convolution.
fn reference(c: &Conv2d, x: &[f32], k: &[f32], dy: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let [n, oh, ow, co] = c.output_shape();
    let (h, w, ci) = (c.rows.input, c.cols.input, c.cin);
    let (mut y, mut dx, mut dk) = (vec![0.0; n * oh * ow * co], vec![0.0; x.len()], vec![0.0; k.len()]);
    for b in 0..n { for oy in 0..oh { for ox in 0..ow { for ky in 0..3 { for kx in 0..3 {
        let (Some(iy), Some(ix)) = (c.rows.source(oy, ky), c.cols.source(ox, kx)) else { continue };
        for i in 0..ci { for o in 0..co {
            let (xi, ki, yi) = (((b * h + iy) * w + ix) * ci + i, ((ky * 3 + kx) * ci + i) * co + o, ((b * oh + oy) * ow + ox) * co + o);
            y[yi] += x[xi] as f64 * k[ki] as f64;
            dx[xi] += dy[yi] as f64 * k[ki] as f64;
            dk[ki] += dy[yi] as f64 * x[xi] as f64;
        }}
    }}}}}
    (y, dx, dk)
}

/// |a − b| within `tol` of the largest reference magnitude (Winograd's rounding scales with the terms).
fn close(what: &str, a: &[f32], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        assert!((*p as f64 - q).abs() <= tol * scale, "{what}[{i}]: {p} vs {q} (scale {scale})");
    }
}

const SHAPES: &[([usize; 4], usize, Padding)] = &[
    ([1, 3, 3, 1], 1, Padding::Valid),
    ([2, 7, 6, 3], 4, Padding::Same),
    ([1, 9, 11, 5], 16, Padding::Valid),
    ([3, 8, 8, 16], 32, Padding::Same),
    ([2, 13, 5, 2], 7, Padding::Same),
    ([1, 30, 21, 4], 48, Padding::Valid),
    ([1, 1, 1, 3], 2, Padding::Same),
    ([1, 7, 9, 37], 20, Padding::Same), // two 16-channel blocks and 5 single channels in, 16 + 4 out
];

#[test]
fn forward_and_gradients_match_the_direct_convolution() {
    for tf in [&F2, &F4] {
        for &(xs, co, pad) in SHAPES {
            let c = Conv2d::new(&xs, &[3, 3, xs[3], co], (1, 1), pad).unwrap();
            let wg = c.winograd_with(tf);
            let (x, k, b) = (data(xs.iter().product(), 1), data(9 * xs[3] * co, 2), data(co, 3));
            let dy = data(c.output_shape().iter().product(), 4);
            let (y, dx, dk) = reference(&c, &x, &k, &dy);
            let tol = if tf.m == 2 { 1e-5 } else { 5e-5 };
            close("y", &wg.forward(&x, &k, None, false).unwrap(), &y, tol);
            let yb: Vec<f64> = y.iter().enumerate().map(|(i, v)| (v + b[i % co] as f64).max(0.0)).collect();
            close("relu(y + b)", &wg.forward(&x, &k, Some(&b), true).unwrap(), &yb, tol);
            let (gx, gk, gb) = wg.backward(&x, &k, &dy, true).unwrap();
            close("dx", &gx.unwrap(), &dx, tol);
            close("dk", &gk, &dk, tol);
            let db: Vec<f64> = (0..co).map(|o| dy.iter().skip(o).step_by(co).map(|&v| v as f64).sum()).collect();
            close("db", &gb, &db, 1e-6);
        }
    }
}

#[test]
fn per_image_entry_points_match_the_batch_ones() {
    // conv_pool runs the forward, input gradient and kernel-gradient accumulation image by image.
    let c = Conv2d::new(&[3, 19, 17, 8], &[3, 3, 8, 16], (1, 1), Padding::Same).unwrap();
    for tf in [&F2, &F4] {
        let wg = c.winograd_with(tf);
        let (x, k) = (data(3 * 19 * 17 * 8, 5), data(9 * 8 * 16, 6));
        let dy = data(3 * 19 * 17 * 16, 7);
        let mut s = wg.scratch().unwrap();
        let (u, uf) = (wg.kernel(&k, false).unwrap(), wg.kernel(&k, true).unwrap());
        let y = wg.forward(&x, &k, None, false).unwrap();
        let (dx, dk, _) = wg.backward(&x, &k, &dy, true).unwrap();
        let (mut y1, mut dx1) = (vec![0.0; y.len()], vec![0.0; x.len()]);
        let mut du = wg.kernel_grad_buffer().unwrap();
        for n in 0..3 {
            let (xn, dyn_) = (&x[n * 19 * 17 * 8..][..19 * 17 * 8], &dy[n * 19 * 17 * 16..][..19 * 17 * 16]);
            wg.forward_image(xn, &u, None, false, &mut y1[n * 19 * 17 * 16..][..19 * 17 * 16], &mut s);
            wg.input_grad_image(dyn_, &uf, &mut dx1[n * 19 * 17 * 8..][..19 * 17 * 8], &mut s);
        }
        wg.accumulate_kernel_grad(&x, &dy, &mut du, &mut s);
        let mut dk1 = vec![0.0; dk.len()];
        wg.kernel_grad_into(&du, &mut dk1);
        assert_eq!(y1, y);
        assert_eq!(dx1, dx.unwrap());
        for (p, q) in dk1.iter().zip(&dk) {
            assert!((p - q).abs() <= 1e-4 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }
}

#[test]
fn kernel_gradient_of_packed_small_images_matches_the_reference() {
    // 13×13 valid: 9 tiles an image in F(4×4) (14 images fill a 128-tile block, the 15th starts the next),
    // 36 in F(2×2) (3 a block, the last block partly filled); 5×5 → 4 tiles; 20×20 → 25/81 tiles.
    for (xs, co) in [([15, 13, 13, 3], 16), ([7, 5, 5, 2], 5), ([4, 20, 20, 16], 16)] {
        let c = Conv2d::new(&xs, &[3, 3, xs[3], co], (1, 1), Padding::Valid).unwrap();
        for tf in [&F2, &F4] {
            let wg = c.winograd_with(tf);
            let (x, k) = (data(xs.iter().product(), 8), data(9 * xs[3] * co, 9));
            let dy = data(c.output_shape().iter().product(), 10);
            let (_, _, dk) = reference(&c, &x, &k, &dy);
            let (mut s, mut du) = (wg.scratch().unwrap(), wg.kernel_grad_buffer().unwrap());
            wg.accumulate_kernel_grad(&x, &dy, &mut du, &mut s);
            let mut dk1 = vec![0.0; dk.len()];
            wg.kernel_grad_into(&du, &mut dk1);
            close("dk (packed)", &dk1, &dk, if tf.m == 2 { 1e-5 } else { 5e-5 });
            let (_, dk2, _) = wg.backward(&x, &k, &dy, false).unwrap();
            close("dk (per image)", &dk2, &dk, if tf.m == 2 { 1e-5 } else { 5e-5 });
        }
    }
}

#[test]
fn the_cost_model_keeps_few_channel_layers_direct() {
    if mode() != 1 {
        return; // RCONV_WINOGRAD set for this run
    }
    let plan = |xs: [usize; 4], co| Conv2d::new(&xs, &[3, 3, xs[3], co], (1, 1), Padding::Valid).unwrap().winograd().map(|w| w.tile());
    assert_eq!(plan([32, 180, 180, 3], 32), None);
    assert_eq!(plan([64, 28, 28, 1], 32), None);
    assert!(plan([32, 89, 89, 32], 64).is_some());
    assert!(plan([32, 43, 43, 64], 128).is_some());
    // Not 3×3 stride 1: never.
    assert!(Conv2d::new(&[1, 9, 9, 64], &[3, 3, 64, 64], (2, 2), Padding::Valid).unwrap().winograd().is_none());
    assert!(Conv2d::new(&[1, 9, 9, 64], &[5, 5, 64, 64], (1, 1), Padding::Valid).unwrap().winograd().is_none());
}
