//! 2-D convolution (cross-correlation, like Keras) lowered to GEMM through im2col.
//!
//! Rows of the im2col matrix are output pixels of the whole batch (n·oh·ow of them), columns are
//! kernel taps in the kernel's own (kh, kw, cin) order, so the Keras kernel (kh, kw, cin, cout) is the
//! GEMM's right operand as stored. Work is split into fixed blocks of output pixels, not images, so a
//! batch of one still uses every core, and no result depends on the thread count.

use rayon::prelude::*;

pub mod grouped;
pub mod winograd;

use super::activation::{mask_by_relu, relu_in_place};
use super::microkernel;
use super::gemm::{affine, column_sums, sgemm, transpose};
use super::geometry::{Axis, Padding};
use super::LinearGrads;
use crate::alloc::{reused, zeros, FirstError, Reused};
use crate::error::{shape_err, OpError, OpResult};
use crate::ops::PARALLEL_MIN_FLOPS;

/// Output pixels per parallel work item (an im2col block of 128 × kh·kw·cin stays in L2).
const BLOCK_PIXELS: usize = 128;
/// Output pixels per im2col block in the backward pass (512 × kh·kw·cin floats stay in L2).
const REDUCE_PIXELS: usize = 512;
/// Output pixels per partial sum of the kernel gradient, and the most partials kept at once.
const PIXELS_PER_PARTIAL: usize = 1024;
const MAX_PARTIALS: usize = 16;
/// Deeper layers get at least a partial per PIXELS_PER_PARTIAL pixels of this many taps (3×3×128): a
/// 9×9×256→256 layer has 1,568 output pixels of 2,304 taps per batch of 32, and one partial left the
/// other cores idle (kernel gradient 135 GFLOP/s; 4 partials 240, 8 212, 16 163: each is 2.4 MB to zero
/// and add).
const PARTIAL_TAPS: usize = 1152;
/// Backward passes whose whole im2col matrix has at most this many values (2 MiB) build it at once.
const WHOLE_COL_VALUES: usize = 1 << 19;
/// Kernel-gradient rows (taps) per work item in `backward_whole`.
const TAP_ROWS: usize = 48;
/// Convolutions with at most this many taps (kh·kw·cin: first layers) read their input in place.
const GATHER_MAX_TAPS: usize = 32;
/// Work items at least for the forward of a convolution with few output pixels but much work.
const SPLIT_ITEMS: usize = 8;
/// Pixels per block at least in that split (4 tiles of the micro-kernel's 6 rows); fewer: channel groups.
const SPLIT_ROWS: usize = 24;
/// Output-channel groups of that split (each its own pass over the im2col matrix: wider groups are faster;
/// 4 × 64 for 9×9×256→256 at batch 1: 427 µs, 8 × 32: 518 µs).
const SPLIT_GROUPS: usize = 4;

/// The convolution's left operand: the input, and for few-tap layers the form the gather kernels read
/// (the input zero-padded once, so that every window lies inside it, and each tap's offset in it).
pub(crate) struct Operand<'a> {
    x: &'a [f32],
    gather: Option<Gather<'a>>,
}

struct Gather<'a> {
    padded: std::borrow::Cow<'a, [f32]>,
    height: usize,
    width: usize,
    offsets: Vec<usize>,
}

/// Per-thread scratch: an im2col block, or the gathered pixels' offsets.
pub(crate) struct Scratch {
    col: Reused,
    bases: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub rows: Axis,
    pub cols: Axis,
}

impl Conv2d {
    /// Geometry from an input (n, h, w, cin) and a kernel (kh, kw, cin, cout).
    pub fn new(x: &[usize], kernel: &[usize], strides: (usize, usize), padding: Padding) -> OpResult<Self> {
        if x.len() != 4 {
            shape_err!("input must have rank 4 (batch, height, width, channels), got shape {x:?}");
        }
        if kernel.len() != 4 {
            shape_err!("kernel must have rank 4 (kh, kw, in_channels, filters), got shape {kernel:?}");
        }
        if x[3] != kernel[2] {
            shape_err!("input has {} channels but the kernel expects {} (input {x:?}, kernel {kernel:?})", x[3], kernel[2]);
        }
        if x[3] == 0 || kernel[3] == 0 {
            shape_err!("channel counts must be positive (input {x:?}, kernel {kernel:?})");
        }
        if strides.0 == 0 || strides.1 == 0 {
            shape_err!("strides must be positive, got {strides:?}");
        }
        let (Some(rows), Some(cols)) = (
            Axis::new(x[1], kernel[0], strides.0, padding),
            Axis::new(x[2], kernel[1], strides.1, padding),
        ) else {
            shape_err!("kernel {kernel:?} is larger than the input {x:?} with 'valid' padding (or has a zero size)");
        };
        let conv = Conv2d { batch: x[0], cin: x[3], cout: kernel[3], rows, cols };
        // Every size the kernels compute from the shape must fit a usize (they multiply unchecked).
        let [n, oh, ow, co] = conv.output_shape();
        let products = [[n, oh, ow, co], [n, conv.pixels_per_image(), conv.taps(), 1],
                        [BLOCK_PIXELS.max(REDUCE_PIXELS), conv.taps(), conv.cout, 2]];
        if products.iter().any(|dims| dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).is_none()) {
            return Err(OpError::Memory(format!(
                "a convolution of input {x:?} with kernel {kernel:?} and strides {strides:?} is too large to compute")));
        }
        Ok(conv)
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.output, self.cols.output, self.cout]
    }

    pub(crate) fn image_len(&self) -> usize {
        self.rows.input * self.cols.input * self.cin
    }

    pub(crate) fn pixels_per_image(&self) -> usize {
        self.rows.output * self.cols.output
    }

    /// Length of one im2col row: kh · kw · cin.
    pub(crate) fn taps(&self) -> usize {
        self.rows.window * self.cols.window * self.cin
    }

    /// A 1×1, stride-1 convolution reads its input as the im2col matrix itself.
    fn is_pointwise(&self) -> bool {
        self.rows.window == 1 && self.cols.window == 1 && self.rows.stride == 1 && self.cols.stride == 1
    }

    /// The left operand for `forward_pixels` and `accumulate_kernel_grad`: few-tap layers whose channels
    /// fill whole vectors gather taps straight from the (padded) input on AVX-512 / AVX2 CPUs, the rest use im2col.
    pub(crate) fn operand<'a>(&self, x: &'a [f32]) -> OpResult<Operand<'a>> {
        let gathers = self.taps() <= GATHER_MAX_TAPS && !self.is_pointwise() && microkernel::fits(self.cout);
        let gather = gathers.then(|| -> OpResult<Gather<'a>> {
            let span = |a: &Axis| (a.output.saturating_sub(1) * a.stride + a.window).max(a.input + a.pad_before);
            let (height, width) = (span(&self.rows), span(&self.cols));
            let padded = if (height, width) == (self.rows.input, self.cols.input) {
                std::borrow::Cow::Borrowed(x)
            } else {
                let (cin, w) = (self.cin, self.cols.input);
                let mut p = zeros(&[self.batch, height, width, cin], "the padded input")?;
                for (src, dst) in x.chunks_exact(self.image_len().max(1)).zip(p.chunks_exact_mut((height * width * cin).max(1))) {
                    for (r, line) in src.chunks_exact((w * cin).max(1)).enumerate() {
                        let at = ((r + self.rows.pad_before) * width + self.cols.pad_before) * cin;
                        dst[at..][..w * cin].copy_from_slice(line);
                    }
                }
                std::borrow::Cow::Owned(p)
            };
            let mut offsets = Vec::with_capacity(self.taps());
            for ky in 0..self.rows.window {
                for kx in 0..self.cols.window {
                    offsets.extend((0..self.cin).map(|c| (ky * width + kx) * self.cin + c));
                }
            }
            Ok(Gather { padded, height, width, offsets })
        }).transpose()?;
        Ok(Operand { x, gather })
    }

    pub(crate) fn scratch(&self) -> OpResult<Scratch> {
        let rows = BLOCK_PIXELS.max(REDUCE_PIXELS);
        let taps = if self.is_pointwise() { 0 } else { self.taps() };
        Ok(Scratch { col: reused(&[rows, taps], "the im2col scratch")?, bases: Vec::with_capacity(rows) })
    }

    /// Offsets in the padded input of the first tap of output pixels `first..first + count`.
    fn pixel_bases(&self, g: &Gather, first: usize, count: usize, bases: &mut Vec<usize>) {
        let (ppi, ow, oh) = (self.pixels_per_image(), self.cols.output, self.rows.output);
        let (image, row_step, col_step) = (g.height * g.width * self.cin, self.rows.stride * g.width * self.cin, self.cols.stride * self.cin);
        // Walk (image, oy, ox) incrementally: divisions per pixel showed up in profiles.
        let (mut n, mut oy, mut ox) = (first / ppi, (first % ppi) / ow, first % ow);
        bases.clear();
        for _ in 0..count {
            bases.push(n * image + oy * row_step + ox * col_step);
            ox += 1;
            if ox == ow {
                ox = 0;
                oy += 1;
                if oy == oh {
                    oy = 0;
                    n += 1;
                }
            }
        }
        // The gather kernels read base + offset unchecked: the largest of both must lie inside the input.
        assert!(bases.last().unwrap_or(&0) + g.offsets.last().unwrap_or(&0) < g.padded.len().max(1));
    }

    /// The im2col rows of output pixels `first..first + rows`: built in `col`, or for a pointwise
    /// convolution the input itself.
    fn im2col_rows<'a>(&self, x: &'a [f32], first: usize, rows: usize, col: &'a mut [f32]) -> &'a [f32] {
        let taps = self.taps();
        if self.is_pointwise() {
            return &x[first * taps..][..rows * taps];
        }
        self.im2col(x, first, &mut col[..rows * taps]);
        &col[..rows * taps]
    }

    /// Fill `col` with the im2col rows of global output pixels `first..first + col.len()/taps`.
    fn im2col(&self, x: &[f32], first: usize, col: &mut [f32]) {
        let (taps, cin, kw) = (self.taps(), self.cin, self.cols.window);
        let (ppi, ow) = (self.pixels_per_image(), self.cols.output);
        for (i, row) in col.chunks_exact_mut(taps).enumerate() {
            let pixel = first + i;
            let image = &x[(pixel / ppi) * self.image_len()..][..self.image_len()];
            let (oy, ox) = ((pixel % ppi) / ow, pixel % ow);
            for ky in 0..self.rows.window {
                let dst = &mut row[ky * kw * cin..][..kw * cin];
                let Some(iy) = self.rows.source(oy, ky) else {
                    dst.fill(0.0);
                    continue;
                };
                let line = &image[iy * self.cols.input * cin..][..self.cols.input * cin];
                match (self.cols.source(ox, 0), self.cols.source(ox, kw - 1)) {
                    // The whole kernel row is inside the image: one contiguous copy.
                    (Some(ix), Some(_)) => dst.copy_from_slice(&line[ix * cin..][..kw * cin]),
                    _ => {
                        for (kx, tap) in dst.chunks_exact_mut(cin).enumerate() {
                            match self.cols.source(ox, kx) {
                                Some(ix) => tap.copy_from_slice(&line[ix * cin..][..cin]),
                                None => tap.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }

    /// Scatter-add im2col-shaped gradient rows, for pixels `first..` of one image, onto that image's
    /// input gradient.
    fn col2im(&self, dcol: &[f32], first: usize, dx: &mut [f32]) {
        let (taps, cin, kw, ow) = (self.taps(), self.cin, self.cols.window, self.cols.output);
        for (p, row) in dcol.chunks_exact(taps).enumerate() {
            let (oy, ox) = ((first + p) / ow, (first + p) % ow);
            for ky in 0..self.rows.window {
                let Some(iy) = self.rows.source(oy, ky) else { continue };
                for kx in 0..kw {
                    let Some(ix) = self.cols.source(ox, kx) else { continue };
                    let dst = &mut dx[(iy * self.cols.input + ix) * cin..][..cin];
                    for (d, s) in dst.iter_mut().zip(&row[(ky * kw + kx) * cin..][..cin]) {
                        *d += s;
                    }
                }
            }
        }
    }

    /// y = conv(x, kernel) + bias, shape `output_shape()`, with ReLU applied in the same pass when
    /// `relu` is set (the block is still in cache, so the activation costs no extra memory sweep).
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, relu: bool) -> OpResult<Vec<f32>> {
        if let Some(w) = self.winograd() {
            return w.forward(x, kernel, bias, relu);
        }
        let (taps, cout) = (self.taps(), self.cout);
        let mut y = zeros(&self.output_shape(), "the output")?;
        let pixels = self.batch * self.pixels_per_image();
        let work = 2 * pixels * taps * cout >= 4 * PARALLEL_MIN_FLOPS;
        // Few output pixels but much work (late layers, small batches): blocks of fewer pixels, SPLIT_ITEMS of
        // them, so both cores get work (a pixel's products do not depend on its block); under SPLIT_ROWS
        // pixels a block, groups of output channels instead (9×9×256→256 at batch 1: 49 pixels).
        let mut block = BLOCK_PIXELS;
        if work && pixels < SPLIT_ITEMS * BLOCK_PIXELS && !self.is_pointwise() {
            block = pixels.div_ceil(SPLIT_ITEMS).next_multiple_of(6);
            let width = self.cout.div_ceil(SPLIT_GROUPS).next_multiple_of(16);
            if block < SPLIT_ROWS && width < self.cout {
                self.forward_columns(x, kernel, bias, relu, width, &mut y)?;
                return Ok(y);
            }
        }
        // Small convolutions (batch-1 inference) run on the calling thread: waking the pool costs more.
        let min_blocks = PARALLEL_MIN_FLOPS.div_ceil(2 * block * taps * cout);
        let lhs = self.operand(x)?;
        let failed = FirstError::default();
        y.par_chunks_mut(block * cout).with_min_len(min_blocks).enumerate().for_each_init(
            || self.scratch(),
            |scratch, (b, out)| match scratch {
                Ok(scratch) => self.forward_pixels(&lhs, kernel, bias, relu, b * block, out, scratch),
                Err(e) => failed.record(e),
            },
        );
        failed.into_result()?;
        Ok(y)
    }

    /// `forward` in groups of `width` output channels, each group over every pixel (the same products per
    /// output): the im2col matrix built once, each group's outputs gathered into `y`.
    fn forward_columns(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, relu: bool, width: usize, y: &mut [f32])
                       -> OpResult<()> {
        let (taps, cout, pixels) = (self.taps(), self.cout, y.len() / self.cout.max(1));
        let mut col = zeros(&[pixels, taps], "the im2col matrix")?;
        self.im2col(x, 0, &mut col);
        let groups: Vec<usize> = (0..cout).step_by(width).collect();
        let parts: Vec<OpResult<Vec<f32>>> = groups.par_iter().map(|&c0| {
            let w = width.min(cout - c0);
            let mut part = zeros(&[pixels, w], "the output")?;
            for (b, out) in part.chunks_mut(BLOCK_PIXELS * w).enumerate() {
                let m = out.len() / w;
                if let Some(bias) = bias {
                    out.chunks_exact_mut(w).for_each(|row| row.copy_from_slice(&bias[c0..c0 + w]));
                }
                sgemm(m, taps, w, &col[b * BLOCK_PIXELS * taps..], false, taps, &kernel[c0..], false, cout, out, w,
                      if bias.is_some() { 1.0 } else { 0.0 });
            }
            if relu {
                relu_in_place(&mut part);
            }
            Ok(part)
        }).collect();
        for (c0, part) in groups.iter().zip(parts) {
            let part = part?;
            let w = part.len() / pixels.max(1);
            for (row, src) in y.chunks_exact_mut(cout).zip(part.chunks_exact(w.max(1))) {
                row[*c0..c0 + w].copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// Output pixels `first..first + out.len()/cout` (global pixel numbers over the batch) into `out`,
    /// in cache-sized blocks.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_pixels(&self, lhs: &Operand, kernel: &[f32], bias: Option<&[f32]>, relu: bool, first: usize,
                                 out: &mut [f32], scratch: &mut Scratch) {
        let (taps, cout) = (self.taps(), self.cout);
        for (b, out) in out.chunks_mut(BLOCK_PIXELS * cout).enumerate() {
            let first = first + b * BLOCK_PIXELS;
            let m = out.len() / cout;
            if let Some(g) = &lhs.gather {
                self.pixel_bases(g, first, m, &mut scratch.bases);
                assert!(kernel.len() >= taps * cout && out.len() >= m * cout && bias.is_none_or(|b| b.len() >= cout));
                // Safety: every base + offset lies inside the padded input (`pixel_bases` checks the largest),
                // the kernel, output and bias sizes too; `operand` only gathers when `microkernel::fits(cout)`.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    microkernel::gather_gemm(cout, g.padded.as_ptr(), &scratch.bases, &g.offsets, kernel.as_ptr(),
                                        bias.map(|b| b.as_ptr()), relu, out.as_mut_ptr(), cout);
                }
                continue;
            }
            let a = self.im2col_rows(lhs.x, first, m, &mut scratch.col);
            affine(m, taps, cout, a, kernel, bias, relu, out);
        }
    }

    /// Gradients (grad_x if asked, grad_kernel, grad_bias) from the output gradient `dy`. With
    /// `relu_output` (the forward's ReLU output), `dy` is first masked where that output is zero.
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool, relu_output: Option<&[f32]>)
                    -> OpResult<LinearGrads> {
        let dy = &*mask_by_relu(dy, relu_output)?;
        if let Some(w) = self.winograd() {
            return w.backward(x, kernel, dy, need_dx);
        }
        let lhs = self.operand(x)?;
        if self.batch * self.pixels_per_image() * self.taps() <= WHOLE_COL_VALUES && !self.is_pointwise() && lhs.gather.is_none() {
            self.backward_whole(x, kernel, dy, need_dx)
        } else {
            self.backward_blocked(&lhs, kernel, dy, need_dx)
        }
    }

    /// The backward pass in cache-sized pixel blocks, for convolutions with many output pixels.
    fn backward_blocked(&self, lhs: &Operand, kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads> {
        let (taps, cout) = (self.taps(), self.cout);
        let pixels = self.batch * self.pixels_per_image();
        // grad_kernel (taps × cout) = colᵀ · dy, a reduction over every output pixel. The pixels are cut
        // into a number of chunks fixed by the shape alone (never by the thread count; a power of two,
        // so they split evenly over 2, 4, 8... cores); each chunk accumulates its partial product block
        // by block, and the partials are summed in order: parallel even for a 1-channel first layer, and
        // identical run to run.
        let chunks = partial_count(pixels).max(partial_count(pixels.saturating_mul(taps) / PARTIAL_TAPS));
        let per_chunk = pixels.div_ceil(chunks);
        let mut partials = zeros(&[chunks, taps, cout], "the kernel-gradient partial sums")?;
        let failed = FirstError::default();
        partials.par_chunks_mut(taps * cout).enumerate().for_each_init(
            || self.scratch(),
            |scratch, (i, part)| {
                let (first, end) = (i * per_chunk, ((i + 1) * per_chunk).min(pixels));
                match scratch {
                    Ok(scratch) if first < end =>
                        self.accumulate_kernel_grad(lhs, &dy[first * cout..end * cout], first, scratch, part),
                    Ok(_) => {}
                    Err(e) => failed.record(e),
                }
            },
        );
        failed.into_result()?;
        let grad_kernel = sum_partials(&partials, taps * cout)?;
        let grad_bias = column_sums(dy, cout)?;

        let grad_x = need_dx.then(|| -> OpResult<Vec<f32>> {
            let kernel_t = transpose(kernel, taps, cout)?; // dy · Wᵀ with a row-major right operand
            let ppi = self.pixels_per_image();
            let mut dx = zeros(&[self.batch, self.image_len()], "the input gradient")?;
            let failed = FirstError::default();
            if self.is_pointwise() {
                // dx = dy · Wᵀ directly, no scatter needed.
                dx.par_chunks_mut(BLOCK_PIXELS * taps).enumerate().for_each(|(block, d)| {
                    let m = d.len() / taps;
                    sgemm(m, cout, taps, &dy[block * BLOCK_PIXELS * cout..], false, cout, &kernel_t, false, taps, d, taps, 0.0);
                });
            } else if self.image_len() > 0 {
                // One image per work item: scatters into the same image never race.
                dx.par_chunks_mut(self.image_len()).enumerate().for_each_init(
                    || self.scratch(),
                    |scratch, (n, dxn)| match scratch {
                        Ok(scratch) => self.image_input_grad(&dy[n * ppi * cout..][..ppi * cout], &kernel_t, scratch, dxn),
                        Err(e) => failed.record(e),
                    },
                );
            }
            failed.into_result()?;
            Ok(dx)
        }).transpose()?;
        Ok((grad_x, grad_kernel, grad_bias))
    }

    /// The backward pass of a convolution with few output pixels but many taps (a late layer, like the
    /// seed convnet's 3×3-output conv3): too few pixels to split the kernel-gradient reduction over
    /// cores, so the whole im2col matrix is built once and the GEMMs split over taps (grad_kernel rows)
    /// and over pixels (grad_x), each output element still summed in one fixed order.
    fn backward_whole(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads> {
        let (taps, cout, ppi) = (self.taps(), self.cout, self.pixels_per_image());
        let pixels = self.batch * ppi;
        let mut col = zeros(&[pixels, taps], "the im2col matrix")?;
        col.par_chunks_mut(BLOCK_PIXELS * taps).enumerate().for_each(|(b, c)| self.im2col(x, b * BLOCK_PIXELS, c));
        let mut grad_kernel = zeros(&[taps, cout], "the kernel gradient")?;
        grad_kernel.par_chunks_mut(TAP_ROWS * cout).enumerate().for_each(|(b, g)| {
            let rows = g.len() / cout;
            sgemm(rows, pixels, cout, &col[b * TAP_ROWS..], true, taps, dy, false, cout, g, cout, 0.0);
        });
        let grad_bias = column_sums(dy, cout)?;
        let grad_x = need_dx.then(|| -> OpResult<Vec<f32>> {
            let kernel_t = transpose(kernel, taps, cout)?;
            let dcol = &mut col; // reused: dy · Wᵀ, im2col-shaped
            dcol.par_chunks_mut(BLOCK_PIXELS * taps).enumerate().for_each(|(b, d)| {
                let m = d.len() / taps;
                sgemm(m, cout, taps, &dy[b * BLOCK_PIXELS * cout..], false, cout, &kernel_t, false, taps, d, taps, 0.0);
            });
            let mut dx = zeros(&[self.batch, self.image_len()], "the input gradient")?;
            if self.image_len() > 0 && ppi > 0 {
                dx.par_chunks_mut(self.image_len()).zip(dcol.par_chunks(ppi * taps)).for_each(|(dxn, d)| self.col2im(d, 0, dxn));
            }
            Ok(dx)
        }).transpose()?;
        Ok((grad_x, grad_kernel, grad_bias))
    }

    /// part (taps × cout) += colᵀ · dy for the output pixels `first..` that `dy` holds, building only a
    /// cache-sized piece of the im2col matrix at a time (or none, when the taps are gathered).
    pub(crate) fn accumulate_kernel_grad(&self, lhs: &Operand, dy: &[f32], first: usize, scratch: &mut Scratch, part: &mut [f32]) {
        let (taps, cout) = (self.taps(), self.cout);
        for (b, dy) in dy.chunks(REDUCE_PIXELS * cout).enumerate() {
            let (first, rows) = (first + b * REDUCE_PIXELS, dy.len() / cout);
            if let Some(g) = &lhs.gather {
                self.pixel_bases(g, first, rows, &mut scratch.bases);
                assert!(part.len() >= taps * cout);
                // Safety: as in `forward_pixels`; `dy` holds rows × cout values.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    microkernel::gather_gemm_t(cout, g.padded.as_ptr(), &scratch.bases, &g.offsets, dy.as_ptr(), part.as_mut_ptr());
                }
                continue;
            }
            let a = self.im2col_rows(lhs.x, first, rows, &mut scratch.col);
            sgemm(taps, rows, cout, a, true, taps, dy, false, cout, part, cout, 1.0);
        }
    }

    /// One image's input gradient `dxn` (zeroed by the caller) from its output gradient `dy`, through
    /// dy · Wᵀ in pixel blocks (whose im2col-shaped gradient stays in cache) scattered back by col2im.
    pub(crate) fn image_input_grad(&self, dy: &[f32], kernel_t: &[f32], scratch: &mut Scratch, dxn: &mut [f32]) {
        let (taps, cout) = (self.taps(), self.cout);
        for (b, dy) in dy.chunks(REDUCE_PIXELS * cout).enumerate() {
            let rows = dy.len() / cout;
            if self.is_pointwise() {
                sgemm(rows, cout, taps, dy, false, cout, kernel_t, false, taps, &mut dxn[b * REDUCE_PIXELS * taps..], taps, 0.0);
            } else {
                let d = &mut scratch.col[..rows * taps];
                sgemm(rows, cout, taps, dy, false, cout, kernel_t, false, taps, d, taps, 0.0);
                self.col2im(d, b * REDUCE_PIXELS, dxn);
            }
        }
    }
}

/// How many partial kernel gradients a reduction over `pixels` output pixels keeps: fixed by the shape
/// alone, a power of two so they split evenly over 2, 4, 8... cores.
pub(crate) fn partial_count(pixels: usize) -> usize {
    (pixels / PIXELS_PER_PARTIAL).clamp(1, MAX_PARTIALS).next_power_of_two().min(MAX_PARTIALS)
}

/// The sum of equal-length partials, added in order (so the result never depends on the thread count).
pub(crate) fn sum_partials(partials: &[f32], len: usize) -> OpResult<Vec<f32>> {
    let mut total = crate::alloc::copied(&partials[..len], "the gradient sum")?;
    for part in partials.chunks_exact(len.max(1)).skip(1) {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
