//! `rconv._rconv`: thin PyO3 bindings over the kernels in `ops`. Each function checks dtypes and
//! shapes, borrows the NumPy buffers without copying, releases the GIL around the kernel, and maps
//! errors once: dtype problems to TypeError, shape problems to ValueError, allocation failures to
//! MemoryError, a panic to RuntimeError. The shared argument/error/run helpers are in `py::args`;
//! the bindings themselves are grouped by kernel family in `py::<family>`; this file registers them.

mod alloc;
mod error;
pub mod ops;
mod fpmode;
mod pool;
mod py;

/// Reuses freed activation-sized blocks across steps instead of re-faulting fresh pages (see alloc.rs).
#[global_allocator]
static ALLOCATOR: alloc::ReusingAllocator = alloc::ReusingAllocator;

use pyo3::prelude::*;

/// Threads the kernels run on (RCONV_NUM_THREADS, default: all cores).
#[pyfunction]
fn num_threads() -> usize {
    pool::current_num_threads()
}

#[pymodule]
fn _rconv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pool::init();
    py::conv::register(m)?;
    py::pool::register(m)?;
    py::dense::register(m)?;
    py::activation::register(m)?;
    py::loss::register(m)?;
    py::optim::register(m)?;
    py::augment::register(m)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    py::norm::register(m)?;
    py::resample::register(m)?;
    py::precision::register(m)?;
    Ok(())
}
