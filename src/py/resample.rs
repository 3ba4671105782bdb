//! Bindings of the resampling kernels (`ops::resample`): up-sampling and resizing.

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;

use super::args::*;
use crate::ops::resample::{Interpolation, Resize};

/// Resize NHWC `images` to `size` = (height, width), like `tf.image.resize` (half-pixel centres).
#[pyfunction]
#[pyo3(signature = (images, size, interpolation))]
fn resize<'py>(py: Python<'py>, images: &Bound<'py, PyAny>, size: &Bound<'py, PyAny>, interpolation: &str)
               -> PyResult<Array<'py>> {
    let op = "resize";
    let size = pair(op, "size", size)?;
    let x = input(op, "images", images)?;
    let interpolation = Interpolation::parse(interpolation).map_err(shape_error(op))?;
    let resize = Resize::new(x.shape(), size, interpolation).map_err(shape_error(op))?;
    let xs = slice(&x);
    let y = run(py, op, || resize.forward(xs))?;
    output(py, y, &resize.output_shape())
}

/// The input gradient of `resize` (its adjoint); `image_shape` = (height, width) of the resized images.
#[pyfunction]
#[pyo3(signature = (grad_y, image_shape, interpolation))]
fn resize_backward<'py>(py: Python<'py>, grad_y: &Bound<'py, PyAny>, image_shape: &Bound<'py, PyAny>,
                        interpolation: &str) -> PyResult<Array<'py>> {
    let op = "resize_backward";
    let image_shape = pair(op, "image_shape", image_shape)?;
    let g = input(op, "grad_y", grad_y)?;
    let interpolation = Interpolation::parse(interpolation).map_err(shape_error(op))?;
    let resize = Resize::for_gradient(g.shape(), image_shape, interpolation).map_err(shape_error(op))?;
    let gs = slice(&g);
    let dx = run(py, op, || resize.backward(gs))?;
    output(py, dx, &resize.input_shape())
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resize, m)?)?;
    m.add_function(wrap_pyfunction!(resize_backward, m)?)?;
    Ok(())
}
