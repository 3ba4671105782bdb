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
}
