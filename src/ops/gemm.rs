//! Single-threaded SGEMM on row-major slices; callers parallelise over independent blocks so results
//! stay deterministic (no split-dependent summation order).
//!
//! Three back ends, picked at run time: rconv's own AVX-512 / AVX2 micro-kernels (`microkernel.rs`) for
//! outputs a multiple of the vector width wide, the `gemm` crate (AVX-512 / AVX2 / FMA kernels; about
//! twice as fast as `matrixmultiply` on conv shapes here) for the rest, and `matrixmultiply` as the
//! portable path.
//! Setting `RCONV_KERNELS=portable` forces the portable path, so CI tests it on any machine.
//!
//! The compute precision (`set_compute_precision`) is process-wide: while it is `BFloat16`, every
//! `sgemm`/`affine` called (by any thread) rounds its operands to bfloat16 and accumulates in float32
//! (`bf16.rs`); inputs and outputs stay float32 slices either way.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use super::microkernel;
use super::simd::multiversion;
use crate::alloc::zeros;
use crate::error::OpResult;

/// True when `RCONV_KERNELS=portable` asks for the portable GEMM (read once per process).
pub fn portable() -> bool {
    static PORTABLE: OnceLock<bool> = OnceLock::new();
    *PORTABLE.get_or_init(|| std::env::var("RCONV_KERNELS").is_ok_and(|v| v.eq_ignore_ascii_case("portable")))
}

/// The arithmetic of the GEMMs: float32 throughout, or bfloat16 operands with float32 accumulation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Precision {
    Float32,
    BFloat16,
}

static PRECISION: AtomicU8 = AtomicU8::new(0);

/// Sets the compute precision of the GEMMs called from now on, by every thread, until it is set again.
pub fn set_compute_precision(precision: Precision) {
    PRECISION.store(precision as u8, Ordering::Relaxed);
}

/// The compute precision the GEMMs use now.
pub fn compute_precision() -> Precision {
    if PRECISION.load(Ordering::Relaxed) == Precision::BFloat16 as u8 { Precision::BFloat16 } else { Precision::Float32 }
}

/// C (m×n) = op(A) · op(B) + beta · C (beta 0 or 1), with op(A) m×k and op(B) k×n given by element
/// strides, in the current compute precision. `a_t`/`b_t` read the stored row-major matrix transposed
/// (A stored k×m, B stored n×k).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize, k: usize, n: usize,
    a: &[f32], a_t: bool, lda: usize,
    b: &[f32], b_t: bool, ldb: usize,
    c: &mut [f32], ldc: usize,
    beta: f32,
) {
    if compute_precision() == Precision::BFloat16 && m > 0 && n > 0 {
        check_bounds(m, k, n, a, a_t, lda, b, b_t, ldb, c, ldc);
        let (rsa, csa) = if a_t { (1, lda) } else { (lda, 1) };
        let (rsb, csb) = if b_t { (1, ldb) } else { (ldb, 1) };
        let (a, b) = (super::bf16::Strided { data: a, rs: rsa, cs: csa }, super::bf16::Strided { data: b, rs: rsb, cs: csb });
        super::bf16::sgemm(m, k, n, a, b, c, ldc, beta != 0.0);
        return;
    }
    sgemm_f32(m, k, n, a, a_t, lda, b, b_t, ldb, c, ldc, beta);
}

#[allow(clippy::too_many_arguments)]
fn check_bounds(m: usize, k: usize, n: usize, a: &[f32], a_t: bool, lda: usize, b: &[f32], b_t: bool, ldb: usize,
                c: &[f32], ldc: usize) {
    let (rsa, csa) = if a_t { (1, lda) } else { (lda, 1) };
    let (rsb, csb) = if b_t { (1, ldb) } else { (ldb, 1) };
    if k > 0 {
        assert!(a.len() > (m - 1) * rsa + (k - 1) * csa, "sgemm: A too small");
        assert!(b.len() > (k - 1) * rsb + (n - 1) * csb, "sgemm: B too small");
    }
    assert!(c.len() >= (m - 1) * ldc + n, "sgemm: C too small");
}

/// `sgemm` in float32 whatever the compute precision.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_f32(
    m: usize, k: usize, n: usize,
    a: &[f32], a_t: bool, lda: usize,
    b: &[f32], b_t: bool, ldb: usize,
    c: &mut [f32], ldc: usize,
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = if a_t { (1, lda) } else { (lda, 1) };
    let (rsb, csb) = if b_t { (1, ldb) } else { (ldb, 1) };
    // Bounds that matrixmultiply relies on; checked here so the unsafe call below is sound.
    check_bounds(m, k, n, a, a_t, lda, b, b_t, ldb, c, ldc);
    #[cfg(target_arch = "x86_64")]
    if !b_t && (beta == 0.0 || beta == 1.0) && microkernel::fits(n) {
        // Safety: the bounds above cover every element the strides reach; `fits` checked the CPU.
        unsafe {
            microkernel::sgemm(m, k, n, a.as_ptr(), rsa, csa, b.as_ptr(), ldb, c.as_mut_ptr(), ldc, beta != 0.0);
        }
        return;
    }
    if !portable() {
        // Safety: the bounds above cover every element the strides reach.
        unsafe {
            gemm::gemm(
                m, n, k,
                c.as_mut_ptr(), 1, ldc as isize, beta != 0.0,
                a.as_ptr(), csa as isize, rsa as isize,
                b.as_ptr(), csb as isize, rsb as isize,
                beta, 1.0, false, false, false, gemm::Parallelism::None,
            );
        }
        return;
    }
    unsafe {
        matrixmultiply::sgemm(
            m, k, n, 1.0,
            a.as_ptr(), rsa as isize, csa as isize,
            b.as_ptr(), rsb as isize, csb as isize,
            beta, c.as_mut_ptr(), ldc as isize, 1,
        );
    }
}

/// out (m×n) = a (m×k) · b (k×n) + bias, then ReLU if asked: the store shared by conv and dense.
#[allow(clippy::too_many_arguments)]
pub fn affine(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], bias: Option<&[f32]>, relu: bool, out: &mut [f32]) {
    if let Some(bias) = bias {
        out.chunks_exact_mut(n).for_each(|row| row.copy_from_slice(bias));
    }
    sgemm(m, k, n, a, false, k, b, false, n, out, n, if bias.is_some() { 1.0 } else { 0.0 });
    if relu {
        super::activation::relu_in_place(out);
    }
}

/// The transpose of a row-major `rows × cols` matrix: backward passes multiply by Wᵀ, and the fast
/// kernel wants its right operand row-major.
pub fn transpose(matrix: &[f32], rows: usize, cols: usize) -> OpResult<Vec<f32>> {
    let mut out = zeros(&[rows, cols], "the transposed kernel")?;
    for (r, row) in matrix.chunks_exact(cols.max(1)).enumerate() {
        row.iter().enumerate().for_each(|(c, &v)| out[c * rows + r] = v);
    }
    Ok(out)
}

/// Sums of the columns of a row-major matrix with `cols` columns: the bias gradient.
pub fn column_sums(matrix: &[f32], cols: usize) -> OpResult<Vec<f32>> {
    let mut sums = zeros(&[cols], "the bias gradient")?;
    add_column_sums(matrix, &mut sums);
    Ok(sums)
}

multiversion! {
    /// sums += the sums of the columns of a row-major matrix with `sums.len()` columns (row by row, in order).
    pub fn add_column_sums(matrix: &[f32], sums: &mut [f32]) {
        for row in matrix.chunks_exact(sums.len()) {
            sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_operands() {
        // A = [[1,2],[3,4]] (2×2), B = [[5,6],[7,8]]
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [0.0f32; 4];
        sgemm(2, 2, 2, &a, false, 2, &b, false, 2, &mut c, 2, 0.0);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        sgemm(2, 2, 2, &a, true, 2, &b, true, 2, &mut c, 2, 0.0); // Aᵀ·Bᵀ
        assert_eq!(c, [23.0, 31.0, 34.0, 46.0]);
    }

    #[test]
    fn every_path_matches_a_naive_product() {
        // Widths that are multiples of the vector width take rconv's micro-kernel where the CPU has one;
        // row counts cover every tile height (1..=6) and the tails; the last two shapes span several of the
        // AVX2 kernel's depth (256) and row (96) blocks, one with a width of 3 AVX2 vectors.
        for &(m, k, n) in &[(1, 1, 16), (5, 9, 32), (6, 7, 48), (13, 33, 64), (7, 288, 80), (20, 5, 128), (3, 4, 5),
                            (200, 600, 24), (101, 257, 16)] {
            for a_t in [false, true] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 11) % 13) as f32 - 6.0).collect();
                let at = |r: usize, p: usize| if a_t { a[p * m + r] } else { a[r * k + p] };
                let lda = if a_t { m } else { k };
                for beta in [0.0, 1.0] {
                    let mut c: Vec<f32> = (0..m * n).map(|i| i as f32).collect();
                    let expected: Vec<f32> = (0..m * n)
                        .map(|i| beta * c[i] + (0..k).map(|p| at(i / n, p) * b[p * n + i % n]).sum::<f32>())
                        .collect();
                    sgemm(m, k, n, &a, a_t, lda, &b, false, n, &mut c, n, beta);
                    assert_eq!(c, expected, "m={m} k={k} n={n} a_t={a_t} beta={beta}");
                }
            }
        }
    }
}
