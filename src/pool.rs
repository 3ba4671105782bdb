//! Fork safety for the kernels' thread pool.
//!
//! rayon's global pool lives in the process that created it: after `fork` the child inherits the pool's
//! bookkeeping but none of its threads, so the first parallel kernel would wait forever for workers that
//! do not exist (`multiprocessing` with the fork start method, `ImageDataGenerator` workers). As the
//! HuggingFace tokenizers bindings do, every kernel call checks the process id: in the process that owns
//! the global pool the kernel runs on it, in a forked child on a pool of its own, created on first use
//! (and again in a grandchild). The child's pool has the parent's thread count (RCONV_NUM_THREADS).
//! Every pool thread, and the calling thread for the length of a call, computes in the kernels'
//! floating-point mode (`fpmode.rs`).

use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{OpError, OpResult};
use crate::fpmode::KernelFpMode;

/// The process whose rayon global pool the kernels may use (set when the extension is imported).
static OWNER: OnceLock<u32> = OnceLock::new();
/// A forked child's own pool and the pid it was built in.
static CHILD: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// RCONV_NUM_THREADS, when set to a positive integer.
fn configured_threads() -> Option<usize> {
    std::env::var("RCONV_NUM_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0)
}

/// A pool of RCONV_NUM_THREADS threads (else one per core), all computing in the kernels' floating-point mode
/// for their whole life.
fn builder() -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new()
        .num_threads(configured_threads().unwrap_or(0))
        .start_handler(|_| std::mem::forget(KernelFpMode::enter()))
}

/// At import: start the global pool (RCONV_NUM_THREADS threads, else one per core), the importing thread (the
/// interpreter's main thread) being one of them, and record this process as its owner.
pub fn init() {
    crate::alloc::register_fork_handlers();
    // Fails only if a pool already exists, in which case that pool is kept.
    let _ = builder().use_current_thread().build_global();
    OWNER.get_or_init(std::process::id);
}

/// This process's own pool when it is a fork of the pool's owner; None in the owner itself.
fn forked_pool() -> OpResult<Option<Arc<rayon::ThreadPool>>> {
    let pid = std::process::id();
    if *OWNER.get_or_init(|| pid) == pid {
        return Ok(None);
    }
    let mut child = CHILD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, pool)) = child.as_ref().filter(|(owner, _)| *owner == pid) {
        return Ok(Some(Arc::clone(pool)));
    }
    // In a child of a child the inherited pool is as dead as the global one: it is forgotten, not dropped
    // (dropping would signal threads that do not exist here).
    if let Some(stale) = child.take() {
        std::mem::forget(stale);
    }
    let pool = builder()
        .build()
        .map_err(|e| OpError::Internal(format!("cannot start the kernel threads in a forked process: {e}")))?;
    let pool = Arc::new(pool);
    *child = Some((pid, Arc::clone(&pool)));
    Ok(Some(pool))
}

/// The pool of the kernels called from threads other than the one that imported rconv (a data pipeline's
/// producer thread): as many threads as the global pool, started on first use.
fn side_pool() -> OpResult<&'static rayon::ThreadPool> {
    static SIDE: OnceLock<rayon::ThreadPool> = OnceLock::new();
    if let Some(pool) = SIDE.get() {
        return Ok(pool);
    }
    let pool = builder()
        .build()
        .map_err(|e| OpError::Internal(format!("cannot start the kernel threads for another thread: {e}")))?;
    Ok(SIDE.get_or_init(|| pool))
}

/// Run `f` on the pool this process may use. The thread that imported rconv is itself a thread of the global
/// pool: its kernels start on it at once, the other threads joining as they wake (the calling thread neither
/// hands the work over nor sleeps until it is done, ~15 µs per kernel call on a 2-core VM). Any other thread's
/// kernels run on the side pool, so that a producer thread's work still gets every core while the main thread
/// waits in Python.
pub fn install<T: Send>(f: impl FnOnce() -> T + Send) -> OpResult<T> {
    let _mode = KernelFpMode::enter();
    Ok(match forked_pool()? {
        Some(pool) => pool.install(f),
        None if rayon::current_thread_index().is_some() => f(),
        None => side_pool()?.install(f),
    })
}

/// Threads the kernels run on in this process.
pub fn current_num_threads() -> usize {
    install(rayon::current_num_threads).unwrap_or(1)
}
