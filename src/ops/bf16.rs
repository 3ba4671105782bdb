//! bfloat16 compute for the GEMMs (`gemm::sgemm` under `Precision::BFloat16`): both operands rounded to
//! bfloat16 (round to nearest, ties to even), products accumulated in float32, depth ascending.
//!
//! The numeric model is the same on every CPU: a product of two bfloat16 values is exact in float32, so
//! only the float32 additions round. Three back ends compute it:
//! - AMX (`tdpbf16ps`, Sapphire Rapids and later; needs the Linux `ARCH_REQ_XCOMP_PERM` grant): 32×32
//!   output blocks from four 16×16 tiles, 32 depth values per step.
//! - AVX512_BF16 (`vdpbf16ps`, e.g. Zen 4, where it runs at twice the float32 FMA rate; on Sapphire
//!   Rapids it runs at half of it, so AMX is preferred there): 8×32 register tiles.
//! - portable: the operands rounded to bfloat16 values stored as float32, then the float32 SGEMM.
//!
//! The fast back ends share one packed layout, built once per call (B, usually the weights, whole;
//! A one block of 32 rows at a time, so it stays in L1/L2): pairs of consecutive depth values in one
//! 32-bit word (low half first), grouped in 16×16-word tiles. A block of 32 rows × 32 depth values is
//! two A tiles (rows 0–15, 16–31; row-major words), a block of 32 depth values × 32 columns two B tiles
//! (columns 0–15, 16–31; one row of 16 words per depth pair). Sizes are padded with zeros to 32.
//! `RCONV_BF16_KERNEL=amx|avx512bf16|portable` picks a back end (for tests); `RCONV_KERNELS=portable`
//! forces the portable one.

use std::cell::RefCell;
use std::sync::OnceLock;

use super::simd::multiversion;

/// `x` rounded to the nearest bfloat16 (ties to even), as its 16 bits; NaN stays a (quiet) NaN.
#[inline(always)]
pub fn bits(x: f32) -> u16 {
    let u = x.to_bits();
    if x.is_nan() {
        return ((u >> 16) | 0x40) as u16;
    }
    (u.wrapping_add(0x7FFF + ((u >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to the nearest bfloat16, as a float32.
#[inline(always)]
pub fn round(x: f32) -> f32 {
    f32::from_bits((bits(x) as u32) << 16)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Amx,
    Avx512Bf16,
    Portable,
}

fn backend() -> Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    *BACKEND.get_or_init(|| {
        let asked = std::env::var("RCONV_BF16_KERNEL").unwrap_or_default().to_ascii_lowercase();
        if super::gemm::portable() || asked == "portable" {
            return Backend::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let dp = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512bf16");
            if dp && asked != "avx512bf16" && amx::request() {
                return Backend::Amx;
            }
            if dp {
                return Backend::Avx512Bf16;
            }
        }
        Backend::Portable
    })
}

/// Which back end runs the bfloat16 GEMMs on this machine: "amx", "avx512bf16" or "portable".
pub fn kernel_name() -> &'static str {
    match backend() {
        Backend::Amx => "amx",
        Backend::Avx512Bf16 => "avx512bf16",
        Backend::Portable => "portable",
    }
}

/// Operand `x` of a GEMM: element (r, p) at `data[r*rs + p*cs]`.
#[derive(Clone, Copy)]
pub struct Strided<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl Strided<'_> {
    #[inline(always)]
    fn at(&self, r: usize, p: usize) -> f32 {
        self.data[r * self.rs + p * self.cs]
    }
}

thread_local! {
    /// Per-thread packing buffers, reused across calls (words of two bfloat16 values).
    static SCRATCH: RefCell<(Vec<u32>, Vec<u32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// C (m×n) = A (m×k) · B (k×n) in bfloat16 with float32 accumulation, plus C when `accumulate`. The
/// caller (`gemm::sgemm`) has checked that the strides stay inside the slices and m, n > 0.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(m: usize, k: usize, n: usize, a: Strided, b: Strided, c: &mut [f32], ldc: usize, accumulate: bool) {
    if k == 0 {
        if !accumulate {
            (0..m).for_each(|r| c[r * ldc..r * ldc + n].fill(0.0));
        }
        return;
    }
    match backend() {
        Backend::Portable => portable(m, k, n, a, b, c, ldc, accumulate),
        fast => SCRATCH.with_borrow_mut(|(ap, bp, _)| packed(fast, m, k, n, a, b, c, ldc, accumulate, ap, bp)),
    }
}

/// The portable back end: rounded row-major copies, then the float32 SGEMM (exact products, float32 sums).
#[allow(clippy::too_many_arguments)]
fn portable(m: usize, k: usize, n: usize, a: Strided, b: Strided, c: &mut [f32], ldc: usize, accumulate: bool) {
    let (ar, br) = (rounded(a, m, k), rounded(b, k, n));
    super::gemm::sgemm_f32(m, k, n, &ar, false, k, &br, false, n, c, ldc, if accumulate { 1.0 } else { 0.0 });
}

/// The rows × cols operand `x`, rounded to bfloat16 values, as a row-major float32 copy.
fn rounded(x: Strided, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        if x.cs == 1 {
            round_into(&x.data[r * x.rs..][..cols], &mut out);
        } else {
            out.extend((0..cols).map(|p| round(x.at(r, p))));
        }
    }
    out
}

multiversion! {
    fn round_into(src: &[f32], out: &mut Vec<f32>) {
        out.extend(src.iter().map(|&v| round(v)));
    }
}

const BLOCK: usize = 32;
/// Words in one 32 × 32 block of an operand (two tiles of 16 × 16 words).
const BLOCK_WORDS: usize = BLOCK * BLOCK / 2;

#[allow(clippy::too_many_arguments)]
fn packed(backend: Backend, m: usize, k: usize, n: usize, a: Strided, b: Strided, c: &mut [f32], ldc: usize, accumulate: bool,
          ap: &mut Vec<u32>, bp: &mut Vec<u32>) {
    let depth_blocks = k.div_ceil(BLOCK);
    let panel = depth_blocks * BLOCK_WORDS;
    let col_blocks = n.div_ceil(BLOCK);
    bp.resize(col_blocks * panel, 0);
    ap.resize(panel, 0);
    // Safety (fast packs): the fast back ends run only where the CPU has AVX512F/BW/BF16; the
    // caller checked that the strides stay inside the slices.
    #[cfg(target_arch = "x86_64")]
    let fast_b = b.cs == 1;
    #[cfg(not(target_arch = "x86_64"))]
    let fast_b = false;
    for (jb, out) in bp.chunks_exact_mut(panel).enumerate() {
        #[cfg(target_arch = "x86_64")]
        if fast_b {
            unsafe { fast::pack_b(b, k, n, jb * BLOCK, out) };
            continue;
        }
        pack_b(b, k, n, jb * BLOCK, out);
    }
    let mut block = [0f32; BLOCK * BLOCK];
    #[cfg(target_arch = "x86_64")]
    let _tiles = (backend == Backend::Amx).then(amx::Tiles::configure);
    for i0 in (0..m).step_by(BLOCK) {
        let rows = (m - i0).min(BLOCK);
        #[cfg(target_arch = "x86_64")]
        match (a.cs, a.rs) {
            (1, _) => unsafe { fast::pack_a_rows(a, k, i0, rows, ap) },
            (_, 1) => unsafe { fast::pack_a_columns(a, k, i0, rows, ap) },
            _ => pack_a(a, k, i0, rows, ap),
        }
        #[cfg(not(target_arch = "x86_64"))]
        pack_a(a, k, i0, rows, ap);
        for (jb, panel_b) in bp.chunks_exact(panel).enumerate() {
            let j0 = jb * BLOCK;
            // Safety: both panels hold `depth_blocks` blocks; the backend's CPU features were checked.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                match backend {
                    Backend::Amx => amx::block(ap.as_ptr(), panel_b.as_ptr(), depth_blocks, block.as_mut_ptr()),
                    _ => dp::block(ap.as_ptr(), panel_b.as_ptr(), depth_blocks, block.as_mut_ptr()),
                }
            }
            let cols = (n - j0).min(BLOCK);
            for (r, src) in block.chunks_exact(BLOCK).take(rows).enumerate() {
                let dst = &mut c[(i0 + r) * ldc + j0..][..cols];
                if accumulate {
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                } else {
                    dst.copy_from_slice(&src[..cols]);
                }
            }
        }
    }
    let _ = (backend, panel);
}

#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    bits(lo) as u32 | (bits(hi) as u32) << 16
}

multiversion! {
    /// Rows i0..i0+rows of A (all depth) into blocks of two 16-row tiles, zero-padded.
    fn pack_a(a: Strided, k: usize, i0: usize, rows: usize, out: &mut [u32]) {
        let pairs = k.div_ceil(BLOCK) * BLOCK / 2;
        for r in 0..BLOCK {
            let tile_row = (r / 16) * 256 + (r % 16) * 16;
            for q in 0..pairs {
                let (p0, p1) = (2 * q, 2 * q + 1);
                let word = if r >= rows {
                    0
                } else {
                    let lo = if p0 < k { a.at(i0 + r, p0) } else { 0.0 };
                    let hi = if p1 < k { a.at(i0 + r, p1) } else { 0.0 };
                    pair(lo, hi)
                };
                out[(q / 16) * BLOCK_WORDS + tile_row + q % 16] = word;
            }
        }
    }
}

multiversion! {
    /// Columns j0..j0+32 of B (all depth) into blocks of two 16-column tiles, zero-padded.
    fn pack_b(b: Strided, k: usize, n: usize, j0: usize, out: &mut [u32]) {
        let pairs = k.div_ceil(BLOCK) * BLOCK / 2;
        let cols = (n - j0).min(BLOCK);
        for q in 0..pairs {
            let (p0, p1) = (2 * q, 2 * q + 1);
            let base = (q / 16) * BLOCK_WORDS + (q % 16) * 16;
            for j in 0..BLOCK {
                let word = if j >= cols {
                    0
                } else {
                    let lo = if p0 < k { b.at(p0, j0 + j) } else { 0.0 };
                    let hi = if p1 < k { b.at(p1, j0 + j) } else { 0.0 };
                    pair(lo, hi)
                };
                out[base + (j / 16) * 256 + j % 16] = word;
            }
        }
    }
}

/// Packing with AVX512_BF16 conversions (`vcvtne2ps2bf16`, ties to even) for the common layouts.
#[cfg(target_arch = "x86_64")]
mod fast {
    use super::{Strided, BLOCK, BLOCK_WORDS};
    use std::arch::x86_64::*;

    #[inline(always)]
    fn mask(valid: usize) -> __mmask16 {
        if valid >= 16 { 0xFFFF } else { ((1u32 << valid) - 1) as __mmask16 }
    }

    /// 16 floats from `p` (the first `valid` of them, zeros after), none read when `valid` is 0.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn load(p: *const f32, valid: usize) -> __m512 {
        if valid == 0 { _mm512_setzero_ps() } else { _mm512_maskz_loadu_ps(mask(valid), p) }
    }

    /// Words (bf16(lo[i]), bf16(hi[i])), lo in the low half.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn pair_words(lo: __m512, hi: __m512) -> __m512i {
        let halves: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        let index = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                     23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        _mm512_permutexvar_epi16(index, halves)
    }

    /// Row `p` of a row-major operand from column `j`, or nothing past the depth.
    #[inline(always)]
    fn row(x: Strided, p: usize, j: usize, k: usize) -> (*const f32, bool) {
        (x.data.as_ptr().wrapping_add(p * x.rs + j), p < k)
    }

    /// `super::pack_b` for a row-major B (`b.cs == 1`).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_b(b: Strided, k: usize, n: usize, j0: usize, out: &mut [u32]) {
        let pairs = k.div_ceil(BLOCK) * BLOCK / 2;
        assert!(out.len() >= pairs / 16 * BLOCK_WORDS);
        for q in 0..pairs {
            let base = (q / 16) * BLOCK_WORDS + (q % 16) * 16;
            for h in 0..2 {
                let j = j0 + 16 * h;
                let valid = n.saturating_sub(j).min(16);
                let (lo, lo_in) = row(b, 2 * q, j, k);
                let (hi, hi_in) = row(b, 2 * q + 1, j, k);
                let lo = load(lo, if lo_in { valid } else { 0 });
                let hi = load(hi, if hi_in { valid } else { 0 });
                _mm512_storeu_si512(out.as_mut_ptr().add(base + h * 256).cast(), pair_words(lo, hi));
            }
        }
    }

    /// `super::pack_a` for a row-major A (`a.cs == 1`).
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_a_rows(a: Strided, k: usize, i0: usize, rows: usize, out: &mut [u32]) {
        let blocks = k.div_ceil(BLOCK);
        assert!(out.len() >= blocks * BLOCK_WORDS);
        for r in 0..BLOCK {
            let dst = out.as_mut_ptr().add((r / 16) * 256 + (r % 16) * 16);
            let src = a.data.as_ptr().wrapping_add((i0 + r) * a.rs);
            for t in 0..blocks {
                let p = t * BLOCK;
                let words = if r < rows {
                    let lo = load(src.wrapping_add(p), k.saturating_sub(p).min(16));
                    let hi = load(src.wrapping_add(p + 16), k.saturating_sub(p + 16).min(16));
                    std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(hi, lo))
                } else {
                    _mm512_setzero_si512()
                };
                _mm512_storeu_si512(dst.add(t * BLOCK_WORDS).cast(), words);
            }
        }
    }

    /// `super::pack_a` for an A stored transposed (`a.rs == 1`): pairs of depth rows interleaved, then
    /// each 16 × 16-word tile transposed.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_a_columns(a: Strided, k: usize, i0: usize, rows: usize, out: &mut [u32]) {
        let blocks = k.div_ceil(BLOCK);
        assert!(out.len() >= blocks * BLOCK_WORDS);
        for h in 0..2 {
            let valid = rows.saturating_sub(16 * h).min(16);
            for t in 0..blocks {
                let mut v = [_mm512_setzero_si512(); 16];
                if valid > 0 {
                    for (q, slot) in v.iter_mut().enumerate() {
                        let p = t * BLOCK + 2 * q;
                        let lo = if p < k { load(a.data.as_ptr().wrapping_add(p * a.cs + i0 + 16 * h), valid) } else { _mm512_setzero_ps() };
                        let hi = if p + 1 < k { load(a.data.as_ptr().wrapping_add((p + 1) * a.cs + i0 + 16 * h), valid) } else { _mm512_setzero_ps() };
                        *slot = pair_words(lo, hi);
                    }
                }
                let dst = out.as_mut_ptr().add(t * BLOCK_WORDS + h * 256);
                for (r, word_row) in transpose16(v).iter().enumerate() {
                    _mm512_storeu_si512(dst.add(r * 16).cast(), *word_row);
                }
            }
        }
    }

    /// The transpose of a 16 × 16 matrix of 32-bit words held one row per register.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose16(v: [__m512i; 16]) -> [__m512i; 16] {
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
        }
        let mut u = [_mm512_setzero_si512(); 16];
        for i in 0..4 {
            u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
            u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
            u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
            u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
        }
        // u[4i + j] holds, in 128-bit lane l, column 4l + j of rows 4i..4i+4; gather the lanes.
        let mut out = [_mm512_setzero_si512(); 16];
        for j in 0..4 {
            let x0 = _mm512_shuffle_i32x4::<0b01_00_01_00>(u[j], u[4 + j]);
            let x1 = _mm512_shuffle_i32x4::<0b11_10_11_10>(u[j], u[4 + j]);
            let x2 = _mm512_shuffle_i32x4::<0b01_00_01_00>(u[8 + j], u[12 + j]);
            let x3 = _mm512_shuffle_i32x4::<0b11_10_11_10>(u[8 + j], u[12 + j]);
            out[j] = _mm512_shuffle_i32x4::<0b10_00_10_00>(x0, x2);
            out[4 + j] = _mm512_shuffle_i32x4::<0b11_01_11_01>(x0, x2);
            out[8 + j] = _mm512_shuffle_i32x4::<0b10_00_10_00>(x1, x3);
            out[12 + j] = _mm512_shuffle_i32x4::<0b11_01_11_01>(x1, x3);
        }
        out
    }
}

/// The AMX back end.
#[cfg(target_arch = "x86_64")]
mod amx {
    use std::arch::asm;

    /// Asks Linux for the AMX tile state (once per process) after checking the CPU has AMX-BF16.
    pub(super) fn request() -> bool {
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
        if edx & (1 << 22) == 0 || edx & (1 << 24) == 0 {
            return false;
        }
        #[cfg(target_os = "linux")]
        {
            // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): 0 when granted.
            let ret: i64;
            // Safety: a plain system call; it touches no memory of ours.
            unsafe {
                asm!("syscall", inlateout("rax") 158i64 => ret, in("rdi") 0x1023i64, in("rsi") 18i64,
                     lateout("rcx") _, lateout("r11") _, options(nostack));
            }
            ret == 0
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// The tile configuration of this thread while alive: eight tiles of 16 rows × 64 bytes.
    pub(super) struct Tiles;

    impl Tiles {
        pub(super) fn configure() -> Tiles {
            #[repr(C, align(64))]
            struct Config([u8; 64]);
            let mut config = Config([0; 64]);
            config.0[0] = 1; // palette 1
            for t in 0..8 {
                config.0[16 + 2 * t] = 64; // bytes per row
                config.0[48 + t] = 16; // rows
            }
            // Safety: `request` granted the tile state; the configuration is valid for palette 1.
            unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
            Tiles
        }
    }

    impl Drop for Tiles {
        fn drop(&mut self) {
            // Safety: releases this thread's tile state.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }

    /// out (32×32 row-major) = A block row · B block column over `blocks` depth blocks.
    ///
    /// # Safety
    /// `a` and `b` hold `blocks` packed blocks each, `out` 1024 values; tiles configured (`Tiles`).
    pub(super) unsafe fn block(a: *const u32, b: *const u32, blocks: usize, out: *mut f32) {
        debug_assert!(blocks > 0);
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a} + {s}*1]",
            "tileloadd tmm6, [{b} + {s}*1]",
            "tileloadd tmm5, [{a} + {s}*1 + 1024]",
            "tileloadd tmm7, [{b} + {s}*1 + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a}, 2048",
            "add {b}, 2048",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c} + {cs}*1], tmm0",
            "tilestored [{c} + {cs}*1 + 64], tmm1",
            "tilestored [{c} + {cs}*1 + 2048], tmm2",
            "tilestored [{c} + {cs}*1 + 2112], tmm3",
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            n = inout(reg) blocks => _,
            s = in(reg) 64usize,
            c = in(reg) out,
            cs = in(reg) 128usize,
            options(nostack),
        );
    }
}

/// The AVX512_BF16 back end: 8 rows × 32 columns of float32 accumulators per register tile.
#[cfg(target_arch = "x86_64")]
mod dp {
    use std::arch::x86_64::*;

    /// As `amx::block`.
    ///
    /// # Safety
    /// As `amx::block`; the CPU has AVX512F and AVX512_BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block(a: *const u32, b: *const u32, blocks: usize, out: *mut f32) {
        for r0 in (0..32).step_by(8) {
            let mut acc = [[_mm512_setzero_ps(); 2]; 8];
            let a_rows = a.add((r0 / 16) * 256 + (r0 % 16) * 16);
            for t in 0..blocks {
                let (at, bt) = (a_rows.add(t * 512), b.add(t * 512));
                for q in 0..16 {
                    let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bt.add(q * 16).cast()));
                    let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bt.add(256 + q * 16).cast()));
                    for (r, acc_row) in acc.iter_mut().enumerate() {
                        let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*at.add(r * 16 + q) as i32));
                        acc_row[0] = _mm512_dpbf16_ps(acc_row[0], av, b0);
                        acc_row[1] = _mm512_dpbf16_ps(acc_row[1], av, b1);
                    }
                }
            }
            for (r, acc_row) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add((r0 + r) * 32), acc_row[0]);
                _mm512_storeu_ps(out.add((r0 + r) * 32 + 16), acc_row[1]);
            }
        }
    }
}

#[cfg(test)]
#[path = "bf16_tests.rs"]
mod tests;
