//! The extension's global allocator: the system allocator plus a small cache of freed large blocks.
//!
//! A training or inference loop allocates the same multi-megabyte activations and gradients every step
//! and frees them a step later (NumPy drops the arrays). Handing such blocks back to the OS and faulting
//! fresh pages in on the next step measured 2.4× slower training here, and glibc's own thresholds stop
//! helping above 32 MB (batch-1000 inference). Blocks of at least `MIN_BYTES` are therefore kept on free
//! and handed out again for a request of exactly the same size and alignment, which is what a loop asks
//! for. Only this library's allocations are affected; the cache is bounded in blocks and bytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::error::{OpError, OpResult};

const MIN_BYTES: usize = 64 << 10;
const MAX_BLOCKS: usize = 64;
const MAX_BYTES: usize = 1 << 30;

pub struct ReusingAllocator;

struct Cache {
    blocks: [(usize, usize, usize); MAX_BLOCKS], // (size, align, address); address 0 = empty slot
    bytes: usize,
}

struct Locked {
    busy: AtomicBool,
    cache: std::cell::UnsafeCell<Cache>,
}

// Safety: `cache` is only touched while `busy` is held.
unsafe impl Sync for Locked {}

static CACHE: Locked = Locked {
    busy: AtomicBool::new(false),
    cache: std::cell::UnsafeCell::new(Cache { blocks: [(0, 0, 0); MAX_BLOCKS], bytes: 0 }),
};

/// Run `f` on the cache under a spin lock (held for a few dozen instructions; no allocation inside).
fn with_cache<T>(f: impl FnOnce(&mut Cache) -> T) -> T {
    while CACHE.busy.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
    }
    // Safety: the lock is held.
    let out = f(unsafe { &mut *CACHE.cache.get() });
    CACHE.busy.store(false, Ordering::Release);
    out
}

fn take(layout: Layout) -> *mut u8 {
    with_cache(|c| {
        for slot in c.blocks.iter_mut() {
            if slot.2 != 0 && slot.0 == layout.size() && slot.1 == layout.align() {
                c.bytes -= slot.0;
                return std::mem::take(slot).2 as *mut u8;
            }
        }
        std::ptr::null_mut()
    })
}

/// Keep the block if there is room; false means the caller frees it.
fn keep(ptr: *mut u8, layout: Layout) -> bool {
    with_cache(|c| {
        if c.bytes + layout.size() > MAX_BYTES {
            return false;
        }
        match c.blocks.iter_mut().find(|slot| slot.2 == 0) {
            Some(slot) => {
                *slot = (layout.size(), layout.align(), ptr as usize);
                c.bytes += layout.size();
                true
            }
            None => false,
        }
    })
}

unsafe impl GlobalAlloc for ReusingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_BYTES {
            let ptr = take(layout);
            if !ptr.is_null() {
                return ptr;
            }
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= MIN_BYTES {
            let ptr = take(layout);
            if !ptr.is_null() {
                ptr.write_bytes(0, layout.size());
                return ptr;
            }
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= MIN_BYTES && keep(ptr, layout) {
            return;
        }
        System.dealloc(ptr, layout)
    }
}

#[cfg(unix)]
extern "C" {
    fn pthread_atfork(prepare: Option<extern "C" fn()>, parent: Option<extern "C" fn()>,
                      child: Option<extern "C" fn()>) -> std::ffi::c_int;
}

#[cfg(unix)]
extern "C" fn lock_before_fork() {
    while CACHE.busy.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
    }
}

#[cfg(unix)]
extern "C" fn unlock_after_fork() {
    CACHE.busy.store(false, Ordering::Release);
}

/// Hold the cache's lock across `fork`, so a child never inherits it held by a thread that does not
/// exist there (its next large allocation would spin forever). Called once, at import.
pub fn register_fork_handlers() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // Safety: the handlers only flip an atomic flag; they allocate nothing and are valid for the
        // process's lifetime.
        ONCE.call_once(|| unsafe {
            pthread_atfork(Some(lock_before_fork), Some(unlock_after_fork), Some(unlock_after_fork));
        });
    }
}

/// Element types whose all-zero bit pattern is a valid value (so a zeroed allocation is initialised).
///
/// # Safety
/// Implement only for types for which all-zero bytes are a valid value.
pub unsafe trait Zeroable: Copy {}
// Safety: 0.0, 0 and false are all-zero bytes.
unsafe impl Zeroable for f32 {}
unsafe impl Zeroable for u32 {}
unsafe impl Zeroable for usize {}
unsafe impl Zeroable for bool {}

/// Elements of a buffer of shape `dims`, or a MemoryError naming `what` when the product overflows.
pub fn checked_len(dims: &[usize], what: &str) -> OpResult<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| {
        OpError::Memory(format!("{what} of shape {dims:?} has more elements than fit in the address space"))
    })
}

fn too_large<T>(dims: &[usize], what: &str, len: usize) -> OpError {
    let bytes = (len as u128) * std::mem::size_of::<T>() as u128;
    OpError::Memory(format!("cannot allocate {what} of shape {dims:?} ({bytes} bytes)"))
}

/// Buffers of at least this many bytes are zeroed by the kernel threads together.
const PARALLEL_ZERO_BYTES: usize = 1 << 20;
/// Bytes per parallel zeroing task.
const ZERO_CHUNK_BYTES: usize = 256 << 10;

/// A zero-filled buffer of shape `dims` (flattened), or a MemoryError naming `what` and the shape where
/// the size overflows or the allocation fails (`vec![0; n]` would abort the process instead). Small
/// buffers come from `alloc_zeroed`, as `vec!` does; large ones are zeroed by the pool's threads in
/// parallel: their blocks usually come back from the cache above, which `alloc_zeroed` would clear on one
/// thread while the others wait (a 32 MB input gradient took milliseconds of a 2-core step).
pub fn zeros<T: Zeroable>(dims: &[usize], what: &str) -> OpResult<Vec<T>> {
    let len = checked_len(dims, what)?;
    let layout = Layout::array::<T>(len).map_err(|_| too_large::<T>(dims, what, len))?;
    if layout.size() == 0 {
        return Ok(Vec::new());
    }
    let parallel = layout.size() >= PARALLEL_ZERO_BYTES;
    // Safety: the layout has a non-zero size; a non-null result is a block of `len` Ts from the global
    // allocator with `Layout::array::<T>(len)`, which is what `Vec` frees it with; when it does not come
    // zeroed, every byte is zeroed below before the Vec is made (all-zero bytes are a valid T: `Zeroable`).
    unsafe {
        let ptr = if parallel { std::alloc::alloc(layout) } else { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(too_large::<T>(dims, what, len));
        }
        if parallel {
            let bytes = std::slice::from_raw_parts_mut(ptr as *mut std::mem::MaybeUninit<u8>, layout.size());
            bytes.par_chunks_mut(ZERO_CHUNK_BYTES).for_each(|c| c.fill(std::mem::MaybeUninit::new(0)));
        }
        Ok(Vec::from_raw_parts(ptr as *mut T, len, len))
    }
}

/// A buffer of shape `dims` filled with `value`, failing like `zeros`.
pub fn filled<T: Clone>(dims: &[usize], value: T, what: &str) -> OpResult<Vec<T>> {
    let len = checked_len(dims, what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_large::<T>(dims, what, len))?;
    v.resize(len, value);
    Ok(v)
}

/// An output buffer of shape `dims` whose parts are initialised by the work items that compute them
/// (`init_part`), each while it is about to be written anyway, instead of a whole-buffer pass before the work
/// (a 32 MB pooled output at batch 32 was 5 % of the seed 003 model's inference). Fails like `zeros`.
pub fn deferred<T>(dims: &[usize], what: &str) -> OpResult<Vec<std::mem::MaybeUninit<T>>> {
    let len = checked_len(dims, what)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_large::<T>(dims, what, len))?;
    // Safety: the capacity is `len`, and MaybeUninit needs no initialisation.
    unsafe { v.set_len(len) };
    Ok(v)
}

/// `part` of a `deferred` buffer set to `value`, as initialised values.
pub fn init_part<T: Copy>(part: &mut [std::mem::MaybeUninit<T>], value: T) -> &mut [T] {
    part.fill(std::mem::MaybeUninit::new(value));
    // Safety: every element was just initialised; MaybeUninit<T> has T's layout.
    unsafe { &mut *(part as *mut [std::mem::MaybeUninit<T>] as *mut [T]) }
}

/// A `deferred` buffer every part of which went through `init_part`, as a Vec of its values.
///
/// # Safety
/// Every element must have been initialised.
pub unsafe fn assume_init<T>(v: Vec<std::mem::MaybeUninit<T>>) -> Vec<T> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // Safety: same allocation, length and capacity; MaybeUninit<T> has T's layout; initialised per the caller.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr() as *mut T, v.len(), v.capacity()) }
}

/// A copy of `src`, failing like `zeros` (`to_vec` would abort).
pub fn copied<T: Clone>(src: &[T], what: &str) -> OpResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(src.len()).map_err(|_| too_large::<T>(&[src.len()], what, src.len()))?;
    v.extend_from_slice(src);
    Ok(v)
}

/// The first error raised inside a parallel loop whose per-thread scratch could not be allocated:
/// workers record it and skip their item; the caller returns it after the loop.
#[derive(Default)]
pub struct FirstError(std::sync::Mutex<Option<OpError>>);

impl FirstError {
    pub fn record(&self, e: &OpError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert_with(|| e.clone());
        }
    }

    pub fn into_result(self) -> OpResult<()> {
        match self.0.into_inner() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(OpError::Internal("a kernel thread panicked while recording an error".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_blocks_are_reused() {
        let layout = Layout::from_size_align(1 << 20, 64).unwrap();
        unsafe {
            let a = ReusingAllocator.alloc(layout);
            ReusingAllocator.dealloc(a, layout);
            let b = ReusingAllocator.alloc_zeroed(layout);
            assert_eq!(a, b, "a freed block of the same layout comes back");
            assert!(std::slice::from_raw_parts(b, layout.size()).iter().all(|&v| v == 0));
            ReusingAllocator.dealloc(b, layout);
            let other = Layout::from_size_align(1 << 21, 64).unwrap();
            let c = ReusingAllocator.alloc(other);
            assert_ne!(a, c);
            ReusingAllocator.dealloc(c, other);
        }
    }

    #[test]
    fn fallible_buffers() {
        assert_eq!(zeros::<f32>(&[2, 3], "x").unwrap(), vec![0.0; 6]);
        assert!(zeros::<f32>(&[0, 5], "x").unwrap().is_empty());
        assert_eq!(filled(&[3], 7u32, "x").unwrap(), vec![7, 7, 7]);
        let overflow = zeros::<f32>(&[usize::MAX, 2], "the output").unwrap_err();
        assert!(matches!(overflow, OpError::Memory(ref m) if m.contains("the output of shape")), "{overflow:?}");
        // Larger than any address space: the allocation fails and reports instead of aborting.
        let huge = zeros::<f32>(&[1 << 61], "scratch").unwrap_err();
        assert!(matches!(huge, OpError::Memory(ref m) if m.contains("cannot allocate scratch")), "{huge:?}");
        assert!(filled(&[1 << 61], 0u32, "w").is_err());
    }
}

/// Buffers a thread keeps for `reused` (at most this many, the largest kept).
const REUSED_BUFFERS: usize = 6;

thread_local! {
    static REUSED: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A scratch buffer of floats taken from this thread's pool and given back to it on drop: per-work-item
/// scratch (im2col blocks, Winograd tiles) that the kernels overwrite before reading, so it is zeroed only
/// when first allocated instead of on every parallel call (megabytes per call on the Winograd layers).
/// Its contents are whatever an earlier user left: never read what was not written first.
pub struct Reused {
    buf: Vec<f32>,
    len: usize,
}

/// A `Reused` buffer of shape `dims` (MemoryError naming `what` as `zeros` does).
pub fn reused(dims: &[usize], what: &str) -> OpResult<Reused> {
    let len = checked_len(dims, what)?;
    let taken = REUSED.with(|pool| {
        let mut pool = pool.try_borrow_mut().ok()?;
        // The smallest buffer that is large enough.
        let best = pool.iter().enumerate().filter(|(_, b)| b.len() >= len).min_by_key(|(_, b)| b.len()).map(|(i, _)| i)?;
        Some(pool.swap_remove(best))
    });
    let buf = match taken {
        Some(buf) => buf,
        None => zeros(&[len], what)?,
    };
    Ok(Reused { buf, len })
}

impl std::ops::Deref for Reused {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Reused {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Reused {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            return;
        }
        // During thread teardown the pool may be gone: the buffer is then simply freed.
        let _ = REUSED.try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut() {
                pool.push(buf);
                if pool.len() > REUSED_BUFFERS {
                    let smallest = pool.iter().enumerate().min_by_key(|(_, b)| b.len()).map(|(i, _)| i);
                    if let Some(i) = smallest {
                        pool.swap_remove(i);
                    }
                }
            }
        });
    }
}
