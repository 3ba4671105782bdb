//! Bindings of the convolution kernels (`ops::conv`, `ops::conv_pool`).

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::args::*;
use crate::error::OpError;
use crate::ops::conv::Conv2d;
use crate::ops::conv_pool::ConvReluMaxPool;
use crate::ops::geometry::Padding;

#[pyfunction]
#[pyo3(signature = (x, kernel, bias, strides, padding, activation=None))]
fn conv2d<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, bias: Option<&Bound<'py, PyAny>>,
               strides: &Bound<'py, PyAny>, padding: &str, activation: Option<&str>) -> PyResult<Array<'py>> {
    let op = "conv2d";
    let relu = fused_relu(op, activation)?;
    let strides = pair(op, "strides", strides)?;
    let (x, k) = (input(op, "x", x)?, input(op, "kernel", kernel)?);
    let conv = Conv2d::new(x.shape(), k.shape(), strides, Padding::parse(padding).map_err(shape_error(op))?)
        .map_err(shape_error(op))?;
    let bias = bias.map(|b| input(op, "bias", b)).transpose()?;
    if let Some(b) = &bias {
        check_shape(op, "bias", b.shape(), &[conv.cout])?;
    }
    let (xs, ks, bs) = (slice(&x), slice(&k), bias.as_ref().map(slice));
    let y = run(py, op, || conv.forward(xs, ks, bs, relu))?;
    output(py, y, &conv.output_shape())
}

#[pyfunction]
#[pyo3(signature = (x, kernel, grad_y, strides, padding, need_grad_x=true, relu_output=None))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn conv2d_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                        strides: &Bound<'py, PyAny>, padding: &str, need_grad_x: bool, relu_output: Option<&Bound<'py, PyAny>>)
                        -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "conv2d_backward";
    let strides = pair(op, "strides", strides)?;
    let (x, k, dy) = (input(op, "x", x)?, input(op, "kernel", kernel)?, input(op, "grad_y", grad_y)?);
    let conv = Conv2d::new(x.shape(), k.shape(), strides, Padding::parse(padding).map_err(shape_error(op))?)
        .map_err(shape_error(op))?;
    check_shape(op, "grad_y", dy.shape(), &conv.output_shape())?;
    let y = self::relu_output(op, relu_output, dy.shape())?;
    let (xs, ks, dys, ys) = (slice(&x), slice(&k), slice(&dy), y.as_ref().map(slice));
    let (dx, dk, db) = run(py, op, || conv.backward(xs, ks, dys, need_grad_x, ys))?;
    let dx = dx.map(|d| output(py, d, x.shape())).transpose()?;
    Ok((dx, output(py, dk, k.shape())?, output(py, db, &[conv.cout])?))
}

/// The fused conv + ReLU + max-pool geometry: the pooling applies to the convolution's output.
#[allow(clippy::too_many_arguments)]
fn conv_pool_geometry(op: &str, x: &[usize], kernel: &[usize], strides: &Bound<'_, PyAny>, padding: &str,
                      pool_size: &Bound<'_, PyAny>, pool_strides: &Bound<'_, PyAny>, pool_padding: &str) -> PyResult<ConvReluMaxPool> {
    let strides = pair(op, "strides", strides)?;
    let (pool_size, pool_strides) = (pair(op, "pool_size", pool_size)?, pair(op, "pool_strides", pool_strides)?);
    let padding = Padding::parse(padding).map_err(shape_error(op))?;
    let conv = Conv2d::new(x, kernel, strides, padding).map_err(shape_error(op))?;
    let pool_padding = Padding::parse(pool_padding).map_err(shape_error(op))?;
    ConvReluMaxPool::new(conv, pool_size, pool_strides, pool_padding).map_err(shape_error(op))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, bias, strides, padding, pool_size, pool_strides, pool_padding, winners=false))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn conv2d_relu_max_pool<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, bias: Option<&Bound<'py, PyAny>>,
                             strides: &Bound<'py, PyAny>, padding: &str, pool_size: &Bound<'py, PyAny>,
                             pool_strides: &Bound<'py, PyAny>, pool_padding: &str, winners: bool) -> PyResult<(Array<'py>, Option<Bound<'py, PyArrayDyn<u32>>>)> {
    let op = "conv2d_relu_max_pool";
    let (x, k) = (input(op, "x", x)?, input(op, "kernel", kernel)?);
    let fused = conv_pool_geometry(op, x.shape(), k.shape(), strides, padding, pool_size, pool_strides, pool_padding)?;
    let bias = bias.map(|b| input(op, "bias", b)).transpose()?;
    if let Some(b) = &bias {
        check_shape(op, "bias", b.shape(), &[fused.conv.cout])?;
    }
    let (xs, ks, bs) = (slice(&x), slice(&k), bias.as_ref().map(slice));
    let (y, at) = run(py, op, || fused.forward(xs, ks, bs, winners))?;
    let shape = fused.output_shape();
    let at = at.map(|a| output(py, a, &shape)).transpose()?;
    Ok((output(py, y, &shape)?, at))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, grad_y, winners, strides, padding, pool_size, pool_strides, pool_padding, need_grad_x=true))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn conv2d_relu_max_pool_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                                      winners: &Bound<'py, PyAny>, strides: &Bound<'py, PyAny>, padding: &str,
                                      pool_size: &Bound<'py, PyAny>, pool_strides: &Bound<'py, PyAny>, pool_padding: &str,
                                      need_grad_x: bool) -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "conv2d_relu_max_pool_backward";
    let (x, k, dy) = (input(op, "x", x)?, input(op, "kernel", kernel)?, input(op, "grad_y", grad_y)?);
    let fused = conv_pool_geometry(op, x.shape(), k.shape(), strides, padding, pool_size, pool_strides, pool_padding)?;
    check_shape(op, "grad_y", dy.shape(), &fused.output_shape())?;
    let at = winners.cast::<PyArrayDyn<u32>>().cloned().map_err(|_| py_err(op, OpError::Type(format!(
        "`winners` must be the uint32 array the forward returned, got {}", describe(winners)))))?;
    let at = aligned(at)?;
    let at = at.try_readonly().map_err(|e| py_err(op, OpError::Shape(format!("`winners` is in use: {e}"))))?;
    check_shape(op, "winners", at.shape(), &fused.output_shape())?;
    if !at.is_c_contiguous() {
        return Err(not_contiguous(op, "winners", at.shape()));
    }
    let ats = at.as_slice().map_err(|_| unusable(op, at.shape()))?;
    let (xs, ks, dys) = (slice(&x), slice(&k), slice(&dy));
    let (dx, dk, db) = run(py, op, || fused.backward(xs, ks, dys, ats, need_grad_x))?;
    let dx = dx.map(|d| output(py, d, x.shape())).transpose()?;
    Ok((dx, output(py, dk, k.shape())?, output(py, db, &[fused.conv.cout])?))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv2d, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_relu_max_pool, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_relu_max_pool_backward, m)?)?;
    Ok(())
}
