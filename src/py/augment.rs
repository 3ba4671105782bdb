//! Bindings of the image resampling kernels (`ops::augment`).

use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;

use super::args::*;
use crate::ops::augment::{FillMode, Interpolation, Resample};

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

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(affine_transform, m)?)?;
    m.add_function(wrap_pyfunction!(affine_transform_backward, m)?)?;
    Ok(())
}
