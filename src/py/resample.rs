//! Bindings of the resampling kernels (`ops::resample`): up-sampling and resizing.

use pyo3::prelude::*;

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
