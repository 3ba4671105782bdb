//! Bindings of the dense kernels (`ops::dense`).

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;

use super::args::*;
use crate::ops::dense::Dense;

#[pyfunction]
#[pyo3(signature = (x, kernel, bias, activation=None))]
fn dense<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, bias: Option<&Bound<'py, PyAny>>,
              activation: Option<&str>) -> PyResult<Array<'py>> {
    let op = "dense";
    let relu = fused_relu(op, activation)?;
    let (x, k) = (input(op, "x", x)?, input(op, "kernel", kernel)?);
    let layer = Dense::new(x.shape(), k.shape()).map_err(shape_error(op))?;
    let bias = bias.map(|b| input(op, "bias", b)).transpose()?;
    if let Some(b) = &bias {
        check_shape(op, "bias", b.shape(), &[layer.units])?;
    }
    let (xs, ks, bs) = (slice(&x), slice(&k), bias.as_ref().map(slice));
    let y = run(py, op, || layer.forward(xs, ks, bs, relu))?;
    output(py, y, &[layer.batch, layer.units])
}

#[pyfunction]
#[pyo3(signature = (x, kernel, grad_y, need_grad_x=true, relu_output=None))]
#[allow(clippy::type_complexity)]
fn dense_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                       need_grad_x: bool, relu_output: Option<&Bound<'py, PyAny>>)
                       -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "dense_backward";
    let (x, k, dy) = (input(op, "x", x)?, input(op, "kernel", kernel)?, input(op, "grad_y", grad_y)?);
    let layer = Dense::new(x.shape(), k.shape()).map_err(shape_error(op))?;
    check_shape(op, "grad_y", dy.shape(), &[layer.batch, layer.units])?;
    let y = self::relu_output(op, relu_output, dy.shape())?;
    let (xs, ks, dys, ys) = (slice(&x), slice(&k), slice(&dy), y.as_ref().map(slice));
    let (dx, dk, db) = run(py, op, || layer.backward(xs, ks, dys, need_grad_x, ys))?;
    let dx = dx.map(|d| output(py, d, x.shape())).transpose()?;
    Ok((dx, output(py, dk, k.shape())?, output(py, db, &[layer.units])?))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(dense, m)?)?;
    m.add_function(wrap_pyfunction!(dense_backward, m)?)?;
    Ok(())
}
