//! `rconv._rconv`: thin PyO3 bindings over the kernels in `ops`. Each function checks dtypes and
//! shapes, borrows the NumPy buffers without copying, releases the GIL around the kernel, and maps
//! errors once: dtype problems to TypeError, shape problems to ValueError, allocation failures to
//! MemoryError, a panic to RuntimeError. The shared argument/error/run helpers are in `py::args`;
//! the normalization bindings in `py::norm`.

mod alloc;
mod error;
pub mod ops;
mod pool;
mod py;

/// Reuses freed activation-sized blocks across steps instead of re-faulting fresh pages (see alloc.rs).
#[global_allocator]
static ALLOCATOR: alloc::ReusingAllocator = alloc::ReusingAllocator;

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use error::OpError;
use py::args::*;
use ops::activation::Activation;
use ops::augment::{FillMode, Interpolation, Resample};
use ops::conv::Conv2d;
use ops::conv_pool::ConvReluMaxPool;
use ops::dense::Dense;
use ops::geometry::Padding;
use ops::loss::{LossKind, Labels};
use ops::pool::{Pool2d, PoolKind};

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

fn pool_geometry(op: &str, x: &[usize], kind: &str, pool: &Bound<'_, PyAny>, strides: &Bound<'_, PyAny>, padding: &str)
                 -> PyResult<Pool2d> {
    let (pool, strides) = (pair(op, "pool_size", pool)?, pair(op, "strides", strides)?);
    let kind = PoolKind::parse(kind).map_err(shape_error(op))?;
    Pool2d::new(kind, x, pool, strides, Padding::parse(padding).map_err(shape_error(op))?).map_err(shape_error(op))
}

#[pyfunction]
fn pool2d<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, kind: &str, pool_size: &Bound<'py, PyAny>, strides: &Bound<'py, PyAny>,
               padding: &str) -> PyResult<Array<'py>> {
    let op = if kind == "avg" { "avg_pool2d" } else { "max_pool2d" };
    let x = input(op, "x", x)?;
    let pool = pool_geometry(op, x.shape(), kind, pool_size, strides, padding)?;
    let xs = slice(&x);
    let y = run(py, op, || pool.forward(xs))?;
    output(py, y, &pool.output_shape())
}

#[pyfunction]
#[pyo3(signature = (x, grad_y, kind, pool_size, strides, padding, y=None))]
#[allow(clippy::too_many_arguments)]
fn pool2d_backward<'py>(py: Python<'py>, x: &Bound<'py, PyAny>, grad_y: &Bound<'py, PyAny>, kind: &str,
                        pool_size: &Bound<'py, PyAny>, strides: &Bound<'py, PyAny>, padding: &str,
                        y: Option<&Bound<'py, PyAny>>) -> PyResult<Array<'py>> {
    let op = if kind == "avg" { "avg_pool2d_backward" } else { "max_pool2d_backward" };
    let (x, dy) = (input(op, "x", x)?, input(op, "grad_y", grad_y)?);
    let pool = pool_geometry(op, x.shape(), kind, pool_size, strides, padding)?;
    check_shape(op, "grad_y", dy.shape(), &pool.output_shape())?;
    let y = y.map(|y| input(op, "y", y)).transpose()?;
    if let Some(y) = &y {
        check_shape(op, "y", y.shape(), &pool.output_shape())?;
    }
    let (xs, dys, ys) = (slice(&x), slice(&dy), y.as_ref().map(slice));
    let dx = run(py, op, || pool.backward(xs, dys, ys))?;
    output(py, dx, x.shape())
}

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

#[pyfunction]
#[pyo3(signature = (images, transforms, interpolation, fill_mode, fill_value, output_shape=None))]
fn affine_transform<'py>(py: Python<'py>, images: &Bound<'py, PyAny>, transforms: &Bound<'py, PyAny>, interpolation: &str,
                         fill_mode: &str, fill_value: f32, output_shape: Option<&Bound<'py, PyAny>>) -> PyResult<Array<'py>> {
    let op = "affine_transform";
    let output_shape = opt_pair(op, "output_shape", output_shape)?;
    let (x, t) = (input(op, "images", images)?, input(op, "transforms", transforms)?);
    let interpolation = Interpolation::parse(interpolation).map_err(shape_error(op))?;
    let fill_mode = FillMode::parse(fill_mode).map_err(shape_error(op))?;
    let resample = Resample::new(x.shape(), t.shape(), output_shape, interpolation, fill_mode, fill_value)
        .map_err(shape_error(op))?;
    let (xs, ts) = (slice(&x), slice(&t));
    let y = run(py, op, || resample.forward(xs, ts))?;
    output(py, y, &resample.output_shape())
}

/// The input gradient of `affine_transform` (its adjoint); `image_shape` = (height, width) of its images.
#[pyfunction]
#[pyo3(signature = (grad_y, transforms, interpolation, fill_mode, image_shape=None))]
fn affine_transform_backward<'py>(py: Python<'py>, grad_y: &Bound<'py, PyAny>, transforms: &Bound<'py, PyAny>,
                                  interpolation: &str, fill_mode: &str, image_shape: Option<&Bound<'py, PyAny>>)
                                  -> PyResult<Array<'py>> {
    let op = "affine_transform_backward";
    let image_shape = opt_pair(op, "image_shape", image_shape)?;
    let (g, t) = (input(op, "grad_y", grad_y)?, input(op, "transforms", transforms)?);
    let interpolation = Interpolation::parse(interpolation).map_err(shape_error(op))?;
    let fill_mode = FillMode::parse(fill_mode).map_err(shape_error(op))?;
    let resample = Resample::for_gradient(g.shape(), t.shape(), image_shape, interpolation, fill_mode)
        .map_err(shape_error(op))?;
    let (gs, ts) = (slice(&g), slice(&t));
    let dx = run(py, op, || resample.backward(gs, ts))?;
    output(py, dx, &resample.input_shape())
}

/// Threads the kernels run on (RCONV_NUM_THREADS, default: all cores).
#[pyfunction]
fn num_threads() -> usize {
    pool::current_num_threads()
}

#[pymodule]
fn _rconv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    pool::init();
    m.add_function(wrap_pyfunction!(conv2d, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_relu_max_pool, m)?)?;
    m.add_function(wrap_pyfunction!(conv2d_relu_max_pool_backward, m)?)?;
    m.add_function(wrap_pyfunction!(pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(pool2d_backward, m)?)?;
    m.add_function(wrap_pyfunction!(dense, m)?)?;
    m.add_function(wrap_pyfunction!(dense_backward, m)?)?;
    m.add_function(wrap_pyfunction!(activation, m)?)?;
    m.add_function(wrap_pyfunction!(activation_backward, m)?)?;
    m.add_function(wrap_pyfunction!(loss, m)?)?;
    m.add_function(wrap_pyfunction!(sgd_update, m)?)?;
    m.add_function(wrap_pyfunction!(rmsprop_update, m)?)?;
    m.add_function(wrap_pyfunction!(adam_update, m)?)?;
    m.add_function(wrap_pyfunction!(affine_transform, m)?)?;
    m.add_function(wrap_pyfunction!(affine_transform_backward, m)?)?;
    m.add_function(wrap_pyfunction!(num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(py::norm::batch_norm, m)?)?;
    m.add_function(wrap_pyfunction!(py::norm::batch_norm_backward, m)?)?;
    m.add_function(wrap_pyfunction!(py::norm::layer_norm, m)?)?;
    m.add_function(wrap_pyfunction!(py::norm::layer_norm_backward, m)?)?;
    Ok(())
}
