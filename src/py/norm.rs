//! Bindings of the normalization kernels (`ops::norm`): batch and layer normalization over the last axis, group
//! normalization over groups of the last axis.

use numpy::{PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::args::{check_shape, input, output, run, shape_error, slice, Array};
use crate::ops;
use crate::ops::norm::{Groups, Rows};

/// A per-channel vector argument (shape `(cols,)`), when given.
fn channel_vec<'py>(op: &str, name: &str, obj: Option<&Bound<'py, PyAny>>, cols: usize)
                    -> PyResult<Option<PyReadonlyArrayDyn<'py, f32>>> {
    let v = obj.map(|o| input(op, name, o)).transpose()?;
    if let Some(v) = &v {
        check_shape(op, name, v.shape(), &[cols])?;
    }
    Ok(v)
}

/// Batch normalization over the last axis: (y, mean, variance). Without `mean`/`variance` the batch's
/// own statistics (biased variance) are computed and returned; with them (inference) they are used as given.
#[pyfunction]
#[pyo3(signature = (x, gamma, beta, mean=None, variance=None, epsilon=1e-3))]
#[allow(clippy::type_complexity)]
pub(crate) fn batch_norm<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, gamma: Option<&Bound<'py, PyAny>>,
                   beta: Option<&Bound<'py, PyAny>>, mean: Option<&Bound<'py, PyAny>>,
                   variance: Option<&Bound<'py, PyAny>>, epsilon: f32) -> PyResult<(Array<'py>, Array<'py>, Array<'py>)> {
    let op = "batch_norm";
    let x = input(op, "x", x)?;
    let rows = Rows::new(x.shape()).map_err(shape_error(op))?;
    let (g, b) = (channel_vec(op, "gamma", gamma, rows.cols)?, channel_vec(op, "beta", beta, rows.cols)?);
    let (m, v) = (channel_vec(op, "mean", mean, rows.cols)?, channel_vec(op, "variance", variance, rows.cols)?);
    if m.is_some() != v.is_some() {
        return Err(PyValueError::new_err(format!("{op}: give both `mean` and `variance` or neither")));
    }
    let (xs, gs, bs) = (slice(&x), g.as_ref().map(slice), b.as_ref().map(slice));
    let (ms, vs) = (m.as_ref().map(slice), v.as_ref().map(slice));
    let (y, mean, var) = run(py, op, || {
        let (mean, var) = match (ms, vs) {
            (Some(m), Some(v)) => (m.to_vec(), v.to_vec()),
            _ => ops::norm::channel_moments(xs, rows),
        };
        Ok((ops::norm::batch_norm_forward(xs, rows, gs, bs, &mean, &var, epsilon)?, mean, var))
    })?;
    Ok((output(py, y, x.shape())?, output(py, mean, &[rows.cols])?, output(py, var, &[rows.cols])?))
}

/// Gradients of `batch_norm`: (grad_x if asked, grad_gamma, grad_beta); `batch_stats` says whether `mean` and
/// `variance` were the batch's own (training) or constants (inference).
#[pyfunction]
#[pyo3(signature = (x, grad_y, gamma, mean, variance, epsilon, batch_stats, need_grad_x=true))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                            gamma: Option<&Bound<'py, PyAny>>, mean: &Bound<'py, PyAny>, variance: &Bound<'py, PyAny>,
                            epsilon: f32, batch_stats: bool, need_grad_x: bool)
                            -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "batch_norm_backward";
    let (x, dy) = (input(op, "x", x)?, input(op, "grad_y", grad_y)?);
    check_shape(op, "grad_y", dy.shape(), x.shape())?;
    let rows = Rows::new(x.shape()).map_err(shape_error(op))?;
    let g = channel_vec(op, "gamma", gamma, rows.cols)?;
    let (m, v) = (channel_vec(op, "mean", Some(mean), rows.cols)?, channel_vec(op, "variance", Some(variance), rows.cols)?);
    let (xs, dys, gs) = (slice(&x), slice(&dy), g.as_ref().map(slice));
    let (ms, vs) = (m.as_ref().map(slice).unwrap_or_default(), v.as_ref().map(slice).unwrap_or_default());
    let (dx, dg, db) = run(py, op, || {
        ops::norm::batch_norm_backward(xs, dys, rows, gs, ms, vs, epsilon, batch_stats, need_grad_x)
    })?;
    let dx = dx.map(|d| output(py, d, x.shape())).transpose()?;
    Ok((dx, output(py, dg, &[rows.cols])?, output(py, db, &[rows.cols])?))
}

/// Layer normalization over the last axis: (y, mean, inv_std), the last two one value per row (for the backward).
#[pyfunction]
#[pyo3(signature = (x, gamma, beta, epsilon=1e-3))]
#[allow(clippy::type_complexity)]
pub(crate) fn layer_norm<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, gamma: Option<&Bound<'py, PyAny>>,
                   beta: Option<&Bound<'py, PyAny>>, epsilon: f32) -> PyResult<(Array<'py>, Array<'py>, Array<'py>)> {
    let op = "layer_norm";
    let x = input(op, "x", x)?;
    let rows = Rows::new(x.shape()).map_err(shape_error(op))?;
    let (g, b) = (channel_vec(op, "gamma", gamma, rows.cols)?, channel_vec(op, "beta", beta, rows.cols)?);
    let (xs, gs, bs) = (slice(&x), g.as_ref().map(slice), b.as_ref().map(slice));
    let (y, mean, inv) = run(py, op, || ops::norm::layer_norm_forward(xs, rows, gs, bs, epsilon))?;
    Ok((output(py, y, x.shape())?, output(py, mean, &[rows.rows])?, output(py, inv, &[rows.rows])?))
}

/// Gradients of `layer_norm` given its per-row `mean` and `inv_std`: (grad_x if asked, grad_gamma, grad_beta).
#[pyfunction]
#[pyo3(signature = (x, grad_y, gamma, mean, inv_std, need_grad_x=true))]
#[allow(clippy::type_complexity)]
pub(crate) fn layer_norm_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                            gamma: Option<&Bound<'py, PyAny>>, mean: &Bound<'py, PyAny>, inv_std: &Bound<'py, PyAny>,
                            need_grad_x: bool) -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "layer_norm_backward";
    let (x, dy) = (input(op, "x", x)?, input(op, "grad_y", grad_y)?);
    check_shape(op, "grad_y", dy.shape(), x.shape())?;
    let rows = Rows::new(x.shape()).map_err(shape_error(op))?;
    let g = channel_vec(op, "gamma", gamma, rows.cols)?;
    let (m, s) = (input(op, "mean", mean)?, input(op, "inv_std", inv_std)?);
    check_shape(op, "mean", m.shape(), &[rows.rows])?;
    check_shape(op, "inv_std", s.shape(), &[rows.rows])?;
    let (xs, dys, gs, ms, ss) = (slice(&x), slice(&dy), g.as_ref().map(slice), slice(&m), slice(&s));
    let (dx, dg, db) = run(py, op, || ops::norm::layer_norm_backward(xs, dys, rows, gs, ms, ss, need_grad_x))?;
    let dx = dx.map(|d| output(py, d, x.shape())).transpose()?;
    Ok((dx, output(py, dg, &[rows.cols])?, output(py, db, &[rows.cols])?))
}

/// Group normalization of `x` (samples, ..., channels) with `groups` groups of the last axis: (y, mean, inv_std),
/// the last two shaped (samples, groups), for the backward.
#[pyfunction]
#[pyo3(signature = (x, gamma, beta, groups, epsilon=1e-3))]
#[allow(clippy::type_complexity)]
pub(crate) fn group_norm<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, gamma: Option<&Bound<'py, PyAny>>,
                              beta: Option<&Bound<'py, PyAny>>, groups: usize, epsilon: f32)
                              -> PyResult<(Array<'py>, Array<'py>, Array<'py>)> {
    let op = "group_norm";
    let x = input(op, "x", x)?;
    let shape = Groups::new(x.shape(), groups).map_err(shape_error(op))?;
    let (g, b) = (channel_vec(op, "gamma", gamma, shape.channels)?, channel_vec(op, "beta", beta, shape.channels)?);
    let (xs, gs, bs) = (slice(&x), g.as_ref().map(slice), b.as_ref().map(slice));
    let (y, mean, inv) = run(py, op, || ops::norm::group_norm_forward(xs, shape, gs, bs, epsilon))?;
    let stats = [shape.samples, groups];
    Ok((output(py, y, x.shape())?, output(py, mean, &stats)?, output(py, inv, &stats)?))
}

/// Gradients of `group_norm` given its `mean` and `inv_std` (samples, groups): (grad_x if asked, grad_gamma,
/// grad_beta).
#[pyfunction]
#[pyo3(signature = (x, grad_y, gamma, mean, inv_std, groups, need_grad_x=true))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub(crate) fn group_norm_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                                       gamma: Option<&Bound<'py, PyAny>>, mean: &Bound<'py, PyAny>,
                                       inv_std: &Bound<'py, PyAny>, groups: usize, need_grad_x: bool)
                                       -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "group_norm_backward";
    let (x, dy) = (input(op, "x", x)?, input(op, "grad_y", grad_y)?);
    check_shape(op, "grad_y", dy.shape(), x.shape())?;
    let shape = Groups::new(x.shape(), groups).map_err(shape_error(op))?;
    let g = channel_vec(op, "gamma", gamma, shape.channels)?;
    let (m, s) = (input(op, "mean", mean)?, input(op, "inv_std", inv_std)?);
    check_shape(op, "mean", m.shape(), &[shape.samples, groups])?;
    check_shape(op, "inv_std", s.shape(), &[shape.samples, groups])?;
    let (xs, dys, gs, ms, ss) = (slice(&x), slice(&dy), g.as_ref().map(slice), slice(&m), slice(&s));
    let (dx, dg, db) = run(py, op, || ops::norm::group_norm_backward(xs, dys, shape, gs, ms, ss, need_grad_x))?;
    let dx = dx.map(|d| output(py, d, x.shape())).transpose()?;
    Ok((dx, output(py, dg, &[shape.channels])?, output(py, db, &[shape.channels])?))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(batch_norm, m)?)?;
    m.add_function(wrap_pyfunction!(batch_norm_backward, m)?)?;
    m.add_function(wrap_pyfunction!(layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(layer_norm_backward, m)?)?;
    m.add_function(wrap_pyfunction!(group_norm, m)?)?;
    m.add_function(wrap_pyfunction!(group_norm_backward, m)?)?;
    Ok(())
}
