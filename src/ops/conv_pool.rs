//! Convolution + bias + ReLU + max pooling as one kernel, image by image.
//!
//! Unfused, the convolution's output (5.5 MB for the seed convnet's first layer at batch 64) is written
//! to memory, read back by the pooling, and in the backward pass read twice more (ReLU mask, pooling
//! gradient) while a same-sized input gradient is written. Fused, each image's convolution output lives
//! in a per-thread buffer that stays in cache: the forward writes only the pooled output and, when
//! training, the offset of each window's winning cell; the backward scatters the pooled gradient onto
//! the winners (nothing where the ReLU was inactive) and runs the convolution's backward on that image.
//! Results equal the unfused ops (the same maxima and routing; the gradients up to float32 summation
//! order, and where the `gemm` crate blocks one image's rows differently from a whole batch's, 1 ulp).

use rayon::prelude::*;

use super::conv::winograd::{Scratch as WinogradScratch, Winograd};
use super::conv::{partial_count, sum_partials, Conv2d, Operand, Scratch};
use super::gemm::{add_column_sums, transpose};
use super::simd::multiversion;
use super::geometry::{Axis, Padding};
use super::pool::{max_pool_image, Pool2d, PoolKind};
use super::LinearGrads;
use crate::alloc::{assume_init, deferred, filled, init_part, reused, zeros, FirstError};
use std::mem::MaybeUninit;
use std::ops::Range;
use crate::error::{shape_err, OpResult};
use crate::ops::PARALLEL_MIN_FLOPS;

/// Marks a pooled output whose gradient goes nowhere: its window's maximum is a ReLU zero.
pub const NO_WINNER: u32 = u32::MAX;

/// Convolution-output gradient values handled at once in the backward pass (256 KiB: stays in L2).
const GROUP_VALUES: usize = 1 << 16;
/// Kernel-gradient partial sums of a Winograd layer's fused backward (4: two per core here).
const WINOGRAD_PARTIALS: usize = 4;
/// Convolution-output values per band of the banded forward (128 KiB: stays in L2 until pooled), for images
/// whose whole convolution output has more than BAND_MIN_VALUES (3 MB: beyond a core's L2). Measured on a
/// 2 MB-L2 Xeon: 178×178×32 outputs (4 MB) 13.3 -> 11.7 ms per batch of 32 banded, 98×98×32 (1.2 MB)
/// 10 % slower banded than whole.
const BAND_VALUES: usize = 1 << 15;
const BAND_MIN_VALUES: usize = 3 << 18;
/// Bands per image at least, when the images are fewer than the threads (batch-1 inference).
const SPLIT_BANDS: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvReluMaxPool {
    pub conv: Conv2d,
    pub pool: Pool2d,
}

impl ConvReluMaxPool {
    pub fn new(conv: Conv2d, pool: (usize, usize), strides: (usize, usize), padding: Padding) -> OpResult<Self> {
        let pool = Pool2d::new(PoolKind::Max, &conv.output_shape(), pool, strides, padding)?;
        if pool.image_len() >= NO_WINNER as usize {
            shape_err!("a convolution output of {:?} per image is too large to fuse with pooling", conv.output_shape());
        }
        Ok(ConvReluMaxPool { conv, pool })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        self.pool.output_shape()
    }

    /// Floating-point operations of one image's convolution.
    fn image_flops(&self) -> usize {
        2 * self.conv.pixels_per_image() * self.conv.taps() * self.conv.cout
    }

    /// Images handed to one worker at a time, so that tiny calls stay on the calling thread.
    fn min_images(&self) -> usize {
        PARALLEL_MIN_FLOPS.div_ceil(self.image_flops().max(1))
    }

    /// One image's pooled output `yn` (and with `at_n` its winners) from its ReLU convolution output `z`.
    fn pool_image(&self, z: &[f32], yn: &mut [f32], at_n: Option<&mut [u32]>) {
        pool_relu(&self.pool, z, yn, at_n, 0);
    }

    /// The pooled output, and with `winners` the image offset of the cell each pooled value came from
    /// (`NO_WINNER` where the ReLU output was zero).
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, winners: bool)
                   -> OpResult<(Vec<f32>, Option<Vec<u32>>)> {
        let out_len = self.pool.out_image_len();
        // 3×3 stride-1 layers may run Winograd's algorithm instead (`conv::winograd`), image by image too.
        let wino = self.conv.winograd();
        // Fewer images than threads (batch-1 inference) and enough work per image: each image split into bands.
        let small_batch = self.pool.batch < rayon::current_num_threads() && self.image_flops() >= 4 * PARALLEL_MIN_FLOPS;
        if out_len == 0 || small_batch {
            let mut y = zeros(&self.output_shape(), "the output")?;
            let mut at = filled(&[if winners { y.len() } else { 0 }], NO_WINNER, "the winners")?;
            if out_len == 0 {
                return Ok((y, winners.then_some(at)));
            }
            if let Some(rows) = self.split_rows(wino.as_ref()) {
                self.forward_split(x, kernel, bias, wino, rows, &mut y, &mut at)?;
                return Ok((y, winners.then_some(at)));
            }
            let z = self.conv.forward(x, kernel, bias, true)?;
            let mut at_chunks = at.chunks_mut(out_len); // empty without `winners`
            for (zn, yn) in z.chunks_exact(self.pool.image_len()).zip(y.chunks_mut(out_len)) {
                self.pool_image(zn, yn, at_chunks.next());
            }
            return Ok((y, winners.then_some(at)));
        }
        // Each image's outputs (and winners) initialised by the worker that computes them, not in a pass before.
        let mut y = deferred::<f32>(&self.output_shape(), "the output")?;
        let mut at = deferred::<u32>(&[if winners { y.len() } else { 0 }], "the winners")?;
        let lhs = self.conv.operand(x)?;
        let u = wino.map(|w| w.kernel(kernel, false)).transpose()?;
        let x_len = self.conv.image_len();
        let failed = FirstError::default();
        let at_chunks: Vec<Option<&mut [MaybeUninit<u32>]>> = if winners {
            at.chunks_mut(out_len).map(Some).collect()
        } else {
            (0..self.pool.batch).map(|_| None).collect()
        };
        y.par_chunks_mut(out_len).zip(at_chunks).enumerate().with_min_len(self.min_images()).for_each_init(
            || Ok((reused(&[self.pool.image_len()], "the per-image convolution output")?, scratches(&self.conv, wino, false)?)),
            |buffers, (n, (yn, at_n))| {
                let (z, scratch) = match buffers {
                    Ok((z, scratch)) => (z, scratch),
                    Err(e) => return failed.record(e),
                };
                let (yn, at_n) = (init_part(yn, 0.0), at_n.map(|a| init_part(a, NO_WINNER)));
                match (scratch, wino, &u) {
                    (Scratches::Winograd(s, _), Some(w), Some(u)) => {
                        w.forward_image(&x[n * x_len..][..x_len], u, bias, true, z, s);
                        self.pool_image(z, yn, at_n);
                    }
                    (Scratches::Direct(s), ..) => self.forward_direct(&lhs, kernel, bias, n, z, yn, at_n, s),
                    _ => unreachable!("the scratch matches the path"),
                }
            },
        );
        failed.into_result()?;
        // Safety: with no error recorded, every image's chunk of `y` and `at` went through `init_part`.
        let (y, at) = unsafe { (assume_init(y), assume_init(at)) };
        Ok((y, winners.then_some(at)))
    }

    /// Band `p0..p0 + band` of pooled rows (clipped to the image): those pooled rows, the convolution rows under
    /// them, and the pooling of those convolution rows alone (windows that tile the rows).
    fn band(&self, p0: usize, band: usize) -> (Range<usize>, Range<usize>, Pool2d) {
        let rows = self.pool.rows;
        let p1 = (p0 + band).min(rows.output);
        let (r0, r1) = (p0 * rows.stride, (p1 * rows.stride).min(rows.input));
        (p0..p1, r0..r1, Pool2d { rows: Axis { input: r1 - r0, output: p1 - p0, ..rows }, ..self.pool })
    }

    /// Convolution rows per band when images are split among the threads (`forward_split`): about BAND_VALUES
    /// of output and at least SPLIT_BANDS bands per image (fixed by the shape, not the thread count), a
    /// multiple of the pool stride and of Winograd's tile; None unless the pooling windows tile the rows.
    fn split_rows(&self, wino: Option<&Winograd>) -> Option<usize> {
        let (rows, row_len) = (&self.pool.rows, self.pool.cols.input * self.pool.channels);
        if !tiles(rows) {
            return None;
        }
        let tile = wino.map_or(1, Winograd::tile);
        let unit = (1..=tile).map(|k| k * rows.stride).find(|r| r % tile == 0).unwrap_or(rows.stride * tile);
        let want = (BAND_VALUES / row_len.max(1)).min(rows.input.div_ceil(SPLIT_BANDS));
        Some((want / unit).max(1) * unit)
    }

    /// The pooled output (and winners, when `at` is not empty) with every image cut into bands of `rows`
    /// convolution rows, computed in parallel (direct or Winograd, the same products per output as whole
    /// images) and each pooled while in cache.
    #[allow(clippy::too_many_arguments)]
    fn forward_split(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, wino: Option<Winograd>, rows: usize,
                     y: &mut [f32], at: &mut [u32]) -> OpResult<()> {
        let (pool_rows, ow, x_len) = (self.pool.rows, self.pool.cols.input, self.conv.image_len());
        let (row_len, out_row) = (ow * self.pool.channels, self.pool.cols.output * self.pool.channels);
        let (band_rows, out_len) = (rows / pool_rows.stride, self.pool.out_image_len());
        let bands = pool_rows.output.div_ceil(band_rows);
        let lhs = self.conv.operand(x)?;
        let u = wino.map(|w| w.kernel(kernel, false)).transpose()?;
        let tile = wino.map_or(1, |w| w.tile());
        let ats: Vec<Option<&mut [u32]>> = if at.is_empty() {
            (0..self.pool.batch * bands).map(|_| None).collect()
        } else {
            at.chunks_mut(out_len).flat_map(|a| a.chunks_mut(band_rows * out_row).map(Some)).collect()
        };
        let items: Vec<_> = y.chunks_mut(out_len).enumerate()
            .flat_map(|(n, yn)| yn.chunks_mut(band_rows * out_row).enumerate().map(move |(b, yb)| (n, b, yb)))
            .zip(ats).collect();
        let failed = FirstError::default();
        items.into_par_iter().for_each_init(
            || Ok((reused(&[rows + tile, row_len], "the band's convolution output")?, scratches(&self.conv, wino, false)?)),
            |buffers, ((n, b, yb), ab)| {
                let (z, scratch) = match buffers {
                    Ok((z, scratch)) => (z, scratch),
                    Err(e) => return failed.record(e),
                };
                let (_, Range { start: r0, end: r1 }, sub) = self.band(b * band_rows, band_rows);
                match (scratch, wino, &u) {
                    (Scratches::Winograd(s, _), Some(w), Some(u)) => {
                        let end = (r1.div_ceil(tile) * tile).min(pool_rows.input);
                        w.forward_rows(&x[n * x_len..][..x_len], u, bias, true, r0 / tile..r1.div_ceil(tile),
                                       &mut z[..(end - r0) * row_len], s);
                    }
                    (Scratches::Direct(s), ..) => {
                        let first = n * self.conv.pixels_per_image() + r0 * ow;
                        self.conv.forward_pixels(&lhs, kernel, bias, true, first, &mut z[..(r1 - r0) * row_len], s);
                    }
                    _ => unreachable!("the scratch matches the path"),
                }
                pool_relu(&sub, &z[..(r1 - r0) * row_len], yb, ab, r0 * row_len);
            },
        );
        failed.into_result()
    }

    /// Pooled rows per band of the backward's direct kernel gradient (`kernel_grad_banded`), for images whose
    /// convolution output is more than GROUP_VALUES and whose pooling windows tile the rows: about BAND_VALUES.
    fn backward_band(&self) -> Option<usize> {
        let (rows, row_len) = (&self.pool.rows, self.pool.cols.input * self.pool.channels);
        (self.pool.image_len() > GROUP_VALUES && tiles(rows) && tiles(&self.pool.cols))
            .then(|| (BAND_VALUES / (rows.stride * row_len).max(1)).max(1))
    }

    /// The kernel and bias gradients of `images` (added to `kernel_part`, `bias_part`), a band of `band`
    /// pooled rows at a time: the band's convolution-output gradient is expanded from its windows' pooled
    /// gradients in one sequential pass (each cell reads its own window's winner: no zeroing, no scatter)
    /// and feeds the GEMM while it is in L2, instead of three passes over a whole image's (4 MB for
    /// 178×178×32) from memory. Only the direct path without the input gradient (first layers).
    #[allow(clippy::too_many_arguments)]
    fn kernel_grad_banded(&self, lhs: &Operand, dy: &[f32], winners: &[u32], images: Range<usize>, band: usize,
                          g: &mut [f32], s: &mut Scratch, kernel_part: &mut [f32], bias_part: &mut [f32]) {
        let (ow, pixels) = (self.pool.cols.input, self.conv.pixels_per_image());
        let (row_len, out_row, out_len) = (ow * self.pool.channels, self.pool.cols.output * self.pool.channels,
                                           self.pool.out_image_len());
        for n in images {
            for p0 in (0..self.pool.rows.output).step_by(band) {
                let (Range { start: p0, end: p1 }, Range { start: r0, end: r1 }, sub) = self.band(p0, band);
                let gb = &mut g[..(r1 - r0) * row_len];
                let pooled = n * out_len + p0 * out_row..n * out_len + p1 * out_row;
                expand_band(&dy[pooled.clone()], &winners[pooled], &sub, r0 * row_len, gb, bias_part);
                self.conv.accumulate_kernel_grad(lhs, gb, n * pixels + r0 * ow, s, kernel_part);
            }
        }
    }

    /// Pooled rows per band of `forward_direct`: about BAND_VALUES of convolution output each, when the
    /// image's output is large and the pooling windows tile the rows (stride = window, no padding before).
    fn band_rows(&self) -> Option<usize> {
        let (rows, row_len) = (&self.pool.rows, self.pool.cols.input * self.pool.channels);
        (self.pool.image_len() > BAND_MIN_VALUES && tiles(rows))
            .then(|| (BAND_VALUES / (rows.stride * row_len).max(1)).max(1))
    }

    /// Image `n`'s pooled output `yn` (and winners) through the direct convolution, a band of pooled rows at
    /// a time where the windows allow: only the convolution rows under the band are computed, into the
    /// front of `z`, and pooled while they are in L1/L2 (a whole image's output is megabytes for the seed
    /// models' first layers, written out and read back); rows under no window are never computed.
    #[allow(clippy::too_many_arguments)]
    fn forward_direct(&self, lhs: &Operand, kernel: &[f32], bias: Option<&[f32]>, n: usize, z: &mut [f32], yn: &mut [f32],
                      mut at_n: Option<&mut [u32]>, s: &mut Scratch) {
        let first = n * self.conv.pixels_per_image();
        let Some(band) = self.band_rows() else {
            self.conv.forward_pixels(lhs, kernel, bias, true, first, z, s);
            return self.pool_image(z, yn, at_n);
        };
        let (rows, ow) = (self.pool.rows, self.pool.cols.input);
        let (row_len, out_row) = (ow * self.pool.channels, self.pool.cols.output * self.pool.channels);
        for p0 in (0..rows.output).step_by(band) {
            let (Range { start: p0, end: p1 }, Range { start: r0, end: r1 }, sub) = self.band(p0, band);
            let zb = &mut z[..(r1 - r0) * row_len];
            self.conv.forward_pixels(lhs, kernel, bias, true, first + r0 * ow, zb, s);
            let ab = at_n.as_deref_mut().map(|a| &mut a[p0 * out_row..p1 * out_row]);
            pool_relu(&sub, zb, &mut yn[p0 * out_row..p1 * out_row], ab, r0 * row_len);
        }
    }

    /// (grad_x if asked, grad_kernel, grad_bias) from the pooled output's gradient `dy` and the
    /// forward's `winners`.
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], winners: &[u32], need_dx: bool)
                    -> OpResult<LinearGrads> {
        let conv = &self.conv;
        let (batch, cout) = (self.pool.batch, conv.cout);
        let (out_len, z_len, pixels) = (self.pool.out_image_len(), self.pool.image_len(), conv.pixels_per_image());
        if !all_below(winners, z_len) {
            shape_err!("`winners` holds offsets outside a convolution output of {z_len} values per image");
        }
        let (taps, x_len) = (conv.taps(), conv.image_len());
        // Like Conv2d::backward: partial sums over a number of image groups fixed by the shape, added in order.
        // Winograd's chunks each end with the adjoint kernel transform (Gᵀ du G, 9 × α² coefficients over
        // cin·cout): fewer of them.
        let wino = conv.winograd();
        let most = if wino.is_some() { WINOGRAD_PARTIALS } else { usize::MAX };
        let per_chunk = batch.div_ceil(partial_count(batch * pixels).min(most).min(batch.max(1))).max(1);
        let chunks = batch.div_ceil(per_chunk).max(1);
        let mut kernel_parts = zeros(&[chunks, taps, cout], "the kernel-gradient partial sums")?;
        let mut bias_parts = zeros(&[chunks, cout], "the bias-gradient partial sums")?;
        let mut dx = zeros(&[if need_dx { batch } else { 0 }, x_len], "the input gradient")?;
        if out_len == 0 || z_len == 0 {  // empty images: nothing flows back
            let (dk, db) = (zeros(&[taps, cout], "the kernel gradient")?, zeros(&[cout], "the bias gradient")?);
            return Ok((need_dx.then_some(dx), dk, db));
        }
        let lhs = conv.operand(x)?;
        let kernel_t = match wino {
            _ if !need_dx => Vec::new(),
            Some(w) => w.kernel(kernel, true)?, // the transformed flipped kernel
            None => transpose(kernel, taps, cout)?,
        };
        let failed = FirstError::default();
        let dx_chunks: Vec<Option<&mut [f32]>> = if need_dx && x_len > 0 {
            dx.chunks_mut(per_chunk * x_len).map(Some).collect()
        } else {
            (0..chunks).map(|_| None).collect()
        };
        // Images are handled a few at a time, so the kernel-gradient GEMM gets enough pixels per call
        // while their convolution-output gradient still fits in L2; larger images a band of rows at a time.
        let group = (GROUP_VALUES / z_len.max(1)).clamp(1, per_chunk);
        let banded = self.backward_band().filter(|_| !need_dx && wino.is_none());
        kernel_parts.par_chunks_mut(taps * cout).zip(bias_parts.par_chunks_mut(cout)).zip(dx_chunks).enumerate().for_each_init(
            || Ok((reused(&[group, z_len], "the convolution-output gradient")?, scratches(conv, wino, true)?)),
            |buffers, (i, ((kernel_part, bias_part), mut dx_chunk))| {
                let (g, scratch) = match buffers {
                    Ok((g, scratch)) => (g, scratch),
                    Err(e) => return failed.record(e),
                };
                if let Scratches::Winograd(_, du) = scratch {
                    du.fill(0.0);
                }
                let images = i * per_chunk..((i + 1) * per_chunk).min(batch);
                if let (Some(band), Scratches::Direct(s)) = (banded, &mut *scratch) {
                    return self.kernel_grad_banded(&lhs, dy, winners, images, band, g, s, kernel_part, bias_part);
                }
                for first in images.clone().step_by(group) {
                    let count = group.min(images.end - first);
                    let g = &mut g[..count * z_len];
                    // The convolution output's gradient: each pooled gradient lands on its window's winner.
                    scatter(&dy[first * out_len..][..count * out_len], &winners[first * out_len..][..count * out_len], z_len, out_len, g);
                    match (&mut *scratch, wino) {
                        (Scratches::Winograd(s, du), Some(w)) => w.accumulate_kernel_grad(&x[first * x_len..][..count * x_len], g, du, s),
                        (Scratches::Direct(s), _) => conv.accumulate_kernel_grad(&lhs, g, first * pixels, s, kernel_part),
                        _ => unreachable!("the scratch matches the path"),
                    }
                    add_column_sums(g, bias_part);
                    if let Some(dx_chunk) = dx_chunk.as_deref_mut() {
                        for (k, gn) in g.chunks_exact(z_len).enumerate() {
                            let dxn = &mut dx_chunk[(first + k - images.start) * x_len..][..x_len];
                            match (&mut *scratch, wino) {
                                (Scratches::Winograd(s, _), Some(w)) => w.input_grad_image(gn, &kernel_t, dxn, s),
                                (Scratches::Direct(s), _) => conv.image_input_grad(gn, &kernel_t, s, dxn),
                                _ => unreachable!("the scratch matches the path"),
                            }
                        }
                    }
                }
                if let (Scratches::Winograd(_, du), Some(w)) = (scratch, wino) {
                    w.kernel_grad_into(du, kernel_part);
                }
            },
        );
        failed.into_result()?;
        let grad_x = need_dx.then_some(dx);
        Ok((grad_x, sum_partials(&kernel_parts, taps * cout)?, sum_partials(&bias_parts, cout)?))
    }
}

/// Pooling windows along `a` that tile it from its start (stride = window, no padding before): a band of whole
/// windows covers a band of convolution rows (or columns) of its own.
fn tiles(a: &Axis) -> bool {
    a.stride == a.window && a.pad_before == 0 && a.stride > 0
}

/// Max pooling of a ReLU convolution output `z` into `y`, and with `at` the winners: offsets in `z` plus
/// `shift` (where `z` is a band of rows of the image's output), `NO_WINNER` where the maximum is a ReLU zero.
fn pool_relu(pool: &Pool2d, z: &[f32], y: &mut [f32], mut at: Option<&mut [u32]>, shift: usize) {
    max_pool_image(pool, z, y, at.as_deref_mut());
    if let Some(at) = at {
        if shift > 0 {
            at.iter_mut().for_each(|a| *a += shift as u32);
        }
        drop_relu_zeros(y, at);
    }
}

/// A worker's buffers: the direct path's im2col scratch, or Winograd's (and its kernel-gradient sum).
enum Scratches {
    Direct(Scratch),
    Winograd(WinogradScratch, Vec<f32>),
}

fn scratches(conv: &Conv2d, wino: Option<Winograd>, backward: bool) -> OpResult<Scratches> {
    Ok(match wino {
        Some(w) => Scratches::Winograd(w.scratch()?, if backward { w.kernel_grad_buffer()? } else { Vec::new() }),
        None => Scratches::Direct(conv.scratch()?),
    })
}

multiversion! {
    /// ReLU's derivative is zero where its output is: a window whose maximum is not positive routes
    /// its gradient nowhere.
    fn drop_relu_zeros(pooled: &[f32], winners: &mut [u32]) {
        winners.iter_mut().zip(pooled).for_each(|(a, &b)| *a = if b > 0.0 { *a } else { NO_WINNER });
    }
}

multiversion! {
    /// True when every winner is `NO_WINNER` or an offset below `len` (checked without branches).
    fn all_below(winners: &[u32], len: usize) -> bool {
        let len = len.min(NO_WINNER as usize) as u32;
        winners.iter().fold(true, |ok, &a| ok & ((a == NO_WINNER) | (a < len)))
    }
}

/// out[l] = d[l] where a[l] is offset `at + l` (this cell is the winner), else 0; branch-free, so it vectorizes.
#[inline(always)]
fn winner_values<const L: usize>(d: &[f32], a: &[u32], at: u32, out: &mut [f32]) {
    let (d, a, out): (&[f32; L], &[u32; L], &mut [f32; L]) =
        (d[..L].try_into().unwrap(), a[..L].try_into().unwrap(), (&mut out[..L]).try_into().unwrap());
    for l in 0..L {
        let m = ((a[l] == at.wrapping_add(l as u32)) as u32).wrapping_neg();
        out[l] = f32::from_bits(d[l].to_bits() & m);
    }
}

multiversion! {
    /// A band's convolution-output gradient `g` (its rows of `pool.cols.input` cells × `pool.channels`, starting
    /// at offset `shift` of the image's output) from the band's pooled gradient `dy` and `winners`, for windows
    /// that tile the output (stride = window, no padding before): each cell gets its window's gradient where it
    /// is that window's winner, else 0 (cells under no window too); `bias` += g's column sums, row by row in
    /// order (as `add_column_sums`).
    fn expand_band(dy: &[f32], winners: &[u32], pool: &Pool2d, shift: usize, g: &mut [f32], bias: &mut [f32]) {
        let (c, ow, pw) = (pool.channels, pool.cols.input, pool.cols.output);
        for (y, row) in g.chunks_exact_mut(ow * c).enumerate() {
            let py = y / pool.rows.stride;
            for (x, cell) in row.chunks_exact_mut(c).enumerate() {
                let px = x / pool.cols.stride;
                if py < pool.rows.output && px < pw {
                    let w = (py * pw + px) * c;
                    // Offsets below the image's output length, which is below NO_WINNER (checked in `new`).
                    let at = (shift + (y * ow + x) * c) as u32;
                    let (d, a) = (&dy[w..w + c], &winners[w..w + c]);
                    let full = c / 16 * 16;
                    for ch in (0..full).step_by(16) {
                        winner_values::<16>(&d[ch..], &a[ch..], at + ch as u32, &mut cell[ch..]);
                    }
                    for ch in full..c {
                        winner_values::<1>(&d[ch..], &a[ch..], at + ch as u32, &mut cell[ch..]);
                    }
                } else {
                    cell.fill(0.0);
                }
                bias.iter_mut().zip(cell.iter()).for_each(|(s, v)| *s += v);
            }
        }
    }
}

multiversion! {
    /// g = 0, then each pooled gradient added onto its window's winner, image by image (`dy` and
    /// `winners` hold `out_len` values per image, `g` holds `z_len`).
    fn scatter(dy: &[f32], winners: &[u32], z_len: usize, out_len: usize, g: &mut [f32]) {
        g.fill(0.0);
        for ((gn, dyn_), at_n) in g.chunks_exact_mut(z_len).zip(dy.chunks_exact(out_len)).zip(winners.chunks_exact(out_len)) {
            for (&gv, &a) in dyn_.iter().zip(at_n) {
                if let Some(slot) = gn.get_mut(a as usize) {
                    *slot += gv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (p, q) in a.iter().zip(b) {
            assert!((p - q).abs() <= 1e-4 * (1.0 + q.abs()), "{p} vs {q}");
        }
    }

    #[test]
    fn matches_the_unfused_ops() {
        for &(n, h, w, ci, co, k, s, pad, p, ps, ppad) in &[
            (2, 9, 8, 1, 3, 3, 1, Padding::Valid, 2, 2, Padding::Valid),
            (3, 7, 7, 2, 4, 3, 1, Padding::Same, 3, 2, Padding::Same),
            (1, 10, 6, 3, 2, 2, 2, Padding::Valid, 2, 1, Padding::Valid),
            (5, 6, 6, 1, 16, 3, 1, Padding::Same, 2, 3, Padding::Valid),
            (4, 12, 12, 1, 32, 3, 1, Padding::Valid, 2, 2, Padding::Valid),
            (2, 9, 9, 8, 16, 3, 2, Padding::Same, 2, 2, Padding::Same),
            (3, 6, 5, 4, 8, 1, 1, Padding::Valid, 2, 2, Padding::Valid), // 1×1: the pointwise paths
        ] {
            let conv = Conv2d::new(&[n, h, w, ci], &[k, k, ci, co], (s, s), pad).unwrap();
            let fused = ConvReluMaxPool::new(conv, (p, p), (ps, ps), ppad).unwrap();
            let (x, kern, bias) = (data(n * h * w * ci, 1), data(k * k * ci * co, 2), data(co, 3));
            let z = conv.forward(&x, &kern, Some(&bias), true).unwrap();
            let y = fused.pool.forward(&z).unwrap();
            let (fy, at) = fused.forward(&x, &kern, Some(&bias), true).unwrap();
            assert_eq!(fy, y);
            assert_eq!(fused.forward(&x, &kern, Some(&bias), false).unwrap().0, y);
            let dy = data(y.len(), 4);
            let dz = fused.pool.backward(&z, &dy, Some(&y)).unwrap();
            let (dx, dk, db) = conv.backward(&x, &kern, &dz, true, Some(&z)).unwrap();
            let (fdx, fdk, fdb) = fused.backward(&x, &kern, &dy, &at.unwrap(), true).unwrap();
            close(&fdx.unwrap(), &dx.unwrap());
            close(&fdk, &dk);
            close(&fdb, &db);
        }
    }
}
