//! Bindings of the optimizer updates (`ops::optim`).

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;

use super::args::*;
use crate::ops;

#[pyfunction]
#[pyo3(signature = (param, grad, momentum_buf, learning_rate, momentum, nesterov))]
fn sgd_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, momentum_buf: Option<&Bound<'_, PyAny>>,
              learning_rate: f32, momentum: f32, nesterov: bool) -> PyResult<()> {
    let op = "sgd_update";
    let mut p = in_out(op, "param", param)?;
    let g = input(op, "grad", grad)?;
    let mut m = momentum_buf.map(|m| in_out(op, "momentum_buf", m)).transpose()?;
    check_shape(op, "grad", g.shape(), p.shape())?;
    if let Some(m) = &m {
        check_shape(op, "momentum_buf", m.shape(), p.shape())?;
    }
    let (ps, gs) = (slice_mut(op, &mut p)?, slice(&g));
    let ms = m.as_mut().map(|m| slice_mut(op, m)).transpose()?;
    run(py, op, || ops::optim::sgd(ps, gs, ms, learning_rate, momentum, nesterov))
}

#[pyfunction]
fn rmsprop_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, velocity: &Bound<'_, PyAny>,
                  learning_rate: f32, rho: f32, epsilon: f32) -> PyResult<()> {
    let op = "rmsprop_update";
    let (mut p, g, mut v) = (in_out(op, "param", param)?, input(op, "grad", grad)?, in_out(op, "velocity", velocity)?);
    check_shape(op, "grad", g.shape(), p.shape())?;
    check_shape(op, "velocity", v.shape(), p.shape())?;
    let (ps, gs, vs) = (slice_mut(op, &mut p)?, slice(&g), slice_mut(op, &mut v)?);
    run(py, op, || ops::optim::rmsprop(ps, gs, vs, learning_rate, rho, epsilon))
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn adam_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, m: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>,
               learning_rate: f32, beta_1: f32, beta_2: f32, epsilon: f32, step: &Bound<'_, PyAny>) -> PyResult<()> {
    let op = "adam_update";
    let step = int_arg::<u64>(op, "step", "an int", step)?;
    let (mut p, g) = (in_out(op, "param", param)?, input(op, "grad", grad)?);
    let (mut m, mut v) = (in_out(op, "m", m)?, in_out(op, "v", v)?);
    for (name, shape) in [("grad", g.shape()), ("m", m.shape()), ("v", v.shape())] {
        check_shape(op, name, shape, p.shape())?;
    }
    let (ps, gs) = (slice_mut(op, &mut p)?, slice(&g));
    let (ms, vs) = (slice_mut(op, &mut m)?, slice_mut(op, &mut v)?);
    run(py, op, || ops::optim::adam(ps, gs, ms, vs, learning_rate, beta_1, beta_2, epsilon, step))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sgd_update, m)?)?;
    m.add_function(wrap_pyfunction!(rmsprop_update, m)?)?;
    m.add_function(wrap_pyfunction!(adam_update, m)?)?;
    Ok(())
}
