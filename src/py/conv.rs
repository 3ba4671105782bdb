//! Bindings of the convolution kernels (`ops::conv`, `ops::conv_pool`, `ops::depthwise`, `ops::conv_transpose`).

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::args::*;
use crate::error::{OpError, OpResult};
use crate::ops::LinearGrads;
use crate::ops::conv::grouped::GroupedConv;
use crate::ops::conv::{winograd, Conv2d};
use crate::ops::conv_transpose::ConvTranspose;
use crate::ops::depthwise::Depthwise;
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

/// Turns Winograd convolution for 3×3 stride-1 layers on or off (`tile` 0: chosen per shape; 2 or 4:
/// F(2×2,3×3) or F(4×4,3×3) wherever it applies).
#[pyfunction]
#[pyo3(signature = (enabled, tile=0))]
fn set_winograd(enabled: bool, tile: usize) -> PyResult<()> {
    let mode = match (enabled, tile) {
        (false, _) => 0,
        (true, 0) => 1,
        (true, 2 | 4) => tile as u8,
        _ => return Err(pyo3::exceptions::PyValueError::new_err(format!("set_winograd: tile must be 0, 2 or 4, got {tile}"))),
    };
    winograd::set_mode(mode);
    Ok(())
}

#[pyfunction]
fn winograd_enabled() -> bool {
    winograd::mode() != 0
}

/// The Winograd tile size m a convolution of these shapes runs with now (0: the direct path).
#[pyfunction]
fn winograd_tile(input_shape: Vec<usize>, kernel_shape: Vec<usize>, strides: &Bound<'_, PyAny>, padding: &str) -> PyResult<usize> {
    let op = "winograd_tile";
    let strides = pair(op, "strides", strides)?;
    let conv = Conv2d::new(&input_shape, &kernel_shape, strides, Padding::parse(padding).map_err(shape_error(op))?)
        .map_err(shape_error(op))?;
    Ok(conv.winograd().map_or(0, |w| w.tile()))
}

/// The kernels with the dilation-aware geometry: one forward and one backward binding shape for all.
trait Linear: Sync {
    fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>) -> OpResult<Vec<f32>>;
    fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads>;
    fn output_shape(&self) -> [usize; 4];
}

macro_rules! linear {
    ($($t:ty),*) => {$(
        impl Linear for $t {
            fn forward(&self, x: &[f32], kernel: &[f32], bias: Option<&[f32]>) -> OpResult<Vec<f32>> { <$t>::forward(self, x, kernel, bias) }
            fn backward(&self, x: &[f32], kernel: &[f32], dy: &[f32], need_dx: bool) -> OpResult<LinearGrads> {
                <$t>::backward(self, x, kernel, dy, need_dx)
            }
            fn output_shape(&self) -> [usize; 4] { <$t>::output_shape(self) }
        }
    )*};
}
linear!(GroupedConv, Depthwise, ConvTranspose);

/// Forward binding body: geometry from the argument shapes, the bias checked against the output channels.
fn linear_forward<'py, L: Linear>(py: Python<'py>, op: &str, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>,
                                  bias: Option<&Bound<'py, PyAny>>, geometry: impl FnOnce(&[usize], &[usize]) -> OpResult<L>)
                                  -> PyResult<Array<'py>> {
    let (x, k) = (input(op, "x", x)?, input(op, "kernel", kernel)?);
    let lin = geometry(x.shape(), k.shape()).map_err(shape_error(op))?;
    let shape = lin.output_shape();
    let bias = bias.map(|b| input(op, "bias", b)).transpose()?;
    if let Some(b) = &bias {
        check_shape(op, "bias", b.shape(), &shape[3..])?;
    }
    let (xs, ks, bs) = (slice(&x), slice(&k), bias.as_ref().map(slice));
    let y = run(py, op, || lin.forward(xs, ks, bs))?;
    output(py, y, &shape)
}

/// Backward binding body: (grad_x or None, grad_kernel, grad_bias).
#[allow(clippy::type_complexity)]
fn linear_backward<'py, L: Linear>(py: Python<'py>, op: &str, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>,
                                   grad_y: &Bound<'py, PyAny>, need_grad_x: bool,
                                   geometry: impl FnOnce(&[usize], &[usize], &[usize]) -> OpResult<L>)
                                   -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let (x, k, dy) = (input(op, "x", x)?, input(op, "kernel", kernel)?, input(op, "grad_y", grad_y)?);
    let lin = geometry(x.shape(), k.shape(), dy.shape()).map_err(shape_error(op))?;
    let shape = lin.output_shape();
    check_shape(op, "grad_y", dy.shape(), &shape)?;
    let (xs, ks, dys) = (slice(&x), slice(&k), slice(&dy));
    let (dx, dk, db) = run(py, op, || lin.backward(xs, ks, dys, need_grad_x))?;
    let dx = dx.map(|d| output(py, d, x.shape())).transpose()?;
    Ok((dx, output(py, dk, k.shape())?, output(py, db, &shape[3..])?))
}

fn padding_arg(op: &str, padding: &str) -> PyResult<Padding> {
    Padding::parse(padding).map_err(shape_error(op))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, bias, strides, padding, dilation_rate, groups))]
#[allow(clippy::too_many_arguments)]
fn conv2d_general<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, bias: Option<&Bound<'py, PyAny>>,
                       strides: &Bound<'py, PyAny>, padding: &str, dilation_rate: &Bound<'py, PyAny>, groups: usize)
                       -> PyResult<Array<'py>> {
    let op = "conv2d";
    let (s, d, p) = (pair(op, "strides", strides)?, pair(op, "dilation_rate", dilation_rate)?, padding_arg(op, padding)?);
    linear_forward(py, op, x, kernel, bias, |x, k| GroupedConv::new(x, k, s, p, d, groups))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, grad_y, strides, padding, dilation_rate, groups, need_grad_x=true))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn conv2d_general_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                                strides: &Bound<'py, PyAny>, padding: &str, dilation_rate: &Bound<'py, PyAny>, groups: usize,
                                need_grad_x: bool) -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "conv2d_backward";
    let (s, d, p) = (pair(op, "strides", strides)?, pair(op, "dilation_rate", dilation_rate)?, padding_arg(op, padding)?);
    linear_backward(py, op, x, kernel, grad_y, need_grad_x, |x, k, _| GroupedConv::new(x, k, s, p, d, groups))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, bias, strides, padding, dilation_rate))]
fn depthwise_conv2d<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, bias: Option<&Bound<'py, PyAny>>,
                         strides: &Bound<'py, PyAny>, padding: &str, dilation_rate: &Bound<'py, PyAny>) -> PyResult<Array<'py>> {
    let op = "depthwise_conv2d";
    let (s, d, p) = (pair(op, "strides", strides)?, pair(op, "dilation_rate", dilation_rate)?, padding_arg(op, padding)?);
    linear_forward(py, op, x, kernel, bias, |x, k| Depthwise::new(x, k, s, p, d))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, grad_y, strides, padding, dilation_rate, need_grad_x=true))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn depthwise_conv2d_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                                  strides: &Bound<'py, PyAny>, padding: &str, dilation_rate: &Bound<'py, PyAny>,
                                  need_grad_x: bool) -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "depthwise_conv2d_backward";
    let (s, d, p) = (pair(op, "strides", strides)?, pair(op, "dilation_rate", dilation_rate)?, padding_arg(op, padding)?);
    linear_backward(py, op, x, kernel, grad_y, need_grad_x, |x, k, _| Depthwise::new(x, k, s, p, d))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, bias, output_size, strides, padding, dilation_rate))]
#[allow(clippy::too_many_arguments)]
fn conv2d_transpose<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, bias: Option<&Bound<'py, PyAny>>,
                         output_size: &Bound<'py, PyAny>, strides: &Bound<'py, PyAny>, padding: &str,
                         dilation_rate: &Bound<'py, PyAny>) -> PyResult<Array<'py>> {
    let op = "conv2d_transpose";
    let (s, d, p) = (pair(op, "strides", strides)?, pair(op, "dilation_rate", dilation_rate)?, padding_arg(op, padding)?);
    let size = pair(op, "output_size", output_size)?;
    linear_forward(py, op, x, kernel, bias, |x, k| ConvTranspose::new(x, k, size, s, p, d))
}

#[pyfunction]
#[pyo3(signature = (x, kernel, grad_y, strides, padding, dilation_rate, need_grad_x=true))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn conv2d_transpose_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kernel: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>,
                                  strides: &Bound<'py, PyAny>, padding: &str, dilation_rate: &Bound<'py, PyAny>,
                                  need_grad_x: bool) -> PyResult<(Option<Array<'py>>, Array<'py>, Array<'py>)> {
    let op = "conv2d_transpose_backward";
    let (s, d, p) = (pair(op, "strides", strides)?, pair(op, "dilation_rate", dilation_rate)?, padding_arg(op, padding)?);
    linear_backward(py, op, x, kernel, grad_y, need_grad_x, |x, k, dy| {
        if dy.len() != 4 {
            crate::error::shape_err!("grad_y must have rank 4, got shape {dy:?}");
        }
        ConvTranspose::new(x, k, (dy[1], dy[2]), s, p, d)
    })
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(conv2d, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_relu_max_pool, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_relu_max_pool_backward, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_general, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_general_backward, m)?)?;
    m.add_function(wrap_pyfunction!(depthwise_conv2d, m)?)?;
    m.add_function(wrap_pyfunction!(depthwise_conv2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_transpose, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_transpose_backward, m)?)?;
    m.add_function(wrap_pyfunction!(set_winograd, m)?)?;
    m.add_function(wrap_pyfunction!(winograd_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(winograd_tile, m)?)?;
    Ok(())
}
