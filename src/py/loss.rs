//! Bindings of the loss kernels (`ops::loss`).

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::args::*;
use crate::error::OpError;
use crate::ops;
use crate::ops::loss::{Labels, LossKind, RowLoss};
use std::collections::HashMap;

/// Class ids (a rank-`rank` int64 array) or float32 targets: the borrowed views behind a `Labels`.
type Targets<'py> = (Option<numpy::PyReadonlyArrayDyn<'py, i64>>, Option<numpy::PyReadonlyArrayDyn<'py, f32>>);

fn targets<'py>(op: &str, labels: &Bound<'py, PyAny>, id_rank: usize) -> PyResult<Targets<'py>> {
    match labels.cast::<PyArrayDyn<i64>>() {
        Ok(a) => {
            let ids = aligned(a.clone())?.try_readonly().map_err(|e| py_err(op, OpError::Shape(format!("`labels` is in use: {e}"))))?;
            if ids.ndim() != id_rank {
                return Err(py_err(op, OpError::Shape(format!(
                    "integer labels must have rank {id_rank} (one class id per row of the predictions), got {}", describe(labels)))));
            }
            Ok((Some(ids), None))
        }
        Err(_) => Ok((None, Some(input(op, "labels", labels)?))),
    }
}

fn as_labels<'a>(op: &str, t: &'a Targets<'_>) -> PyResult<Labels<'a>> {
    match t {
        (Some(a), _) => Ok(Labels::Ids(a.as_slice().map_err(|_| not_contiguous(op, "labels", a.shape()))?)),
        (None, Some(d)) => Ok(Labels::Dense(slice(d), d.shape())),
        (None, None) => Err(py_err(op, OpError::Internal("labels are neither class ids nor an array".into()))),
    }
}

#[pyfunction]
fn loss<'py>(py: Python<'py>, pred: &Bound<'py, PyAny>, labels: &Bound<'py, PyAny>, kind: &str) -> PyResult<(f32, Array<'py>)> {
    let op = kind;
    let p = input(op, "predictions", pred)?;
    let kind = LossKind::parse(kind).map_err(shape_error(op))?;
    // Class ids arrive as a rank-1 int64 array; everything else as float32 shaped like the predictions.
    let t = targets(op, labels, 1)?;
    let target = as_labels(op, &t)?;
    let (ps, shape) = (slice(&p), p.shape());
    let (value, grad) = run(py, op, || ops::loss::loss(kind, ps, shape, target))?;
    Ok((value, output(py, grad, shape)?))
}

/// Any loss over the last axis of `pred`: (Σ_r coef_r L_r, the per-row values L_r shaped `pred.shape[:-1]`,
/// the gradient of that sum). `coef`: one float32 per row, or one for all; `params`: the loss's Keras
/// parameters by name (booleans as 0/1, `ignore_class` when set).
#[pyfunction]
#[pyo3(signature = (pred, labels, kind, coef, params=None))]
fn row_loss<'py>(py: Python<'py>, pred: &Bound<'py, PyAny>, labels: &Bound<'py, PyAny>, kind: &str,
                 coef: &Bound<'py, PyAny>, params: Option<HashMap<String, f64>>) -> PyResult<(f64, Array<'py>, Array<'py>)> {
    let op = kind;
    let p = input(op, "predictions", pred)?;
    let params = params.unwrap_or_default();
    let rl = RowLoss::parse(kind, |name, default| params.get(name).copied().unwrap_or(default)).map_err(shape_error(op))?;
    let shape = p.shape().to_vec();
    if shape.is_empty() {
        return Err(py_err(op, OpError::Shape("predictions must have at least one axis (the one the loss reduces)".into())));
    }
    let t = targets(op, labels, shape.len() - 1)?;
    let target = as_labels(op, &t)?;
    let c = input(op, "coef", coef)?;
    let (ps, cs) = (slice(&p), slice(&c));
    let out = run(py, op, || ops::loss::row_loss(rl, ps, &shape, target, cs))?;
    Ok((out.total, output(py, out.values, &shape[..shape.len() - 1])?, output(py, out.grad, &shape)?))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(loss, m)?)?;
    m.add_function(wrap_pyfunction!(row_loss, m)?)?;
    Ok(())
}
