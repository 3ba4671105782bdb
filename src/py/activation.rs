//! Bindings of the activation kernels (`ops::activation`).

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;

use super::args::*;
use crate::ops::activation::Activation;

#[pyfunction]
fn activation<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kind: &str) -> PyResult<Array<'py>> {
    let x = input(kind, "x", x)?;
    let act = Activation::parse(kind).map_err(shape_error(kind))?;
    let (xs, shape) = (slice(&x), x.shape());
    let y = run(py, kind, || act.forward(xs, shape))?;
    output(py, y, shape)
}

#[pyfunction]
fn activation_backward<'py>(py: Python<'py>, saved: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>, kind: &str)
                            -> PyResult<Array<'py>> {
    let op = format!("{kind}_backward");
    let (s, dy) = (input(&op, "x", saved)?, input(&op, "grad_y", grad_y)?);
    check_shape(&op, "grad_y", dy.shape(), s.shape())?;
    let act = Activation::parse(kind).map_err(shape_error(&op))?;
    let (ss, dys, shape) = (slice(&s), slice(&dy), s.shape());
    let dx = run(py, &op, || act.backward(ss, dys, shape))?;
    output(py, dx, shape)
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(activation_backward, m)?)?;
    Ok(())
}
