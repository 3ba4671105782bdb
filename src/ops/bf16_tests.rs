//! Unit tests of the bfloat16 GEMM back ends (against a float64 product of the rounded inputs), and an
//! ignored throughput measurement.

use super::*;

fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16") {
            all.push(Backend::Avx512Bf16);
            if amx::request() {
                all.push(Backend::Amx);
            }
        }
    }
    all
}

#[allow(clippy::too_many_arguments)]
fn run(backend: Backend, m: usize, k: usize, n: usize, a: Strided, b: Strided, c: &mut [f32], ldc: usize, acc: bool) {
    match backend {
        Backend::Portable => portable(m, k, n, a, b, c, ldc, acc),
        _ => {
            let (mut ap, mut bp) = (Vec::new(), Vec::new());
            packed(backend, m, k, n, a, b, c, ldc, acc, &mut ap, &mut bp)
        }
    }
}

#[test]
fn rounding_is_to_nearest_even() {
    assert_eq!(bits(1.0), 0x3f80);
    assert_eq!(round(1.0 + 1.0 / 256.0), 1.0); // halfway, ties to the even 1.0
    assert_eq!(round(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0); // halfway, ties to even upwards
    assert_eq!(round(1.0 + 1.5 / 256.0), 1.0 + 2.0 / 256.0);
    assert!(round(f32::NAN).is_nan());
    assert_eq!(round(f32::INFINITY), f32::INFINITY);
    assert_eq!(round(f32::MAX), f32::INFINITY);
    assert_eq!(round(-2.5e-3), -round(2.5e-3));
}

#[test]
fn every_backend_matches_a_float64_product_of_rounded_inputs() {
    let shapes = [(1, 1, 1), (3, 5, 7), (32, 32, 32), (33, 31, 17), (17, 64, 48), (70, 288, 32), (5, 129, 65), (128, 99, 40)];
    for backend in backends() {
        for &(m, k, n) in &shapes {
            for (a_t, b_t) in [(false, false), (true, false), (false, true)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729 % 977) as f32 / 977.0 - 0.5) * 2.0).collect();
                let sa = if a_t { Strided { data: &a, rs: 1, cs: m } } else { Strided { data: &a, rs: k, cs: 1 } };
                let sb = if b_t { Strided { data: &b, rs: 1, cs: k } } else { Strided { data: &b, rs: n, cs: 1 } };
                for acc in [false, true] {
                    let ldc = n + 3;
                    let mut c: Vec<f32> = (0..m * ldc).map(|i| (i % 5) as f32).collect();
                    let before = c.clone();
                    run(backend, m, k, n, sa, sb, &mut c, ldc, acc);
                    for r in 0..m {
                        for j in 0..n {
                            let mut exact = if acc { before[r * ldc + j] as f64 } else { 0.0 };
                            let mut size = exact.abs();
                            for p in 0..k {
                                let t = round(sa.at(r, p)) as f64 * round(sb.at(p, j)) as f64;
                                exact += t;
                                size += t.abs();
                            }
                            let got = c[r * ldc + j] as f64;
                            assert!((got - exact).abs() <= 1e-6 * size + 1e-30,
                                    "{backend:?} m={m} k={k} n={n} a_t={a_t} b_t={b_t} acc={acc} ({r},{j}): {got} vs {exact}");
                        }
                        assert_eq!(c[r * ldc + n..r * ldc + ldc], before[r * ldc + n..r * ldc + ldc], "{backend:?}: padding touched");
                    }
                }
            }
        }
    }
}

/// `cargo test --release bf16_gflops -- --ignored --nocapture`: one thread, the workloads' GEMM shapes
/// called the way the layers call them (128-row blocks for convolutions, whole for the dense layer).
mod bench {
    use crate::ops::gemm::{set_compute_precision, sgemm, Precision};
    use std::time::Instant;

    #[test]
    #[ignore]
    fn bf16_gflops() {
        println!("bf16 back end: {}", crate::ops::bf16::kernel_name());
        for &(m, k, n, block) in &[(8192, 288, 32, 128), (8192, 288, 64, 128), (8192, 576, 64, 128), (8192, 576, 128, 128),
                                   (8192, 1152, 128, 128), (8192, 1152, 256, 128), (4096, 2304, 256, 128), (32, 12800, 512, 32),
                                   (512, 2304, 256, 512)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 * 0.1).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let mut c = vec![0f32; m * n];
            let mut rates = Vec::new();
            for precision in [Precision::Float32, Precision::BFloat16] {
                set_compute_precision(precision);
                let mut best = f64::MAX;
                for _ in 0..5 {
                    let t = Instant::now();
                    for (i, cb) in c.chunks_mut(block * n).enumerate() {
                        sgemm(cb.len() / n, k, n, &a[i * block * k..], false, k, &b, false, n, cb, n, 0.0);
                    }
                    best = best.min(t.elapsed().as_secs_f64());
                }
                rates.push(2.0 * (m * k * n) as f64 / best / 1e9);
            }
            set_compute_precision(Precision::Float32);
            println!("m={m:5} k={k:5} n={n:3} (blocks of {block:3} rows): f32 {:6.1} GFLOP/s, bf16 {:6.1} GFLOP/s, x{:.2}",
                     rates[0], rates[1], rates[1] / rates[0]);
        }
    }
}
