//! Bindings of the loss kernels (`ops::loss`).

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::args::*;
use crate::error::OpError;
use crate::ops;
use crate::ops::loss::{Labels, LossKind};

#[pyfunction]
fn loss<'py>(py: Python<'py>, pred: &Bound<'py, PyAny>, labels: &Bound<'py, PyAny>, kind: &str) -> PyResult<(f32, Array<'py>)> {
    let op = kind;
    let p = input(op, "predictions", pred)?;
    let kind = LossKind::parse(kind).map_err(shape_error(op))?;
    // Class ids arrive as a rank-1 int64 array; everything else as float32 shaped like the predictions.
    let ids = match labels.cast::<PyArrayDyn<i64>>() {
        Ok(a) => Some(aligned(a.clone())?.try_readonly().map_err(|e| py_err(op, OpError::Shape(format!("`labels` is in use: {e}"))))?),
        Err(_) => None,
    };
    let dense = if ids.is_none() { Some(input(op, "labels", labels)?) } else { None };
    let target = match (&ids, &dense) {
        (Some(a), _) if a.ndim() != 1 => {
            return Err(py_err(op, OpError::Shape(format!(
                "integer labels must have rank 1 (one class id per sample), got {}", describe(labels)))));
        }
        (Some(a), _) => Labels::Ids(a.as_slice().map_err(|_| not_contiguous(op, "labels", a.shape()))?),
        (None, Some(d)) => Labels::Dense(slice(d), d.shape()),
        (None, None) => return Err(py_err(op, OpError::Internal("labels are neither class ids nor an array".into()))),
    };
    let (ps, shape) = (slice(&p), p.shape());
    let (value, grad) = run(py, op, || ops::loss::loss(kind, ps, shape, target))?;
    Ok((value, output(py, grad, shape)?))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(loss, m)?)?;
    Ok(())
}
