//! Bindings of the GEMM compute precision (`ops::gemm::set_compute_precision`): the mixed-precision
//! policies set it per layer around the layer's kernels.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::ops::gemm::{self, Precision};

/// Sets the compute precision of every GEMM-based kernel (dense, convolution) called from now on, in
/// every thread, until set again: "float32", or "bfloat16" (operands rounded to bfloat16, float32 sums).
#[pyfunction]
fn set_compute_precision(name: &str) -> PyResult<()> {
    let precision = match name {
        "float32" => Precision::Float32,
        "bfloat16" => Precision::BFloat16,
        _ => return Err(PyValueError::new_err(format!(
            "set_compute_precision: unknown precision {name:?}; expected \"float32\" or \"bfloat16\""))),
    };
    gemm::set_compute_precision(precision);
    Ok(())
}

/// The compute precision the GEMM-based kernels use now: "float32" or "bfloat16".
#[pyfunction]
fn compute_precision() -> &'static str {
    match gemm::compute_precision() {
        Precision::Float32 => "float32",
        Precision::BFloat16 => "bfloat16",
    }
}

/// The back end of the bfloat16 GEMMs on this machine: "amx", "avx512bf16" or "portable".
#[pyfunction]
fn bf16_kernel() -> &'static str {
    crate::ops::bf16::kernel_name()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_compute_precision, m)?)?;
    m.add_function(wrap_pyfunction!(compute_precision, m)?)?;
    m.add_function(wrap_pyfunction!(bf16_kernel, m)?)?;
    Ok(())
}
