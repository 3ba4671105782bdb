//! Winograd's tile transforms (Bᵀ d B of input tiles, Aᵀ P A of product tiles into the output, A dY Aᵀ of
//! output-gradient tiles), one tile and 16 channels at a time in registers, with the transform matrices
//! as compile-time constants so that the unrolled code carries no zero terms. Each output element is the
//! same sum, in the same order, on every instruction set.

use super::{plane, Geom, Transform, F2_AT, F2_BT, F4_AT, F4_BT};
use crate::ops::simd::multiversion;

/// Channels per register block of the tile transforms: one AVX-512 vector (two AVX2 ones).
const LANES: usize = 16;

/// One transform set as compile-time constants, so that the tile transforms below unroll into straight-line
/// vector code with the zero coefficients gone (`Transform` holds the same matrices for the rest).
trait Tiles {
    /// Bᵀ (α×α) and Aᵀ (m×α) in 6-wide rows.
    const BT: [[f32; 6]; 6];
    const AT: [[f32; 6]; 4];
}

struct Tiles2;
struct Tiles4;

impl Tiles for Tiles2 {
    const BT: [[f32; 6]; 6] = rows6(F2_BT, 4);
    const AT: [[f32; 6]; 4] = rows6(F2_AT, 4);
}

impl Tiles for Tiles4 {
    const BT: [[f32; 6]; 6] = rows6(F4_BT, 6);
    const AT: [[f32; 6]; 4] = rows6(F4_AT, 6);
}

/// A row-major R×α matrix (N = R·α values) in 6-wide rows, zeros beyond α.
const fn rows6<const N: usize, const R: usize>(m: [f32; N], a: usize) -> [[f32; 6]; R] {
    let mut out = [[0.0; 6]; R];
    let mut i = 0;
    while i < N {
        out[i / a][i % a] = m[i];
        i += 1;
    }
    out
}

/// Σ_k coef(k) · x[k] over k < n, in order of k from zero, skipping zero coefficients (constants here, so
/// the skipped terms cost nothing): the same operations, in the same order, for every instruction set.
/// A ±1 coefficient is an add or a subtract and the first term starts the sum: the same values as
/// multiplying and adding to zero (up to the sign of a zero sum), with 2/5 of F(4×4)'s and all of F(2×2)'s
/// multiplies gone (Rust does not contract a · b + c, so each was a multiply and an add).
#[inline(always)]
fn dot<const W: usize>(n: usize, coef: impl Fn(usize) -> f32, x: impl Fn(usize) -> [f32; W]) -> [f32; W] {
    let mut acc = [0.0f32; W];
    let mut first = true;
    for k in 0..n {
        let c = coef(k);
        if c != 0.0 {
            let v = x(k);
            match (first, c) {
                (true, 1.0) => acc = v,
                (true, -1.0) => acc.iter_mut().zip(v).for_each(|(a, v)| *a = -v),
                (true, _) => acc.iter_mut().zip(v).for_each(|(a, v)| *a = c * v),
                (false, 1.0) => acc.iter_mut().zip(v).for_each(|(a, v)| *a += v),
                (false, -1.0) => acc.iter_mut().zip(v).for_each(|(a, v)| *a -= v),
                (false, _) => acc.iter_mut().zip(v).for_each(|(a, v)| *a += c * v),
            }
            first = false;
        }
    }
    acc
}

/// A matrix of W-lane vectors that the caller fills completely, element by element, before `assume_init`:
/// zero-initialising it instead (α²·W floats, 2.3 KB for F(4×4)) compiled to a `memset` call per tile and
/// channel block, 10 % of a backward pass's time.
struct Uninit<const W: usize, const R: usize, const C: usize>(std::mem::MaybeUninit<[[[f32; W]; C]; R]>, [[bool; C]; R]);

impl<const W: usize, const R: usize, const C: usize> Uninit<W, R, C> {
    #[inline(always)]
    fn new() -> Self {
        Self(std::mem::MaybeUninit::uninit(), [[false; C]; R])
    }

    #[inline(always)]
    fn set(&mut self, i: usize, j: usize, v: [f32; W]) {
        assert!(i < R && j < C);
        // Safety: (i, j) is inside the R × C matrix.
        unsafe { self.0.as_mut_ptr().cast::<[f32; W]>().add(i * C + j).write(v) };
        if cfg!(debug_assertions) {
            self.1[i][j] = true;
        }
    }

    #[inline(always)]
    fn assume_init(&self) -> &[[[f32; W]; C]; R] {
        debug_assert!(self.1.iter().flatten().all(|&w| w), "an element was not written");
        // Safety: the callers write every element (checked in debug builds); any bits are a valid f32.
        // (A reference, not a move: moving the matrix out compiles to a `memcpy` call of its own.)
        unsafe { self.0.assume_init_ref() }
    }
}

#[inline(always)]
fn load<const W: usize>(src: &[f32]) -> [f32; W] {
    let mut v = [0.0f32; W];
    v.copy_from_slice(&src[..W]);
    v
}

/// Runs `$f::<Tiles2 or Tiles4, α, m, LANES or 1>(c0, args)` over the channel blocks of `c` channels:
/// whole blocks of LANES, then the rest one channel at a time. (Plain loops: an iterator adapter's fold
/// would be a function of its own, compiled without the clone's instruction set.)
macro_rules! per_block {
    ($tf:expr, $c:expr, $f:ident($($arg:expr),*)) => {{
        let full = $c / LANES * LANES;
        let mut c0 = 0;
        if $tf.m == 2 {
            while c0 < full {
                $f::<Tiles2, 4, 2, LANES>(c0, $($arg),*);
                c0 += LANES;
            }
            while c0 < $c {
                $f::<Tiles2, 4, 2, 1>(c0, $($arg),*);
                c0 += 1;
            }
        } else {
            while c0 < full {
                $f::<Tiles4, 6, 4, LANES>(c0, $($arg),*);
                c0 += LANES;
            }
            while c0 < $c {
                $f::<Tiles4, 6, 4, 1>(c0, $($arg),*);
                c0 += 1;
            }
        }
    }};
}

multiversion! {
    /// v[e][q][..] = (Bᵀ d B)[e] for tiles t0..t0 + n of one image (d the tile gathered from `input`,
    /// zero outside it).
    pub(super) fn input_tiles(tf: &Transform, g: &Geom, input: &[f32], t0: usize, n: usize, v: &mut [f32]) {
        for q in 0..n {
            per_block!(tf, g.cin, input_block(g, input, t0 + q, q, v));
        }
    }
}

/// Channels c0..c0 + W of input tile `tile` into slot `q` of `v` (A = α, M = m of `T`).
#[inline(always)]
fn input_block<T: Tiles, const A: usize, const M: usize, const W: usize>(c0: usize, g: &Geom, input: &[f32], tile: usize,
                                                                         q: usize, v: &mut [f32]) {
    let c = g.cin;
    let tw = g.ow.div_ceil(M);
    let (y0, x0) = (((tile / tw) * M) as isize - g.pad_y as isize, ((tile % tw) * M) as isize - g.pad_x as isize);
    // t[i][j] = Σ_k Bᵀ[i][k] d[k][j], a column of d at a time, then v[i][j] = Σ_k t[i][k] Bᵀ[j][k].
    let mut t = Uninit::<W, A, A>::new();
    for j in 0..A {
        let ix = x0 + j as isize;
        let mut col = [[0.0f32; W]; A];
        if ix >= 0 && (ix as usize) < g.w {
            for (k, px) in col.iter_mut().enumerate() {
                let iy = y0 + k as isize;
                if iy >= 0 && (iy as usize) < g.h {
                    *px = load(&input[((iy as usize) * g.w + ix as usize) * c + c0..]);
                }
            }
        }
        for i in 0..A {
            t.set(i, j, dot(A, |k| T::BT[i][k], |k| col[k]));
        }
    }
    for (i, row) in t.assume_init().iter().enumerate() {
        for j in 0..A {
            let out = dot(A, |k| T::BT[j][k], |k| row[k]);
            v[(i * A + j) * plane(c) + q * c + c0..][..W].copy_from_slice(&out);
        }
    }
}

multiversion! {
    /// Output tiles t0..t0 + n of one image: Aᵀ P A (+ bias, ReLU) from the products `p`, written into
    /// `out`, which holds the output rows from `row0` on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn output_tiles(tf: &Transform, g: &Geom, p: &[f32], t0: usize, n: usize, row0: usize, bias: Option<&[f32]>,
                    relu: bool, out: &mut [f32]) {
        for q in 0..n {
            per_block!(tf, g.cout, output_block(g, p, t0 + q, q, row0, bias, relu, out));
        }
    }
}

/// Channels c0..c0 + W of output tile `tile` from slot `q` of `p`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn output_block<T: Tiles, const A: usize, const M: usize, const W: usize>(c0: usize, g: &Geom, p: &[f32], tile: usize,
                                                                          q: usize, row0: usize, bias: Option<&[f32]>,
                                                                          relu: bool, out: &mut [f32]) {
    let c = g.cout;
    let tw = g.ow.div_ceil(M);
    let (ty, tx) = (tile / tw, tile % tw);
    // s[i][j] = Σ_k Aᵀ[i][k] P[k][j], a column of P at a time, then y[i][j] = Σ_k s[i][k] Aᵀ[j][k].
    let mut s = Uninit::<W, M, A>::new();
    for j in 0..A {
        let col: [[f32; W]; A] = std::array::from_fn(|k| load(&p[(k * A + j) * plane(c) + q * c + c0..]));
        for i in 0..M {
            s.set(i, j, dot(A, |k| T::AT[i][k], |k| col[k]));
        }
    }
    let s = s.assume_init();
    let b: [f32; W] = bias.map_or([0.0; W], |b| load(&b[c0..]));
    for (i, row) in s.iter().enumerate().take(M.min(g.oh - ty * M)) {
        for j in 0..M.min(g.ow - tx * M) {
            let mut y = dot(A, |k| T::AT[j][k], |k| row[k]);
            if bias.is_some() {
                y.iter_mut().zip(b).for_each(|(y, b)| *y += b);
            }
            if relu {
                y.iter_mut().for_each(|y| *y = y.max(0.0));
            }
            out[((ty * M + i - row0) * g.ow + tx * M + j) * c + c0..][..W].copy_from_slice(&y);
        }
    }
}

multiversion! {
    /// w[e][q][..] = (A dY Aᵀ)[e] for output-gradient tiles t0..t0 + n of one image (zero beyond the output).
    pub(super) fn grad_tiles(tf: &Transform, g: &Geom, dy: &[f32], t0: usize, n: usize, w: &mut [f32]) {
        for q in 0..n {
            per_block!(tf, g.cout, grad_block(g, dy, t0 + q, q, w));
        }
    }
}

/// Channels c0..c0 + W of output-gradient tile `tile` into slot `q` of `w`.
#[inline(always)]
fn grad_block<T: Tiles, const A: usize, const M: usize, const W: usize>(c0: usize, g: &Geom, dy: &[f32], tile: usize,
                                                                        q: usize, w: &mut [f32]) {
    let c = g.cout;
    let tw = g.ow.div_ceil(M);
    let (ty, tx) = (tile / tw, tile % tw);
    let (rows, cols) = (M.min(g.oh - ty * M), M.min(g.ow - tx * M));
    // With A = (Aᵀ)ᵀ: s[i][l] = Σ_k A[i][k] dY[k][l], a column of dY at a time, then w[i][j] = Σ_l s[i][l] A[j][l].
    let mut s = Uninit::<W, A, M>::new();
    for l in 0..M {
        let mut col = [[0.0f32; W]; M];
        if l < cols {
            for (k, px) in col.iter_mut().enumerate().take(rows) {
                *px = load(&dy[((ty * M + k) * g.ow + tx * M + l) * c + c0..]);
            }
        }
        for i in 0..A {
            s.set(i, l, dot(M, |k| T::AT[k][i], |k| col[k]));
        }
    }
    for (i, row) in s.assume_init().iter().enumerate() {
        for j in 0..A {
            let out = dot(M, |l| T::AT[l][j], |l| row[l]);
            w[(i * A + j) * plane(c) + q * c + c0..][..W].copy_from_slice(&out);
        }
    }
}
