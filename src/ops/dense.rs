//! Fully connected layer: y = x · W + b with x (n, in), W (in, out) as Keras stores it.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::activation::{mask_by_relu, relu_in_place};
use super::gemm::{column_sums, sgemm};
use super::microkernel;
use super::PARALLEL_MIN_FLOPS;
use super::simd::multiversion;
use super::conv::sum_partials;
use super::LinearGrads;
use crate::error::{shape_err, OpError, OpResult};

/// Work split, fixed so results never depend on the thread count. A work item is a block of `ROWS` rows
/// (a multiple of the micro-kernel's 6) times `COLS` output columns (its widest tile); the forward pass
/// walks the depth in `DEPTH` slices so a DEPTH×COLS panel of the kernel (128 KB) stays in L2 while every
/// row tile reads it, and the kernel streams from memory once per row block instead of once per 6 rows.
const ROWS: usize = 48;
const COLS: usize = 64;
const DEPTH: usize = 512;
/// Up to this many rows (inference and training batches) the forward splits the depth instead of the output:
/// each work item multiplies a contiguous block of kernel rows (full width, streamed from memory once) and
/// the blocks' partial products are added in block order. On a 12,800 → 512 layer at batch 32 this runs at
/// 147 GFLOP/s where (row block × column strip) tiles, each reading a 256-byte-wide strided strip of the
/// kernel, ran at 110 (Zen 4; 183 vs 118 at batch 200). The partials hold m / SPLIT_DEPTH times the kernel.
const SPLIT_ROWS: usize = 256;
/// Kernel rows per block of the depth split (one work item): 512 (1 MB of a 512-wide kernel, L2-sized) for
/// GEMMs, 256 for a few rows, which are bound by reading the kernel and want more items.
const SPLIT_DEPTH: usize = 512;
const GEMV_DEPTH: usize = 256;
/// Up to this many rows, outputs the micro-kernel cannot tile use plain matrix-vector products.
const GEMV_ROWS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dense {
    pub batch: usize,
    pub inputs: usize,
    pub units: usize,
}

/// A buffer of `len` floats whose `chunk`-sized pieces are each filled by `fill(index, piece)`, in parallel.
/// The pieces are zeroed inside the parallel work item, just before `fill` overwrites them (in cache),
/// instead of by one thread over the whole buffer first.
fn par_filled(len: usize, chunk: usize, what: &str, fill: impl Fn(usize, &mut [f32]) + Sync) -> OpResult<Vec<f32>> {
    let mut v: Vec<f32> = Vec::new();
    v.try_reserve_exact(len).map_err(|_| OpError::Memory(format!("cannot allocate {what} ({len} floats)")))?;
    v.spare_capacity_mut()[..len].par_chunks_mut(chunk.max(1)).enumerate().for_each(|(i, piece)| {
        piece.fill(MaybeUninit::new(0.0));
        // Safety: every element of `piece` was just initialised; MaybeUninit<f32> has f32's layout.
        let piece = unsafe { &mut *(piece as *mut [MaybeUninit<f32>] as *mut [f32]) };
        fill(i, piece);
    });
    // Safety: the loop above initialised the first `len` elements.
    unsafe { v.set_len(len) };
    Ok(v)
}

/// The transpose of a row-major `rows × cols` matrix, with `ld >= rows` columns (the extra ones zero).
fn transposed(matrix: &[f32], rows: usize, cols: usize, ld: usize) -> OpResult<Vec<f32>> {
    par_filled(cols * ld, ROWS * ld, "a transposed operand", |block, out| {
        for (j, row) in out.chunks_exact_mut(ld).enumerate() {
            let c = block * ROWS + j;
            row[..rows].iter_mut().enumerate().for_each(|(r, v)| *v = matrix[r * cols + c]);
        }
    })
}

/// The output buffer, written by the forward's work items at disjoint (row block, column strip) places.
struct SharedOut(*mut f32);

// Safety: the work items write disjoint parts of the buffer (see `Dense::forward`).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

impl Dense {
    pub fn new(x: &[usize], kernel: &[usize]) -> OpResult<Self> {
        if x.len() != 2 {
            shape_err!("input must have rank 2 (batch, features), got shape {x:?}");
        }
        if kernel.len() != 2 {
            shape_err!("kernel must have rank 2 (in, out), got shape {kernel:?}");
        }
        if x[1] != kernel[0] {
            shape_err!("input has {} features but the kernel expects {} (input {x:?}, kernel {kernel:?})", x[1], kernel[0]);
        }
        if kernel[0] == 0 || kernel[1] == 0 {
            shape_err!("kernel dimensions must be positive, got {kernel:?}");
        }
        Ok(Dense { batch: x[0], inputs: x[1], units: kernel[1] })
    }

    /// y = x · W + b, with ReLU fused into the store when `relu` is set. Each (row block, column strip)
    /// item sums the depth in fixed `DEPTH` slices into its own tile, which is then copied into `y`.
    pub fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, relu: bool) -> OpResult<Vec<f32>> {
        let (m, k, u) = (self.batch, self.inputs, self.units);
        if m <= SPLIT_ROWS && m > 0 && u > 0 {
            return self.forward_depth_split(x, kernel, bias, relu);
        }
        let (row_blocks, strips) = (m.div_ceil(ROWS), u.div_ceil(COLS));
        let mut y = crate::alloc::zeros(&[m, u], "the output")?;
        let out = SharedOut(y.as_mut_ptr());
        let failed = crate::alloc::FirstError::default();
        (0..row_blocks * strips).into_par_iter().for_each_init(
            || crate::alloc::zeros::<f32>(&[ROWS, COLS], "a dense output tile"),
            |tile, item| {
                let tile = match tile {
                    Ok(tile) => tile,
                    Err(e) => return failed.record(e),
                };
                let (r0, c0) = (item / strips * ROWS, item % strips * COLS);
                let (rows, cols) = ((m - r0).min(ROWS), (u - c0).min(COLS));
                let tile = &mut tile[..rows * cols];
                match bias {
                    Some(b) => tile.chunks_exact_mut(cols).for_each(|row| row.copy_from_slice(&b[c0..c0 + cols])),
                    None => tile.fill(0.0),
                }
                for k0 in (0..k).step_by(DEPTH) {
                    let beta = if k0 > 0 || bias.is_some() { 1.0 } else { 0.0 };
                    sgemm(rows, (k - k0).min(DEPTH), cols, &x[r0 * k + k0..], false, k, &kernel[k0 * u + c0..], false,
                          u, tile, cols, beta);
                }
                if relu {
                    relu_in_place(tile);
                }
                for (r, src) in tile.chunks_exact(cols).enumerate() {
                    // Safety: item (r0, c0) alone writes rows r0..r0+rows, columns c0..c0+cols of `y`, which
                    // outlives the loop; the slices written by different items are disjoint.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.at((r0 + r) * u + c0), cols) };
                    dst.copy_from_slice(src);
                }
            },
        );
        failed.into_result()?;
        Ok(y)
    }

    /// The forward for up to SPLIT_ROWS rows: the kernel streamed once in contiguous blocks of `depth` rows,
    /// each block's partial product computed on its own, the partials added in block order (`sum_partials`;
    /// fixed by the shape, so no result depends on the thread count), then the bias.
    fn forward_depth_split(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, relu: bool) -> OpResult<Vec<f32>> {
        let (m, k, u) = (self.batch, self.inputs, self.units);
        let depth = if m <= GEMV_ROWS { GEMV_DEPTH } else { SPLIT_DEPTH };
        let blocks = k.div_ceil(depth).max(1); // k = 0: one block of zeros
        let mut partials = crate::alloc::zeros(&[blocks, m, u], "the partial products")?;
        // Small layers run on the calling thread: waking the pool costs more than their product.
        let min_blocks = PARALLEL_MIN_FLOPS.div_ceil(2 * depth * m * u);
        // (bfloat16 compute goes through the GEMM, which rounds the operands.)
        let gemv = m <= GEMV_ROWS && !microkernel::fits(u)
            && super::gemm::compute_precision() == super::gemm::Precision::Float32;
        partials.par_chunks_mut(m * u).with_min_len(min_blocks).enumerate().for_each(|(b, part)| {
            let (k0, depth) = (b * depth, (k - b * depth).min(depth));
            if gemv {
                gemv_block(x, k, k0, depth, &kernel[k0 * u..], u, part);
            } else {
                // The register-tiled kernel reads the kernel rows in place, ~10× faster than the loop.
                sgemm(m, depth, u, &x[k0..], false, k, &kernel[k0 * u..], false, u, part, u, 0.0);
            }
        });
        let mut y = sum_partials(&partials, m * u)?;
        if let Some(b) = bias {
            y.chunks_exact_mut(u).for_each(|row| row.iter_mut().zip(b).for_each(|(v, b)| *v += b));
        }
        if relu {
            relu_in_place(&mut y);
        }
        Ok(y)
    }

    /// (grad_x if asked, grad_kernel, grad_bias); `relu_output` masks `dy` first, as in `Conv2d::backward`.
    /// grad_kernel = xᵀ · dy and grad_xᵀ = W · dyᵀ, both split over blocks of input features (the rows of W),
    /// each summing the whole batch (or all units) in one pass: W and grad_kernel stream through memory once.
    pub fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool, relu_output: Option<&[f32]>)
                    -> OpResult<LinearGrads> {
        let dy = &*mask_by_relu(dy, relu_output)?;
        let (n, k, u) = (self.batch, self.inputs, self.units);
        let dx = need_dx.then(|| -> OpResult<Vec<f32>> {
            let ld = n.next_multiple_of(16); // the fast kernel wants outputs a multiple of 16 wide
            let dy_t = transposed(dy, n, u, ld)?;
            let dx_t = par_filled(k * ld, ROWS * ld, "the input gradient", |block, d| {
                sgemm(d.len() / ld, u, ld, &kernel[block * ROWS * u..], false, u, &dy_t, false, ld, d, ld, 0.0);
            })?;
            par_filled(n * k, 16 * k, "the input gradient", |block, d| {
                let r0 = block * 16; // one cache line of each row of dx_t
                for c in 0..k {
                    d.chunks_exact_mut(k).enumerate().for_each(|(j, row)| row[c] = dx_t[c * ld + r0 + j]);
                }
            })
        }).transpose()?;
        let x_t = transposed(x, n, k, n)?;
        let dk = par_filled(k * u, ROWS * u, "the kernel gradient", |block, g| {
            sgemm(g.len() / u, n, u, &x_t[block * ROWS * n..], false, n, dy, false, u, g, u, 0.0);
        })?;
        Ok((dx, dk, column_sums(dy, u)?))
    }
}

multiversion! {
    /// part (rows × u) = x[.., k0..k0 + depth] · w, w the kernel's rows k0.. (u wide), each column summed
    /// in order of k.
    fn gemv_block(x: &[f32], k: usize, k0: usize, depth: usize, w: &[f32], u: usize, part: &mut [f32]) {
        for p in 0..depth {
            let row = &w[p * u..][..u];
            for (r, acc) in part.chunks_exact_mut(u).enumerate() {
                let xv = x[r * k + k0 + p];
                acc.iter_mut().zip(row).for_each(|(a, &wv)| *a += xv * wv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_small() {
        let d = Dense::new(&[2, 3], &[3, 2]).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        assert_eq!(d.forward(&x, &w, Some(&[0.5, -0.5]), false).unwrap(), vec![4.5, 4.5, 10.5, 10.5]);
        assert_eq!(d.forward(&x, &w, Some(&[0.5, -5.0]), true).unwrap(), vec![4.5, 0.0, 10.5, 6.0]);
        let (dx, dw, db) = d.backward(&x, &w, &[1.0, 0.0, 0.0, 1.0], true, None).unwrap();
        assert_eq!(dx.unwrap(), vec![1.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(dw, vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(db, vec![1.0, 1.0]);
    }

    #[test]
    fn rejects_mismatched_features() {
        assert!(Dense::new(&[2, 3], &[4, 2]).is_err());
    }
}
