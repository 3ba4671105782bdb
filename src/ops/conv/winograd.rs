//! Winograd convolution F(m×m, 3×3) for 3×3 stride-1 convolutions, m = 2 or 4 (Lavin & Gray,
//! arXiv:1509.09308): each m×m output tile is Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A over an (m+2)² input tile d,
//! so the (m+2)² element-wise products, summed over input channels, are (m+2)² independent GEMMs of
//! shape (tiles × cin) · (cin × cout): 2.25× (m = 2) or 4× (m = 4) fewer multiplications than direct.
//!
//! * The forward and the input gradient are the same correlation (the latter over the output gradient,
//!   with the kernel flipped and its channels swapped), computed in bands of whole tile rows so that
//!   every work item writes its own rows of the output; the input transform is fused with the tile
//!   gather (zeros outside the image), the output transform with the scatter, bias and ReLU.
//! * The kernel gradient is the adjoint of the forward: Gᵀ [Σ_tiles (Bᵀ d B) ⊙ (A dY Aᵀ)] G, its tile
//!   sum accumulated in the transformed domain per work chunk (chunks fixed by the shape), each chunk
//!   transformed back and the chunks added in order, so no result depends on the thread count.
//! * Rounding: the transforms' constants (up to 8 for m = 4) add float32 rounding beyond a direct
//!   convolution's, about 10⁻⁶ (m = 2) and 10⁻⁵ (m = 4) of the magnitude of the terms.
//!
//! On by default, per shape: the cost model below (a GEMM depth penalty, the cost of streaming the GEMM's
//! right operand once per block of rows, from L2 when it fits and from memory when not, transforms at 3×
//! a GEMM multiply-add, a fixed cost per call, a 15 % margin) was fitted to fused conv + pool layer times
//! (forward + backward) measured on a 2-core AVX-512 Xeon with the register-blocked transforms
//! (2026-12-02): it picks F(4×4) for 13×13×32→64 (MNIST, batch 64: 1.25× the direct convolution),
//! 23×23×64→128, 43×43×64→128, 49×49×32→64 and 89×89×32→64 (1.6–1.9×), F(2×2) for 20×20×128→256 (1.5×),
//! and the direct convolution for 5×5×64→64 and 9×9×256→256 (Winograd 1.3–1.8× slower there: a few
//! tiles per image against a transformed kernel too large for L2) and at batch 1 for the smaller images
//! (13×13, 20×20, 23×23; F(4×4) from 43×43 and 49×49 up).
//! `RCONV_WINOGRAD=0` (or `set_mode(0)`) turns it off; `2` or `4` forces that tile size wherever it applies
//! (tests, benchmarks).

use std::ops::Range;
use std::sync::atomic::{AtomicU8, Ordering};

use rayon::prelude::*;

use super::{partial_count, sum_partials, Conv2d};
use crate::alloc::{reused, zeros, FirstError, Reused};
use crate::error::OpResult;
use crate::ops::gemm::{column_sums, sgemm};
use crate::ops::simd::multiversion;
use crate::ops::LinearGrads;
use crate::ops::PARALLEL_MIN_FLOPS;

/// Tiles per transform-and-GEMM block: one GEMM per tile element over this many rows.
const BLOCK_TILES: usize = 128;
/// Floats between consecutive planes (tile elements) of the tile buffers beyond their BLOCK_TILES × channels:
/// planes a multiple of 4 KB apart put the α² vectors of one tile in the same L1 set (F(4×4): 36 ways for
/// 12); one cache line more per plane spreads them.
const PLANE_PAD: usize = 16;

/// Floats per plane of the tile buffers for `channels` channels.
fn plane(channels: usize) -> usize {
    BLOCK_TILES * channels + PLANE_PAD
}
/// Cost of one transform multiply-add over a channel vector, relative to one GEMM multiply-add.
const TRANSFORM_COST: f64 = 3.0;
/// Winograd is picked only where the model predicts it at most this fraction of the direct cost.
const WINOGRAD_MARGIN: f64 = 0.85;
/// GEMM time per multiply-add grows as (1 + this / depth): short inner products (Winograd's depth is cin,
/// the direct convolution's 9·cin).
const DEPTH_HALF_EFFICIENCY: f64 = 8.0;
/// A GEMM streams its right operand (the kernel, transformed or not) once per block of rows: time per
/// multiply-add grows as (1 + this / rows), with the first value while the operand fits in
/// `STREAM_L2_BYTES` and the second when it comes from memory. Winograd's rows are one band's tiles (one
/// image's, at most `BLOCK_TILES`), the direct convolution's a block of `DIRECT_ROWS` pixels.
const ROWS_HALF_EFFICIENCY: (f64, f64) = (1.0, 32.0);
const STREAM_L2_BYTES: usize = 3 << 19;
const DIRECT_ROWS: usize = 128;
/// Fixed cost of a Winograd call (transformed kernel, buffers), in GEMM multiply-adds: refitted (16e6 -> 8e6) once
/// batch-1 fused layers split each image over the cores (49×49×32→64 at batch 1: F(4×4) 261 µs, direct 363 µs;
/// 23×23×64→128: direct 298, F(2×2) 305, F(4×4) 553; 13×13×32→64: direct 40, F(2×2) 130).
const WINOGRAD_CALL_COST: f64 = 8e6;

/// A Winograd transform set: Bᵀ (α×α), G (α×3), Aᵀ (m×α), row-major, α = m + 2.
#[derive(Debug)]
pub(crate) struct Transform {
    pub m: usize,
    bt: &'static [f32],
    g: &'static [f64],
    at: &'static [f32],
}

impl Transform {
    fn alpha(&self) -> usize {
        self.m + 2
    }
}

#[rustfmt::skip]
const F2_BT: [f32; 16] = [1.0, 0.0, -1.0, 0.0,
                          0.0, 1.0, 1.0, 0.0,
                          0.0, -1.0, 1.0, 0.0,
                          0.0, 1.0, 0.0, -1.0];
#[rustfmt::skip]
const F2_AT: [f32; 8] = [1.0, 1.0, 1.0, 0.0,
                         0.0, 1.0, -1.0, -1.0];
#[rustfmt::skip]
const F4_BT: [f32; 36] = [4.0, 0.0, -5.0, 0.0, 1.0, 0.0,
                          0.0, -4.0, -4.0, 1.0, 1.0, 0.0,
                          0.0, 4.0, -4.0, -1.0, 1.0, 0.0,
                          0.0, -2.0, -1.0, 2.0, 1.0, 0.0,
                          0.0, 2.0, -1.0, -2.0, 1.0, 0.0,
                          0.0, 4.0, 0.0, -5.0, 0.0, 1.0];
#[rustfmt::skip]
const F4_AT: [f32; 24] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
                          0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
                          0.0, 1.0, 1.0, 4.0, 4.0, 0.0,
                          0.0, 1.0, -1.0, 8.0, -8.0, 1.0];

#[rustfmt::skip]
static F2: Transform = Transform {
    m: 2,
    bt: &F2_BT,
    g: &[1.0, 0.0, 0.0,
         0.5, 0.5, 0.5,
         0.5, -0.5, 0.5,
         0.0, 0.0, 1.0],
    at: &F2_AT,
};

#[rustfmt::skip]
static F4: Transform = Transform {
    m: 4,
    bt: &F4_BT,
    g: &[1.0 / 4.0, 0.0, 0.0,
         -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0,
         -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0,
         1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0,
         1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0,
         0.0, 0.0, 1.0],
    at: &F4_AT,
};

/// 0 = off, 1 = per-shape choice, 2 / 4 = that tile size wherever it applies; `UNSET` until read.
static MODE: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// The current mode (from `RCONV_WINOGRAD` on first use: `0`/`off` disables, `2`/`4` forces a tile size,
/// anything else or unset: the per-shape choice).
pub fn mode() -> u8 {
    match MODE.load(Ordering::Relaxed) {
        UNSET => {
            let env = std::env::var("RCONV_WINOGRAD").unwrap_or_default().trim().to_ascii_lowercase();
            let m = match env.as_str() {
                "0" | "off" | "false" | "no" => 0,
                "2" => 2,
                "4" => 4,
                _ => 1,
            };
            let _ = MODE.compare_exchange(UNSET, m, Ordering::Relaxed, Ordering::Relaxed);
            MODE.load(Ordering::Relaxed)
        }
        m => m,
    }
}

/// Sets the mode (0 off, 1 per-shape choice, 2 or 4 forced); other values are refused.
pub fn set_mode(m: u8) -> bool {
    let ok = matches!(m, 0 | 1 | 2 | 4);
    if ok {
        MODE.store(m, Ordering::Relaxed);
    }
    ok
}

/// One correlation out[oy, ox, o] = Σ in[oy + ky − pad_y, ox + kx − pad_x, i] · k[ky, kx, i, o] (zero
/// outside the input), per image.
#[derive(Debug, Clone, Copy)]
struct Geom {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    pad_y: usize,
    pad_x: usize,
    cin: usize,
    cout: usize,
}

/// A Winograd plan for one `Conv2d`: its forward and input-gradient correlations and the tiling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Winograd {
    conv: Conv2d,
    tf: &'static Transform,
    fwd: Geom,
    bwd: Geom,
}

/// Per-thread buffers: transformed inputs (α² × tiles × channels) and products.
pub(crate) struct Scratch {
    v: Reused,
    p: Reused,
}

impl Conv2d {
    /// The Winograd plan for this convolution, when it is a 3×3 stride-1 one, Winograd is on, and the
    /// cost model (or the forced mode) prefers it to the direct path.
    pub(crate) fn winograd(&self) -> Option<Winograd> {
        let (r, c) = (&self.rows, &self.cols);
        if (r.window, c.window, r.stride, c.stride) != (3, 3, 1, 1) || self.batch == 0 || r.output == 0 || c.output == 0 {
            return None;
        }
        let tf = match mode() {
            0 => return None,
            2 => &F2,
            4 => &F4,
            _ => {
                let direct = self.direct_cost();
                let (f2, f4) = (self.winograd_cost(&F2), self.winograd_cost(&F4));
                if f2.min(f4) >= WINOGRAD_MARGIN * direct {
                    return None;
                }
                if f2 <= f4 { &F2 } else { &F4 }
            }
        };
        Some(self.winograd_with(tf))
    }

    /// The Winograd plan with transform `tf` (3×3 stride-1 convolutions only).
    fn winograd_with(&self, tf: &'static Transform) -> Winograd {
        let (r, c) = (&self.rows, &self.cols);
        let fwd = Geom { h: r.input, w: c.input, oh: r.output, ow: c.output, pad_y: r.pad_before, pad_x: c.pad_before,
                         cin: self.cin, cout: self.cout };
        let bwd = Geom { h: r.output, w: c.output, oh: r.input, ow: c.input, pad_y: 2 - r.pad_before, pad_x: 2 - c.pad_before,
                         cin: self.cout, cout: self.cin };
        Winograd { conv: *self, tf, fwd, bwd }
    }

    /// Estimated cost (GEMM multiply-add units) of the direct path per image: an im2col GEMM of depth 9·cin.
    fn direct_cost(&self) -> f64 {
        let (depth, pixels) = (9 * self.cin, self.pixels_per_image());
        let rows = DIRECT_ROWS.min(pixels.saturating_mul(self.batch)).max(1);
        (pixels * depth * self.cout) as f64 * gemm_penalty(depth, self.cout, rows, depth * self.cout)
    }

    fn winograd_cost(&self, tf: &Transform) -> f64 {
        let a = tf.alpha();
        let (cin, cout) = (self.cin as f64, self.cout as f64);
        let (th, tw) = (self.rows.output.div_ceil(tf.m), self.cols.output.div_ceil(tf.m));
        let rows = band_rows(tw).min(th) * tw; // one band's tiles
        let gemm = (a * a) as f64 * cin * cout * gemm_penalty(self.cin, self.cout, rows, a * a * self.cin * self.cout);
        let nnz = |m: &[f32]| m.iter().filter(|&&v| v != 0.0).count() as f64;
        // Input transform: two passes of α² outputs with nnz(Bᵀ)/α terms each; output: m·α and m² outputs.
        let input = 2.0 * a as f64 * nnz(tf.bt) * cin;
        let output = (tf.m as f64 + (tf.m * tf.m) as f64 / a as f64) * nnz(tf.at) * cout;
        // The kernel transform (9 taps into α² elements) and the call's fixed cost, shared by the batch's
        // images: at batch 1 they cost more than a small layer's whole direct convolution.
        let kernel = (9 * a * a) as f64 * cin * cout;
        let per_call = (TRANSFORM_COST * kernel + WINOGRAD_CALL_COST) / self.batch as f64;
        (th * tw) as f64 * (gemm + TRANSFORM_COST * (input + output)) + per_call
    }
}

/// Tile rows per band of an image `tile_cols` tiles wide: about `BLOCK_TILES` tiles, at least one row.
fn band_rows(tile_cols: usize) -> usize {
    (BLOCK_TILES / tile_cols).max(1)
}

/// GEMM time per multiply-add relative to a deep, 16-aligned GEMM of many rows whose right operand stays
/// in L2; `operand` is the floats that the right operands of one block of rows add up to (Winograd: all α²
/// transformed kernel matrices).
fn gemm_penalty(depth: usize, n: usize, rows: usize, operand: usize) -> f64 {
    let aligned = if n.is_multiple_of(16) { 1.0 } else { 1.6 };
    let fits = operand.saturating_mul(std::mem::size_of::<f32>()) <= STREAM_L2_BYTES;
    let stream = if fits { ROWS_HALF_EFFICIENCY.0 } else { ROWS_HALF_EFFICIENCY.1 };
    aligned * (1.0 + DEPTH_HALF_EFFICIENCY / depth as f64) * (1.0 + stream / rows.max(1) as f64)
}

impl Winograd {
    pub fn tile(&self) -> usize {
        self.tf.m
    }

    fn tiles(&self, g: &Geom) -> (usize, usize) {
        (g.oh.div_ceil(self.tf.m), g.ow.div_ceil(self.tf.m))
    }

    /// Tile rows per band of correlation `g`.
    fn band_rows(&self, g: &Geom) -> usize {
        band_rows(self.tiles(g).1)
    }

    pub fn scratch(&self) -> OpResult<Scratch> {
        let (a, ch) = (self.tf.alpha(), self.conv.cin.max(self.conv.cout));
        Ok(Scratch {
            v: reused(&[a * a, plane(ch)], "the Winograd input tiles")?,
            p: reused(&[a * a, plane(ch)], "the Winograd products")?,
        })
    }

    /// The transformed kernel G g Gᵀ (α² × cin × cout) for the forward; with `flipped`, that of the
    /// kernel rotated by 180° with its channels swapped (α² × cout × cin), for the input gradient.
    pub fn kernel(&self, kernel: &[f32], flipped: bool) -> OpResult<Vec<f32>> {
        let (a, ci, co) = (self.tf.alpha(), self.conv.cin, self.conv.cout);
        let mut taps = zeros(&[9, ci, co], "the flipped kernel")?;
        if flipped {
            for (t, dst) in taps.chunks_exact_mut(ci * co).enumerate() {
                let src = &kernel[(8 - t) * ci * co..][..ci * co];
                for (i, row) in src.chunks_exact(co).enumerate() {
                    row.iter().enumerate().for_each(|(o, &v)| dst[o * ci + i] = v);
                }
            }
        } else {
            taps.copy_from_slice(&kernel[..9 * ci * co]);
        }
        let mut u = zeros(&[a * a, ci, co], "the Winograd kernel")?;
        let g = self.tf.g;
        u.par_chunks_mut(ci * co).enumerate().for_each(|(e, ue)| {
            let coef: Vec<f32> = (0..9).map(|t| (g[(e / a) * 3 + t / 3] * g[(e % a) * 3 + t % 3]) as f32).collect();
            combine(&coef, &taps, ue, false);
        });
        Ok(u)
    }

    /// One image's correlation `g` (forward or input gradient) over tile rows `band·R..`, into `out`
    /// (that band's output rows); `u` is the matching transformed kernel.
    #[allow(clippy::too_many_arguments)]
    fn band(&self, g: &Geom, input: &[f32], u: &[f32], bias: Option<&[f32]>, relu: bool, band: usize, out: &mut [f32],
            s: &mut Scratch) {
        let rows = self.band_rows(g);
        self.tile_rows(g, input, u, bias, relu, band * rows..(band + 1) * rows, out, s);
    }

    /// One image's correlation `g` over tile rows `rows` (clipped to the image), into `out`, which starts at
    /// output row `rows.start · m` and holds the rows up to the last tile's (or the image's) end.
    #[allow(clippy::too_many_arguments)]
    fn tile_rows(&self, g: &Geom, input: &[f32], u: &[f32], bias: Option<&[f32]>, relu: bool, rows: Range<usize>,
                 out: &mut [f32], s: &mut Scratch) {
        let (a, (th, tw)) = (self.tf.alpha(), self.tiles(g));
        let (first, end) = (rows.start * tw, rows.end.min(th) * tw);
        for t0 in (first..end).step_by(BLOCK_TILES) {
            let n = BLOCK_TILES.min(end - t0);
            input_tiles(self.tf, g, input, t0, n, &mut s.v);
            for e in 0..a * a {
                sgemm(n, g.cin, g.cout, &s.v[e * plane(g.cin)..], false, g.cin, &u[e * g.cin * g.cout..], false,
                      g.cout, &mut s.p[e * plane(g.cout)..], g.cout, 0.0);
            }
            output_tiles(self.tf, g, &s.p, t0, n, rows.start * self.tf.m, bias, relu, out);
        }
    }

    /// Output rows `rows.start · m..` of one image's convolution (bias and ReLU fused) from tile rows `rows`
    /// of its input `x`, `u = kernel(.., false)`; `out` holds those rows (up to the image's last).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_rows(&self, x: &[f32], u: &[f32], bias: Option<&[f32]>, relu: bool, rows: Range<usize>, out: &mut [f32],
                        s: &mut Scratch) {
        self.tile_rows(&self.fwd, x, u, bias, relu, rows, out, s);
    }

    /// All bands of one image of correlation `g` into `out` (the whole output image, overwritten).
    #[allow(clippy::too_many_arguments)]
    fn image(&self, g: &Geom, input: &[f32], u: &[f32], bias: Option<&[f32]>, relu: bool, out: &mut [f32], s: &mut Scratch) {
        let band_len = self.band_rows(g) * self.tf.m * g.ow * g.cout;
        for (b, chunk) in out.chunks_mut(band_len).enumerate() {
            self.band(g, input, u, bias, relu, b, chunk, s);
        }
    }

    /// One image's convolution output (bias and ReLU fused) from its input `x` and `u = kernel(.., false)`.
    pub fn forward_image(&self, x: &[f32], u: &[f32], bias: Option<&[f32]>, relu: bool, out: &mut [f32], s: &mut Scratch) {
        self.image(&self.fwd, x, u, bias, relu, out, s);
    }

    /// One image's input gradient (overwritten) from its output gradient and `u = kernel(.., true)`.
    pub fn input_grad_image(&self, dy: &[f32], u: &[f32], dx: &mut [f32], s: &mut Scratch) {
        self.image(&self.bwd, dy, u, None, false, dx, s);
    }

    /// Correlation `g` over the whole batch, in parallel over (image, band) items fixed by the shape.
    fn run(&self, g: &Geom, input: &[f32], u: &[f32], bias: Option<&[f32]>, relu: bool) -> OpResult<Vec<f32>> {
        let batch = self.conv.batch;
        let mut out = zeros(&[batch, g.oh, g.ow, g.cout], "the output")?;
        let (in_len, out_len) = (g.h * g.w * g.cin, g.oh * g.ow * g.cout);
        let band_len = self.band_rows(g) * self.tf.m * g.ow * g.cout;
        let items: Vec<(usize, usize, &mut [f32])> = out.chunks_mut(out_len).enumerate()
            .flat_map(|(n, img)| img.chunks_mut(band_len).enumerate().map(move |(b, c)| (n, b, c))).collect();
        let flops = 2 * band_len * g.cin * 9;
        let failed = FirstError::default();
        items.into_par_iter().with_min_len(PARALLEL_MIN_FLOPS.div_ceil(flops)).for_each_init(
            || self.scratch(),
            |s, (n, b, chunk)| match s {
                Ok(s) => self.band(g, &input[n * in_len..][..in_len], u, bias, relu, b, chunk, s),
                Err(e) => failed.record(e),
            },
        );
        failed.into_result()?;
        Ok(out)
    }

    /// y = conv(x, kernel) + bias (ReLU fused when `relu`), the whole batch.
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, relu: bool) -> OpResult<Vec<f32>> {
        self.run(&self.fwd, x, &self.kernel(kernel, false)?, bias, relu)
    }

    /// The transformed-domain kernel-gradient accumulator `du` (α² × cin × cout) for `kernel_grad_into`.
    pub fn kernel_grad_buffer(&self) -> OpResult<Vec<f32>> {
        let a = self.tf.alpha();
        zeros(&[a * a, self.conv.cin, self.conv.cout], "the Winograd kernel-gradient sum")
    }

    /// du += Σ over the tiles of images `x` (whole images) of (Bᵀ d B)ᵀ ⊙ (A dY Aᵀ), `dy` their output gradients.
    /// Images of at most BLOCK_TILES tiles are packed whole into shared blocks: the GEMMs' depth is the
    /// block's tiles, and a small image's own (9 for an 11×11 output in F(4×4)) would leave them mostly
    /// loading and storing `du`. Larger images go a block of their own tiles at a time.
    pub fn accumulate_kernel_grad(&self, x: &[f32], dy: &[f32], du: &mut [f32], s: &mut Scratch) {
        let g = &self.fwd;
        let (th, tw) = self.tiles(g);
        let (in_len, out_len, tiles) = (g.h * g.w * g.cin, g.oh * g.ow * g.cout, th * tw);
        let mut filled = 0; // tiles in the current block
        for (xn, dyn_) in x.chunks_exact(in_len).zip(dy.chunks_exact(out_len)) {
            for t0 in (0..tiles).step_by(BLOCK_TILES) {
                let n = BLOCK_TILES.min(tiles - t0);
                input_tiles(self.tf, g, xn, t0, n, &mut s.v[filled * g.cin..]);
                grad_tiles(self.tf, g, dyn_, t0, n, &mut s.p[filled * g.cout..]);
                filled += n;
                if filled + tiles > BLOCK_TILES { // the next image's tiles (or block) would not fit
                    self.block_kernel_grad(filled, du, s);
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            self.block_kernel_grad(filled, du, s);
        }
    }

    /// du += the kernel-gradient terms of the first `n` tiles of the transformed blocks in `s`.
    fn block_kernel_grad(&self, n: usize, du: &mut [f32], s: &Scratch) {
        let (g, a) = (&self.fwd, self.tf.alpha());
        for e in 0..a * a {
            sgemm(g.cin, n, g.cout, &s.v[e * plane(g.cin)..], true, g.cin, &s.p[e * plane(g.cout)..], false,
                  g.cout, &mut du[e * g.cin * g.cout..], g.cout, 1.0);
        }
    }

    /// du += the kernel-gradient terms of tiles `first..end` (clipped) of one image.
    fn accumulate_tiles(&self, x: &[f32], dy: &[f32], first: usize, end: usize, du: &mut [f32], s: &mut Scratch) {
        let g = &self.fwd;
        let (th, tw) = self.tiles(g);
        for t0 in (first..end.min(th * tw)).step_by(BLOCK_TILES) {
            let n = BLOCK_TILES.min(end.min(th * tw) - t0);
            input_tiles(self.tf, g, x, t0, n, &mut s.v);
            grad_tiles(self.tf, g, dy, t0, n, &mut s.p);
            self.block_kernel_grad(n, du, s);
        }
    }

    /// part (3 × 3 × cin × cout) += Gᵀ du G: the kernel gradient of an accumulated `du`.
    pub fn kernel_grad_into(&self, du: &[f32], part: &mut [f32]) {
        let (a, len, g) = (self.tf.alpha(), self.conv.cin * self.conv.cout, self.tf.g);
        part.par_chunks_mut(len).enumerate().for_each(|(t, pt)| {
            let coef: Vec<f32> = (0..a * a).map(|e| (g[(e / a) * 3 + t / 3] * g[(e % a) * 3 + t % 3]) as f32).collect();
            combine(&coef, du, pt, true);
        });
    }

    /// (grad_x if asked, grad_kernel, grad_bias) of the whole batch (`dy` already masked by any ReLU).
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads> {
        let (g, (th, tw)) = (&self.fwd, self.tiles(&self.fwd));
        let (cin, cout, batch) = (g.cin, g.cout, self.conv.batch);
        let (in_len, out_len) = (g.h * g.w * cin, g.oh * g.ow * cout);
        // Work items are (image, tile block); a number of chunks fixed by the shape each sum theirs.
        let per_image = (th * tw).div_ceil(BLOCK_TILES);
        let items = batch * per_image;
        let chunks = partial_count(batch * g.oh * g.ow).min(items);
        let per_chunk = items.div_ceil(chunks);
        let chunks = items.div_ceil(per_chunk);
        let mut parts = zeros(&[chunks, 9, cin, cout], "the kernel-gradient partial sums")?;
        let failed = FirstError::default();
        parts.par_chunks_mut(9 * cin * cout).enumerate().for_each_init(
            || -> OpResult<_> { Ok((self.scratch()?, self.kernel_grad_buffer()?)) },
            |buffers, (c, part)| {
                let (s, du) = match buffers {
                    Ok((s, du)) => (s, du),
                    Err(e) => return failed.record(e),
                };
                du.fill(0.0);
                for item in c * per_chunk..((c + 1) * per_chunk).min(items) {
                    let (n, blk) = (item / per_image, item % per_image);
                    self.accumulate_tiles(&x[n * in_len..][..in_len], &dy[n * out_len..][..out_len], blk * BLOCK_TILES,
                                          (blk + 1) * BLOCK_TILES, du, s);
                }
                self.kernel_grad_into(du, part);
            },
        );
        failed.into_result()?;
        let grad_kernel = sum_partials(&parts, 9 * cin * cout)?;
        let grad_bias = column_sums(dy, cout)?;
        let grad_x = need_dx.then(|| self.run(&self.bwd, dy, &self.kernel(kernel, true)?, None, false)).transpose()?;
        Ok((grad_x, grad_kernel, grad_bias))
    }
}

multiversion! {
    /// out (= 0 first unless `add`) += Σ_t coef[t] · src[t] over equal-length blocks of `src` (zero
    /// coefficients skipped): the kernel's transform and its adjoint.
    fn combine(coef: &[f32], src: &[f32], out: &mut [f32], add: bool) {
        if !add {
            out.fill(0.0);
        }
        for (&c, block) in coef.iter().zip(src.chunks_exact(out.len().max(1))) {
            if c != 0.0 {
                out.iter_mut().zip(block).for_each(|(o, &v)| *o += c * v);
            }
        }
    }
}

#[path = "winograd_tiles.rs"]
mod tiles;
use tiles::{grad_tiles, input_tiles, output_tiles};

#[cfg(test)]
#[path = "winograd_tests.rs"]
mod tests;
