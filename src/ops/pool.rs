//! Max and average pooling, forward and backward, NHWC, with TensorFlow's semantics: padded cells
//! never win a max, and same-padded averages divide by the number of real (unpadded) cells.

use rayon::prelude::*;


use super::geometry::{Axis, Padding};
use super::simd::multiversion;
use crate::alloc::zeros;
use crate::error::{shape_err, OpResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

impl PoolKind {
    pub fn parse(s: &str) -> OpResult<Self> {
        match s {
            "max" => Ok(PoolKind::Max),
            "avg" => Ok(PoolKind::Avg),
            other => shape_err!("pooling kind must be 'max' or 'avg', got '{other}'"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub batch: usize,
    pub channels: usize,
    pub rows: Axis,
    pub cols: Axis,
}

impl Pool2d {
    pub fn new(kind: PoolKind, x: &[usize], pool: (usize, usize), strides: (usize, usize), padding: Padding) -> OpResult<Self> {
        if x.len() != 4 {
            shape_err!("input must have rank 4 (batch, height, width, channels), got shape {x:?}");
        }
        if pool.0 == 0 || pool.1 == 0 || strides.0 == 0 || strides.1 == 0 {
            shape_err!("pool_size {pool:?} and strides {strides:?} must be positive");
        }
        let (Some(rows), Some(cols)) = (
            Axis::new(x[1], pool.0, strides.0, padding),
            Axis::new(x[2], pool.1, strides.1, padding),
        ) else {
            shape_err!("pool_size {pool:?} is larger than the input {x:?} with 'valid' padding");
        };
        Ok(Pool2d { kind, batch: x[0], channels: x[3], rows, cols })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.rows.output, self.cols.output, self.channels]
    }

    pub(crate) fn image_len(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }

    pub(crate) fn out_image_len(&self) -> usize {
        self.rows.output * self.cols.output * self.channels
    }

    /// Input rows and columns of the real (unpadded) cells under output (oy, ox).
    #[inline(always)]
    fn window(&self, oy: usize, ox: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let span = |a: &Axis, o: usize| {
            let start = o * a.stride;
            start.saturating_sub(a.pad_before)..(start + a.window).saturating_sub(a.pad_before).min(a.input)
        };
        (span(&self.rows, oy), span(&self.cols, ox))
    }

    /// For every channel of output (oy, ox), the maximum of the window into `best`. NaN wins, so it
    /// propagates like in TF. Branch-free selects let the loop vectorise over channels.
    #[inline]
    fn max_window(&self, x: &[f32], (oy, ox): (usize, usize), best: &mut [f32]) {
        let (c, w) = (self.channels, self.cols.input);
        let (rows, cols) = self.window(oy, ox);
        best.copy_from_slice(&x[(rows.start * w + cols.start) * c..][..c]);
        for iy in rows {
            for ix in cols.clone() {
                best.iter_mut().zip(&x[(iy * w + ix) * c..][..c]).for_each(|(b, &v)| {
                    *b = if (v > *b) | (v.is_nan() & !b.is_nan()) { v } else { *b };
                });
            }
        }
    }

    /// Route `g` to the first cell of each channel's window that holds the maximum `best` (so ties
    /// and NaN go where the forward took them), again without branches.
    #[inline]
    fn route_max(&self, x: &[f32], (oy, ox): (usize, usize), best: &[f32], g: &[f32], done: &mut [bool], dx: &mut [f32]) {
        let (c, w) = (self.channels, self.cols.input);
        let (rows, cols) = self.window(oy, ox);
        done.fill(false);
        for iy in rows {
            for ix in cols.clone() {
                let at = (iy * w + ix) * c;
                for ((((d, &v), &b), &gv), seen) in
                    dx[at..][..c].iter_mut().zip(&x[at..][..c]).zip(best).zip(g).zip(done.iter_mut())
                {
                    let hit = ((v == b) | (v.is_nan() & b.is_nan())) & !*seen;
                    *d += if hit { gv } else { 0.0 };
                    *seen |= hit;
                }
            }
        }
    }

    /// Number of real cells under output (oy, ox), the divisor of TF's same-padded average.
    #[inline]
    fn count(&self, oy: usize, ox: usize) -> usize {
        let (rows, cols) = self.window(oy, ox);
        rows.len() * cols.len()
    }

    pub fn forward(&self, x: &[f32]) -> OpResult<Vec<f32>> {
        let mut y = zeros(&self.output_shape(), "the output")?;
        if self.out_image_len() == 0 {
            return Ok(y);
        }
        y.par_chunks_mut(self.out_image_len()).enumerate().for_each(|(n, yn)| {
            let xn = &x[n * self.image_len()..][..self.image_len()];
            match self.kind {
                PoolKind::Max => max_pool_image(self, xn, yn, None),
                PoolKind::Avg => avg_pool_image(self, xn, yn),
            }
        });
        Ok(y)
    }

    /// Gradient of the input. For max pooling, `y` (the forward's output, if the caller kept it) saves
    /// recomputing every window's maximum.
    pub fn backward(&self, x: &[f32], dy: &[f32], y: Option<&[f32]>) -> OpResult<Vec<f32>> {
        let c = self.channels;
        let mut dx = zeros(&[self.batch, self.image_len()], "the input gradient")?;
        if self.image_len() == 0 || self.out_image_len() == 0 {
            return Ok(dx);
        }
        dx.par_chunks_mut(self.image_len()).enumerate().for_each_init(
            || (vec![0.0f32; c], vec![false; c]),
            |(best, done), (n, dxn)| {
                let xn = &x[n * self.image_len()..][..self.image_len()];
                let dyn_ = &dy[n * self.out_image_len()..][..self.out_image_len()];
                let yn = y.map(|y| &y[n * self.out_image_len()..][..self.out_image_len()]);
                pool_backward_image(self, xn, dyn_, yn, best, done, dxn);
            },
        );
        Ok(dx)
    }
}

multiversion! {
    /// Max pooling of one image: `y` gets each window's maximum (NaN wins, like TF) and `at`, if given,
    /// the offset in `x` of the first cell holding it, where the backward routes the gradient. One
    /// pass: a later cell takes over only when strictly greater (or the first NaN).
    pub(crate) fn max_pool_image(pool: &Pool2d, x: &[f32], y: &mut [f32], at: Option<&mut [u32]>) {
        let (c, ow) = (pool.channels, pool.cols.output);
        let mut at = at;
        let (r, q) = (&pool.rows, &pool.cols);
        let tiles_2x2 = |a: &Axis| a.window == 2 && a.stride == 2 && a.pad_before == 0 && 2 * a.output <= a.input;
        if tiles_2x2(r) && tiles_2x2(q) {
            // The common 2×2 / stride-2 pooling: four cells per window at fixed offsets, no window ranges.
            for (o, best) in y.chunks_exact_mut(c).enumerate() {
                let first = (2 * (o / ow) * q.input + 2 * (o % ow)) * c;
                let cells = [first, first + c, first + q.input * c, first + (q.input + 1) * c];
                let mut arg = at.as_deref_mut().map(|a| &mut a[o * c..][..c]);
                let full = c / 16 * 16;
                for ch in (0..full).step_by(16) {
                    cells_max::<16>(x, &cells, ch, &mut best[ch..], arg.as_deref_mut().map(|a| &mut a[ch..]));
                }
                for ch in full..c {
                    cells_max::<1>(x, &cells, ch, &mut best[ch..], arg.as_deref_mut().map(|a| &mut a[ch..]));
                }
            }
            return;
        }
        for (o, best) in y.chunks_exact_mut(c).enumerate() {
            let (rows, cols) = pool.window(o / ow, o % ow);
            let mut arg = at.as_deref_mut().map(|a| &mut a[o * c..][..c]);
            // 16 channels at a time in registers (a running max kept in memory stalls on store forwarding).
            let full = c / 16 * 16;
            for ch in (0..full).step_by(16) {
                window_max::<16>(pool, x, &rows, &cols, ch, &mut best[ch..], arg.as_deref_mut().map(|a| &mut a[ch..]));
            }
            for ch in full..c {
                window_max::<1>(pool, x, &rows, &cols, ch, &mut best[ch..], arg.as_deref_mut().map(|a| &mut a[ch..]));
            }
        }
    }
}

/// `window_max` over four given cells (offsets of channel 0), in order.
#[inline(always)]
fn cells_max<const L: usize>(x: &[f32], cells: &[usize; 4], ch: usize, best: &mut [f32], arg: Option<&mut [u32]>) {
    let mut run = RunningMax::<L>::new(x, cells[0] + ch);
    for &cell in &cells[1..] {
        run.take(x, cell + ch);
    }
    run.store(best, arg);
}

/// The maximum (and first arg max) of channels `ch..ch + L` over one window.
#[inline(always)]
fn window_max<const L: usize>(pool: &Pool2d, x: &[f32], rows: &std::ops::Range<usize>, cols: &std::ops::Range<usize>,
                              ch: usize, best: &mut [f32], arg: Option<&mut [u32]>) {
    let (c, w) = (pool.channels, pool.cols.input);
    let mut run = RunningMax::<L>::new(x, (rows.start * w + cols.start) * c + ch);
    for iy in rows.clone() {
        for ix in cols.clone() {
            run.take(x, (iy * w + ix) * c + ch);
        }
    }
    run.store(best, arg);
}

/// The running maximum of L channels over a window's cells, and the offset of the first cell holding it.
struct RunningMax<const L: usize> {
    best: [f32; L],
    at: [u32; L],
}

impl<const L: usize> RunningMax<L> {
    /// Starting at the cell at offset `first`.
    #[inline(always)]
    fn new(x: &[f32], first: usize) -> Self {
        RunningMax { best: x[first..][..L].try_into().unwrap(), at: std::array::from_fn(|l| (first + l) as u32) }
    }

    /// The cell at offset `cell` takes over where strictly greater (or the first NaN). Branch-free selects
    /// through all-ones masks, so that AVX2 (no mask registers) vectorizes them too.
    #[inline(always)]
    fn take(&mut self, x: &[f32], cell: usize) {
        let v: &[f32; L] = x[cell..][..L].try_into().unwrap();
        let (b, a) = (&mut self.best, &mut self.at);
        for l in 0..L {
            let take = (v[l] > b[l]) | (v[l].is_nan() & !b[l].is_nan());
            let m = (take as u32).wrapping_neg();
            b[l] = f32::from_bits((v[l].to_bits() & m) | (b[l].to_bits() & !m));
            a[l] = (((cell + l) as u32) & m) | (a[l] & !m);
        }
    }

    #[inline(always)]
    fn store(&self, best: &mut [f32], arg: Option<&mut [u32]>) {
        best[..L].copy_from_slice(&self.best);
        if let Some(arg) = arg {
            arg[..L].copy_from_slice(&self.at);
        }
    }
}

multiversion! {
    /// Average pooling of one image (TF: same-padded windows divide by their real cells only).
    fn avg_pool_image(pool: &Pool2d, x: &[f32], y: &mut [f32]) {
        let (c, ow) = (pool.channels, pool.cols.output);
        for (o, out) in y.chunks_exact_mut(c).enumerate() {
            let (oy, ox) = (o / ow, o % ow);
            out.fill(0.0);
            let (rows, cols) = pool.window(oy, ox);
            for iy in rows {
                for ix in cols.clone() {
                    let pix = iy * pool.cols.input + ix;
                    out.iter_mut().zip(&x[pix * c..][..c]).for_each(|(s, v)| *s += v);
                }
            }
            let inv = 1.0 / pool.count(oy, ox) as f32;
            out.iter_mut().for_each(|s| *s *= inv);
        }
    }
}

multiversion! {
    /// One image's input gradient from its output gradient `dy` (and, for max pooling, the forward's
    /// maxima `y` if kept; else they are recomputed into `best`).
    fn pool_backward_image(pool: &Pool2d, x: &[f32], dy: &[f32], y: Option<&[f32]>, best: &mut [f32], done: &mut [bool],
                           dx: &mut [f32]) {
        let (c, ow) = (pool.channels, pool.cols.output);
        for (o, g) in dy.chunks_exact(c).enumerate() {
            let (oy, ox) = (o / ow, o % ow);
            match pool.kind {
                PoolKind::Max => {
                    let best: &[f32] = match y {
                        Some(y) => &y[o * c..][..c],
                        None => {
                            pool.max_window(x, (oy, ox), best);
                            best
                        }
                    };
                    pool.route_max(x, (oy, ox), best, g, done, dx);
                }
                PoolKind::Avg => {
                    let inv = 1.0 / pool.count(oy, ox) as f32;
                    let (rows, cols) = pool.window(oy, ox);
                    for iy in rows {
                        for ix in cols.clone() {
                            let pix = iy * pool.cols.input + ix;
                            dx[pix * c..][..c].iter_mut().zip(g).for_each(|(d, v)| *d += v * inv);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_2x2() {
        let p = Pool2d::new(PoolKind::Max, &[1, 2, 4, 1], (2, 2), (2, 2), Padding::Valid).unwrap();
        let x = [1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 7.0, 1.0];
        assert_eq!(p.forward(&x).unwrap(), vec![5.0, 7.0]);
        assert_eq!(p.backward(&x, &[1.0, 2.0], None).unwrap(), vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0]);
        assert_eq!(p.backward(&x, &[1.0, 2.0], Some(&[5.0, 7.0])).unwrap(), p.backward(&x, &[1.0, 2.0], None).unwrap());
    }

    #[test]
    fn same_avg_pool_counts_only_real_cells() {
        // 3 wide, pool 2 stride 2 same: out 2, total pad 1 (after): last window has one real cell.
        let p = Pool2d::new(PoolKind::Avg, &[1, 1, 3, 1], (1, 2), (1, 2), Padding::Same).unwrap();
        assert_eq!(p.forward(&[2.0, 4.0, 9.0]).unwrap(), vec![3.0, 9.0]);
        assert_eq!(p.backward(&[2.0, 4.0, 9.0], &[1.0, 1.0], None).unwrap(), vec![0.5, 0.5, 1.0]);
    }

    #[test]
    fn max_pool_propagates_nan() {
        let p = Pool2d::new(PoolKind::Max, &[1, 1, 2, 1], (1, 2), (1, 2), Padding::Valid).unwrap();
        assert!(p.forward(&[1.0, f32::NAN]).unwrap()[0].is_nan());
    }
}
