//! Hand-written SGEMM micro-kernels for the shapes convnets make: outputs a multiple of the vector
//! width wide (channels), any number of rows (pixels), any depth (kernel taps or pixels); one body,
//! compiled for AVX-512 (6 rows × 64 columns: 24 zmm accumulators) and for AVX2 + FMA (6 rows × 16
//! columns: 12 ymm accumulators).
//!
//! A register tile is updated by one broadcast of A per row and one load of B per vector at each depth
//! step, so B streams from L1/L2 while every FMA unit stays busy, and neither operand is packed: the
//! `gemm` crate's generic kernels reach about half of the machine's peak on these skinny shapes (AVX-512
//! Zen 4; on a 2-core AVX2 EPYC its packing and im2col copies were 30 % of the first MNIST layer).
//! Summation order per output element is fixed (depth ascending), so results are deterministic.
//!
//! `gather_gemm`/`gather_gemm_t` read the left operand straight from the image (an implicit im2col),
//! for convolutions with few taps, where building im2col rows costs more than the multiply.

/// The instruction set the kernels run with on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
}

/// The kernels' instruction set on this CPU (checked once), or None: the `gemm` crate or the portable path.
pub fn isa() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        static ISA: std::sync::OnceLock<Option<Isa>> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            if super::gemm::portable() {
                None
            } else if is_x86_feature_detected!("avx512f") {
                Some(Isa::Avx512)
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                Some(Isa::Avx2)
            } else {
                None
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The kernels' vector width in floats (outputs must be a multiple of it), or None when they cannot run.
pub fn lanes() -> Option<usize> {
    isa().map(|isa| match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
    })
}

/// True when the kernels can compute an output `n` columns wide.
pub fn fits(n: usize) -> bool {
    lanes().is_some_and(|l| n.is_multiple_of(l))
}

/// Calls `$isa::$f(args)` for the CPU's instruction set.
macro_rules! dispatch_isa {
    ($f:ident($($arg:expr),*)) => {
        match isa() {
            #[cfg(target_arch = "x86_64")]
            Some(Isa::Avx512) => avx512::$f($($arg),*),
            #[cfg(target_arch = "x86_64")]
            Some(Isa::Avx2) => avx2::$f($($arg),*),
            _ => unreachable!("the caller checked `fits`"),
        }
    };
}

/// C (m×n) = A·B (+ C when `accumulate`). A's element (r, p) sits at `a[r*rsa + p*csa]`, B is row-major
/// with leading dimension `ldb`, C row-major with `ldc`.
///
/// # Safety
/// The pointers must cover every element the strides reach (the caller, `gemm::sgemm`, checks this),
/// and `fits(n)`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(m: usize, k: usize, n: usize, a: *const f32, rsa: usize, csa: usize, b: *const f32, ldb: usize,
                    c: *mut f32, ldc: usize, accumulate: bool) {
    dispatch_isa!(sgemm(m, k, n, a, rsa, csa, b, ldb, c, ldc, accumulate))
}

/// out (m×n) = bias + Σ_t A(r, t) · w[t] with A(r, t) = x[base[r] + off[t]], then ReLU if asked.
/// `w` is row-major taps × n.
///
/// # Safety
/// Every `base[r] + off[t]` must index into `x`, `w` must hold off.len() × n values, `out` m rows of
/// `ldo` with n ≤ ldo, `bias` n values; `fits(n)`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gather_gemm(n: usize, x: *const f32, base: &[usize], off: &[usize], w: *const f32, bias: Option<*const f32>,
                          relu: bool, out: *mut f32, ldo: usize) {
    dispatch_isa!(gather_gemm(n, x, base, off, w, bias, relu, out, ldo))
}

/// part (taps×n) += Σ_r A(r, t) · g[r] with A(r, t) = x[base[r] + off[t]]: the kernel gradient of a
/// convolution with few taps, reading the image in place. `g` is row-major base.len() × n.
///
/// # Safety
/// As for `gather_gemm`; `part` must hold off.len() × n values.
pub unsafe fn gather_gemm_t(n: usize, x: *const f32, base: &[usize], off: &[usize], g: *const f32, part: *mut f32) {
    dispatch_isa!(gather_gemm_t(n, x, base, off, g, part))
}

/// Runs `$tile::<rows, vectors>(args)` for rows 1..=6 and the vector counts listed.
macro_rules! tiles {
    ($tile:ident, $rows:expr, $vectors:expr, $nvs:tt, $args:tt) => {
        match $rows {
            1 => tiles!(@nv $tile, 1, $vectors, $nvs, $args),
            2 => tiles!(@nv $tile, 2, $vectors, $nvs, $args),
            3 => tiles!(@nv $tile, 3, $vectors, $nvs, $args),
            4 => tiles!(@nv $tile, 4, $vectors, $nvs, $args),
            5 => tiles!(@nv $tile, 5, $vectors, $nvs, $args),
            6 => tiles!(@nv $tile, 6, $vectors, $nvs, $args),
            _ => unreachable!("rows is 1..=6"),
        }
    };
    (@nv $tile:ident, $r:literal, $vectors:expr, [$($nv:literal),+], $args:tt) => {
        match $vectors {
            $( $nv => $tile::<$r, $nv> $args, )+
            _ => unreachable!("vectors is 1..=NV_MAX"),
        }
    };
}

/// The kernels for one instruction set: `$feature` enabled, vectors of `$lanes` floats, up
/// to `$nv` vectors per tile row, depth blocks of `$kc` and row blocks of `$mc` (256 and 96 for both: on an
/// AVX-512 Xeon, unblocked depth left a 9×9×256→256 convolution's 2,304-deep GEMM at 125 GFLOP/s, blocked
/// 350; shallower layers unchanged), with that set's load/store/broadcast/FMA/add/max intrinsics.
macro_rules! kernels {
    ($isa:ident, $feature:literal, $lanes:literal, [$($nv:literal),+], $kc:expr, $mc:expr, $zero:ident, $load:ident, $store:ident,
     $set1:ident, $fmadd:ident, $add:ident, $max:ident) => {
        #[cfg(target_arch = "x86_64")]
        mod $isa {
            use std::arch::x86_64::*;

            /// Vectors per tile row (the register budget), and the tile rows.
            const NV_MAX: usize = [$($nv),+].len();
            const MR: usize = 6;
            const KC: usize = $kc;
            const MC: usize = $mc;

            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn sgemm(m: usize, k: usize, n: usize, a: *const f32, rsa: usize, csa: usize, b: *const f32,
                                ldb: usize, c: *mut f32, ldc: usize, accumulate: bool) {
                debug_assert!(n.is_multiple_of($lanes));
                // Depth blocks of KC (summed into C in order: a fixed order per shape) and row blocks of MC,
                // so a row block's A stays in L2 across the column groups and a column group's B in L1.
                let mut p0 = 0;
                loop {
                    let (kc, accumulate) = ((k - p0).min(KC), accumulate || p0 > 0);
                    let (a, b) = (a.add(p0 * csa), b.add(p0 * ldb));
                    let mut i0 = 0;
                    while i0 < m {
                        let mc = (m - i0).min(MC);
                        let mut j = 0;
                        while j < n {
                            let vectors = ((n - j) / $lanes).min(NV_MAX);
                            let mut i = i0;
                            while i < i0 + mc {
                                let rows = (i0 + mc - i).min(MR);
                                let (a, b, c) = (a.add(i * rsa), b.add(j), c.add(i * ldc + j));
                                tiles!(tile, rows, vectors, [$($nv),+], (kc, a, rsa, csa, b, ldb, c, ldc, accumulate));
                                i += rows;
                            }
                            j += vectors * $lanes;
                        }
                        i0 += mc;
                    }
                    p0 += kc;
                    if p0 >= k {
                        break;
                    }
                }
            }

            /// One R × (lanes·NV) tile of C over the full depth `k`.
            #[target_feature(enable = $feature)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            unsafe fn tile<const R: usize, const NV: usize>(k: usize, a: *const f32, rsa: usize, csa: usize, b: *const f32,
                                                             ldb: usize, c: *mut f32, ldc: usize, accumulate: bool) {
                let mut acc = [[$zero(); NV]; R];
                for p in 0..k {
                    let row = b.add(p * ldb);
                    let mut bv = [$zero(); NV];
                    for (v, slot) in bv.iter_mut().enumerate() {
                        *slot = $load(row.add($lanes * v));
                    }
                    let col = a.add(p * csa);
                    for (r, acc_row) in acc.iter_mut().enumerate() {
                        let av = $set1(*col.add(r * rsa));
                        for (slot, &bvv) in acc_row.iter_mut().zip(&bv) {
                            *slot = $fmadd(av, bvv, *slot);
                        }
                    }
                }
                for (r, acc_row) in acc.iter().enumerate() {
                    for (v, &sum) in acc_row.iter().enumerate() {
                        let out = c.add(r * ldc + $lanes * v);
                        let value = if accumulate { $add(sum, $load(out)) } else { sum };
                        $store(out, value);
                    }
                }
            }

            #[target_feature(enable = $feature)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn gather_gemm(n: usize, x: *const f32, base: &[usize], off: &[usize], w: *const f32,
                                      bias: Option<*const f32>, relu: bool, out: *mut f32, ldo: usize) {
                debug_assert!(n.is_multiple_of($lanes));
                let mut j = 0;
                while j < n {
                    let vectors = ((n - j) / $lanes).min(NV_MAX);
                    for (i, rows) in base.chunks(MR).enumerate() {
                        let (w, out, bias) = (w.add(j), out.add(i * MR * ldo + j), bias.map(|b| b.add(j)));
                        tiles!(gather_tile, rows.len(), vectors, [$($nv),+], (x, rows, off, w, n, bias, relu, out, ldo));
                    }
                    j += vectors * $lanes;
                }
            }

            #[target_feature(enable = $feature)]
            #[inline]
            #[allow(clippy::too_many_arguments)]
            unsafe fn gather_tile<const R: usize, const NV: usize>(x: *const f32, base: &[usize], off: &[usize],
                                                                    w: *const f32, ldw: usize, bias: Option<*const f32>,
                                                                    relu: bool, out: *mut f32, ldo: usize) {
                let mut acc = [[$zero(); NV]; R];
                let mut src = [x; R];
                for (s, &b) in src.iter_mut().zip(base) {
                    *s = x.add(b);
                }
                for (t, &o) in off.iter().enumerate() {
                    let row = w.add(t * ldw);
                    let mut wv = [$zero(); NV];
                    for (v, slot) in wv.iter_mut().enumerate() {
                        *slot = $load(row.add($lanes * v));
                    }
                    for (acc_row, s) in acc.iter_mut().zip(&src) {
                        let a = $set1(*s.add(o));
                        for (slot, &wvv) in acc_row.iter_mut().zip(&wv) {
                            *slot = $fmadd(a, wvv, *slot);
                        }
                    }
                }
                // The bias is added after the sum, like the im2col path (C = A·B + C), so both round alike;
                // max(0, sum) keeps NaN like `relu`.
                let zero = $zero();
                for (r, acc_row) in acc.iter().enumerate() {
                    for (v, &sum) in acc_row.iter().enumerate() {
                        let sum = match bias {
                            Some(b) => $add(sum, $load(b.add($lanes * v))),
                            None => sum,
                        };
                        $store(out.add(r * ldo + $lanes * v), if relu { $max(zero, sum) } else { sum });
                    }
                }
            }

            #[target_feature(enable = $feature)]
            pub unsafe fn gather_gemm_t(n: usize, x: *const f32, base: &[usize], off: &[usize], g: *const f32,
                                        part: *mut f32) {
                debug_assert!(n.is_multiple_of($lanes));
                let mut j = 0;
                while j < n {
                    let vectors = ((n - j) / $lanes).min(NV_MAX);
                    for (i, taps) in off.chunks(MR).enumerate() {
                        let (g, part) = (g.add(j), part.add(i * MR * n + j));
                        tiles!(gather_tile_t, taps.len(), vectors, [$($nv),+], (x, base, taps, g, n, part));
                    }
                    j += vectors * $lanes;
                }
            }

            #[target_feature(enable = $feature)]
            #[inline]
            unsafe fn gather_tile_t<const R: usize, const NV: usize>(x: *const f32, base: &[usize], off: &[usize],
                                                                      g: *const f32, n: usize, part: *mut f32) {
                let mut acc = [[$zero(); NV]; R];
                let mut o = [0usize; R];
                o.copy_from_slice(off);
                for (r, &b) in base.iter().enumerate() {
                    let row = g.add(r * n);
                    let mut gv = [$zero(); NV];
                    for (v, slot) in gv.iter_mut().enumerate() {
                        *slot = $load(row.add($lanes * v));
                    }
                    let src = x.add(b);
                    for (acc_row, &t) in acc.iter_mut().zip(&o) {
                        let a = $set1(*src.add(t));
                        for (slot, &gvv) in acc_row.iter_mut().zip(&gv) {
                            *slot = $fmadd(a, gvv, *slot);
                        }
                    }
                }
                for (t, acc_row) in acc.iter().enumerate() {
                    for (v, &sum) in acc_row.iter().enumerate() {
                        let p = part.add(t * n + $lanes * v);
                        $store(p, $add(sum, $load(p)));
                    }
                }
            }
        }
    };
}

kernels!(avx512, "avx512f", 16, [1, 2, 3, 4], 256, 96, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps,
         _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_max_ps);
kernels!(avx2, "avx2,fma", 8, [1, 2], 256, 96, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps,
         _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_max_ps);
