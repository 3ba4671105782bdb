//! Bindings of the pooling kernels (`ops::pool`).

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;

use super::args::*;
use crate::ops::geometry::Padding;
use crate::ops::pool::{Pool2d, PoolKind};

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

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(pool2d, m)?)?;
    m.add_function(wrap_pyfunction!(pool2d_backward, m)?)?;
    Ok(())
}
