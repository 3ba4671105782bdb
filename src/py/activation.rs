//! Bindings of the activation kernels (`ops::activation`).

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;

use super::args::*;
use crate::ops::activation::{Activation, Prelu};

/// `kind` with its parameters, as a Python error naming `op` when it is unknown or over-specified.
fn activation_of(op: &str, kind: &str, params: &[f32], axis: isize) -> PyResult<Activation> {
    Activation::new(kind, params, axis).map_err(shape_error(op))
}

fn forward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kind: &str, params: &[f32], axis: isize)
                -> PyResult<Array<'py>> {
    let x = input(kind, "x", x)?;
    let act = activation_of(kind, kind, params, axis)?;
    let (xs, shape) = (slice(&x), x.shape());
    let y = run(py, kind, || act.forward(xs, shape))?;
    output(py, y, shape)
}

fn backward<'py>(py: Python<'py>, saved: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>, kind: &str,
                 params: &[f32], axis: isize) -> PyResult<Array<'py>> {
    let op = format!("{kind}_backward");
    let (s, dy) = (input(&op, "x", saved)?, input(&op, "grad_y", grad_y)?);
    check_shape(&op, "grad_y", dy.shape(), s.shape())?;
    let act = activation_of(&op, kind, params, axis)?;
    let (ss, dys, shape) = (slice(&s), slice(&dy), s.shape());
    let dx = run(py, &op, || act.backward(ss, dys, shape))?;
    output(py, dx, shape)
}

/// The first bindings take only the activations kernels also fuse or pair with losses; every other kind
/// (and parameters) goes through `activation_with`.
fn legacy_kind<'a>(op: &str, kind: &'a str) -> PyResult<&'a str> {
    match kind {
        "relu" | "sigmoid" | "softmax" => Ok(kind),
        other => Err(py_err(op, crate::error::OpError::Shape(format!(
            "unknown activation '{other}' (expected relu, sigmoid or softmax; activation_with takes the others)")))),
    }
}

#[pyfunction]
fn activation<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kind: &str) -> PyResult<Array<'py>> {
    forward(py, x, legacy_kind(kind, kind)?, &[], -1)
}

#[pyfunction]
fn activation_backward<'py>(py: Python<'py>, saved: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>, kind: &str)
                            -> PyResult<Array<'py>> {
    backward(py, saved, grad_y, legacy_kind(&format!("{kind}_backward"), kind)?, &[], -1)
}

/// `kind` with parameters (see `Activation::new`) and, for softmax/log_softmax, an axis.
#[pyfunction]
#[pyo3(signature = (x, kind, params=Vec::new(), axis=-1))]
fn activation_with<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kind: &str, params: Vec<f32>, axis: isize)
                        -> PyResult<Array<'py>> {
    forward(py, x, kind, &params, axis)
}

#[pyfunction]
#[pyo3(signature = (saved, grad_y, kind, params=Vec::new(), axis=-1))]
fn activation_with_backward<'py>(py: Python<'py>, saved: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                                 kind: &str, params: Vec<f32>, axis: isize) -> PyResult<Array<'py>> {
    backward(py, saved, grad_y, kind, &params, axis)
}

/// Whether the backward of `kind` (with `params`) wants the input (True) or the output (False).
#[pyfunction]
#[pyo3(signature = (kind, params=Vec::new()))]
fn activation_saves_input(kind: &str, params: Vec<f32>) -> PyResult<bool> {
    Ok(activation_of(kind, kind, &params, -1)?.saves_input())
}

#[pyfunction]
fn prelu<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, alpha: &Bound<'py, PyAny>) -> PyResult<Array<'py>> {
    let op = "prelu";
    let (x, a) = (input(op, "x", x)?, input(op, "alpha", alpha)?);
    let p = Prelu::new(x.shape(), a.shape()).map_err(shape_error(op))?;
    let (xs, al) = (slice(&x), slice(&a));
    let y = run(py, op, || p.forward(xs, al))?;
    output(py, y, x.shape())
}

#[pyfunction]
fn prelu_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, alpha: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>)
                       -> PyResult<(Array<'py>, Array<'py>)> {
    let op = "prelu_backward";
    let (x, a, dy) = (input(op, "x", x)?, input(op, "alpha", alpha)?, input(op, "grad_y", grad_y)?);
    check_shape(op, "grad_y", dy.shape(), x.shape())?;
    let p = Prelu::new(x.shape(), a.shape()).map_err(shape_error(op))?;
    let (xs, al, dys) = (slice(&x), slice(&a), slice(&dy));
    let (dx, da) = run(py, op, || p.backward(xs, al, dys))?;
    Ok((output(py, dx, x.shape())?, output(py, da, a.shape())?))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(activation_backward, m)?)?;
    m.add_function(wrap_pyfunction!(activation_with, m)?)?;
    m.add_function(wrap_pyfunction!(activation_with_backward, m)?)?;
    m.add_function(wrap_pyfunction!(activation_saves_input, m)?)?;
    m.add_function(wrap_pyfunction!(prelu, m)?)?;
    m.add_function(wrap_pyfunction!(prelu_backward, m)?)?;
    Ok(())
}
