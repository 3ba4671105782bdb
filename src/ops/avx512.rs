//! Hand-written AVX-512 SGEMM micro-kernel for the shapes convnets make: outputs a multiple of 16
//! wide (channels), any number of rows (pixels), any depth (kernel taps or pixels).
//!
//! A register tile of 6 rows × 64 columns (24 zmm accumulators) is updated by one broadcast of A and
//! four loads of B per depth step, so B streams from L1/L2 while every FMA unit stays busy; the `gemm`
//! crate's generic kernels reach about half of this machine's peak on these skinny shapes. Summation
//! order per output element is fixed (depth ascending), so results are deterministic.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// True when this CPU can run the kernels (checked once).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// C (m×n) = A·B (+ C when `accumulate`). A's element (r, p) sits at `a[r*rsa + p*csa]`, B is row-major
/// with leading dimension `ldb`, C row-major with `ldc`. Needs `n % 16 == 0` and `available()`.
///
/// # Safety
/// The slices must cover every element the strides reach (the caller, `gemm::sgemm`, checks this), and
/// the CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(m: usize, k: usize, n: usize, a: *const f32, rsa: usize, csa: usize, b: *const f32, ldb: usize,
                    c: *mut f32, ldc: usize, accumulate: bool) {
    debug_assert!(n.is_multiple_of(16));
    let mut j = 0;
    while j < n {
        let vectors = ((n - j) / 16).min(4);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(6);
            let (a, b, c) = (a.add(i * rsa), b.add(j), c.add(i * ldc + j));
            macro_rules! dispatch {
                ($($r:literal),*) => {
                    match (rows, vectors) {
                        $( ($r, 4) => tile::<$r, 4>(k, a, rsa, csa, b, ldb, c, ldc, accumulate),
                           ($r, 3) => tile::<$r, 3>(k, a, rsa, csa, b, ldb, c, ldc, accumulate),
                           ($r, 2) => tile::<$r, 2>(k, a, rsa, csa, b, ldb, c, ldc, accumulate),
                           ($r, _) => tile::<$r, 1>(k, a, rsa, csa, b, ldb, c, ldc, accumulate), )*
                        _ => unreachable!("rows is 1..=6"),
                    }
                };
            }
            dispatch!(1, 2, 3, 4, 5, 6);
            i += rows;
        }
        j += vectors * 16;
    }
}

/// One MR × (16·NV) tile of C over the full depth `k`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const MR: usize, const NV: usize>(k: usize, a: *const f32, rsa: usize, csa: usize, b: *const f32,
                                                  ldb: usize, c: *mut f32, ldc: usize, accumulate: bool) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for p in 0..k {
        let row = b.add(p * ldb);
        let mut bv = [_mm512_setzero_ps(); NV];
        for (v, slot) in bv.iter_mut().enumerate() {
            *slot = _mm512_loadu_ps(row.add(16 * v));
        }
        let col = a.add(p * csa);
        for (r, acc_row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*col.add(r * rsa));
            for (slot, &bvv) in acc_row.iter_mut().zip(&bv) {
                *slot = _mm512_fmadd_ps(av, bvv, *slot);
            }
        }
    }
    for (r, acc_row) in acc.iter().enumerate() {
        for (v, &sum) in acc_row.iter().enumerate() {
            let out = c.add(r * ldc + 16 * v);
            let value = if accumulate { _mm512_add_ps(sum, _mm512_loadu_ps(out)) } else { sum };
            _mm512_storeu_ps(out, value);
        }
    }
}

/// out (m×n) = bias + Σ_t A(r, t) · w[t] with A(r, t) = x[base[r] + off[t]], then ReLU if asked: a GEMM
/// whose left operand is read straight from the image (an implicit im2col), for convolutions with few
/// taps, where building im2col rows costs more than the multiply. `w` is row-major taps × n.
///
/// # Safety
/// Every `base[r] + off[t]` must index into `x`, `w` must hold off.len() × n values, `out` m rows of
/// `ldo` with n ≤ ldo, `bias` n values; n % 16 == 0; the CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub unsafe fn gather_gemm(n: usize, x: *const f32, base: &[usize], off: &[usize], w: *const f32, bias: Option<*const f32>,
                          relu: bool, out: *mut f32, ldo: usize) {
    debug_assert!(n.is_multiple_of(16));
    let mut j = 0;
    while j < n {
        let vectors = ((n - j) / 16).min(4);
        for (i, rows) in base.chunks(6).enumerate() {
            let (w, out, bias) = (w.add(j), out.add(i * 6 * ldo + j), bias.map(|b| b.add(j)));
            macro_rules! dispatch {
                ($($r:literal),*) => {
                    match (rows.len(), vectors) {
                        $( ($r, 4) => gather_tile::<$r, 4>(x, rows, off, w, n, bias, relu, out, ldo),
                           ($r, 3) => gather_tile::<$r, 3>(x, rows, off, w, n, bias, relu, out, ldo),
                           ($r, 2) => gather_tile::<$r, 2>(x, rows, off, w, n, bias, relu, out, ldo),
                           ($r, _) => gather_tile::<$r, 1>(x, rows, off, w, n, bias, relu, out, ldo), )*
                        _ => unreachable!("rows is 1..=6"),
                    }
                };
            }
            dispatch!(1, 2, 3, 4, 5, 6);
        }
        j += vectors * 16;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn gather_tile<const MR: usize, const NV: usize>(x: *const f32, base: &[usize], off: &[usize], w: *const f32, ldw: usize,
                                                         bias: Option<*const f32>, relu: bool, out: *mut f32, ldo: usize) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut src = [x; MR];
    for (s, &b) in src.iter_mut().zip(base) {
        *s = x.add(b);
    }
    for (t, &o) in off.iter().enumerate() {
        let row = w.add(t * ldw);
        let mut wv = [_mm512_setzero_ps(); NV];
        for (v, slot) in wv.iter_mut().enumerate() {
            *slot = _mm512_loadu_ps(row.add(16 * v));
        }
        for (acc_row, s) in acc.iter_mut().zip(&src) {
            let a = _mm512_set1_ps(*s.add(o));
            for (slot, &wvv) in acc_row.iter_mut().zip(&wv) {
                *slot = _mm512_fmadd_ps(a, wvv, *slot);
            }
        }
    }
    // The bias is added after the sum, like the im2col path (C = A·B + C), so both round alike; max(0,
    // sum) keeps NaN like `relu`.
    let zero = _mm512_setzero_ps();
    for (r, acc_row) in acc.iter().enumerate() {
        for (v, &sum) in acc_row.iter().enumerate() {
            let sum = match bias {
                Some(b) => _mm512_add_ps(sum, _mm512_loadu_ps(b.add(16 * v))),
                None => sum,
            };
            _mm512_storeu_ps(out.add(r * ldo + 16 * v), if relu { _mm512_max_ps(zero, sum) } else { sum });
        }
    }
}

/// part (taps×n) += Σ_r A(r, t) · g[r] with A(r, t) = x[base[r] + off[t]]: the kernel gradient of a
/// convolution with few taps, reading the image in place. `g` is row-major base.len() × n.
///
/// # Safety
/// As for `gather_gemm`; `part` must hold off.len() × n values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn gather_gemm_t(n: usize, x: *const f32, base: &[usize], off: &[usize], g: *const f32, part: *mut f32) {
    debug_assert!(n.is_multiple_of(16));
    let mut j = 0;
    while j < n {
        let vectors = ((n - j) / 16).min(4);
        for (i, taps) in off.chunks(6).enumerate() {
            let (g, part) = (g.add(j), part.add(i * 6 * n + j));
            macro_rules! dispatch {
                ($($r:literal),*) => {
                    match (taps.len(), vectors) {
                        $( ($r, 4) => gather_tile_t::<$r, 4>(x, base, taps, g, n, part),
                           ($r, 3) => gather_tile_t::<$r, 3>(x, base, taps, g, n, part),
                           ($r, 2) => gather_tile_t::<$r, 2>(x, base, taps, g, n, part),
                           ($r, _) => gather_tile_t::<$r, 1>(x, base, taps, g, n, part), )*
                        _ => unreachable!("taps is 1..=6"),
                    }
                };
            }
            dispatch!(1, 2, 3, 4, 5, 6);
        }
        j += vectors * 16;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn gather_tile_t<const MR: usize, const NV: usize>(x: *const f32, base: &[usize], off: &[usize], g: *const f32, n: usize,
                                                           part: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    let mut o = [0usize; MR];
    o.copy_from_slice(off);
    for (r, &b) in base.iter().enumerate() {
        let row = g.add(r * n);
        let mut gv = [_mm512_setzero_ps(); NV];
        for (v, slot) in gv.iter_mut().enumerate() {
            *slot = _mm512_loadu_ps(row.add(16 * v));
        }
        let src = x.add(b);
        for (acc_row, &t) in acc.iter_mut().zip(&o) {
            let a = _mm512_set1_ps(*src.add(t));
            for (slot, &gvv) in acc_row.iter_mut().zip(&gv) {
                *slot = _mm512_fmadd_ps(a, gvv, *slot);
            }
        }
    }
    for (t, acc_row) in acc.iter().enumerate() {
        for (v, &sum) in acc_row.iter().enumerate() {
            let p = part.add(t * n + 16 * v);
            _mm512_storeu_ps(p, _mm512_add_ps(sum, _mm512_loadu_ps(p)));
        }
    }
}
