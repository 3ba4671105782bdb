//! Bindings of the optimizer updates (`ops::optim`).

use numpy::PyUntypedArrayMethods;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::args::*;
use crate::error::OpResult;
use crate::ops;

type Bufs<'a, const N: usize> = [Option<&'a mut [f32]>; N];

/// Borrows `param` (read-write), `grad` and the named state buffers (read-write, each given or None; all
/// with the parameter's shape), then runs `kernel` on their slices without the GIL.
fn with_buffers<const N: usize>(
    py: Python<'_>, op: &str, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, states: [(&str, Option<&Bound<'_, PyAny>>); N],
    kernel: impl FnOnce(&mut [f32], &[f32], Bufs<'_, N>) -> OpResult<()> + Send,
) -> PyResult<()> {
    let mut p = in_out(op, "param", param)?;
    let g = input(op, "grad", grad)?;
    check_shape(op, "grad", g.shape(), p.shape())?;
    let mut bufs = Vec::with_capacity(N);
    for (name, obj) in states {
        let buf = obj.map(|o| in_out(op, name, o)).transpose()?;
        if let Some(b) = &buf {
            check_shape(op, name, b.shape(), p.shape())?;
        }
        bufs.push(buf);
    }
    let (ps, gs) = (slice_mut(op, &mut p)?, slice(&g));
    let slices = bufs.iter_mut().map(|b| b.as_mut().map(|b| slice_mut(op, b)).transpose()).collect::<PyResult<Vec<_>>>()?;
    let slices: Bufs<'_, N> = slices.try_into().map_err(|_| PyValueError::new_err(format!("{op}: internal buffer count")))?;
    run(py, op, || kernel(ps, gs, slices))
}

#[pyfunction]
#[pyo3(signature = (param, grad, momentum_buf, learning_rate, momentum, nesterov))]
fn sgd_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, momentum_buf: Option<&Bound<'_, PyAny>>,
              learning_rate: f32, momentum: f32, nesterov: bool) -> PyResult<()> {
    with_buffers(py, "sgd_update", param, grad, [("momentum_buf", momentum_buf)], |p, g, [m]| {
        ops::optim::sgd(p, g, m, learning_rate, momentum, nesterov)
    })
}

#[pyfunction]
#[pyo3(signature = (param, grad, velocity, learning_rate, rho, epsilon, momentum_buf=None, momentum=0.0, average_grad=None))]
#[allow(clippy::too_many_arguments)]
fn rmsprop_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, velocity: &Bound<'_, PyAny>,
                  learning_rate: f32, rho: f32, epsilon: f32, momentum_buf: Option<&Bound<'_, PyAny>>, momentum: f32,
                  average_grad: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let states = [("velocity", Some(velocity)), ("momentum_buf", momentum_buf), ("average_grad", average_grad)];
    with_buffers(py, "rmsprop_update", param, grad, states, |p, g, [v, m, a]| {
        ops::optim::rmsprop(p, g, v.unwrap_or_default(), m, momentum, a, learning_rate, rho, epsilon)
    })
}

#[pyfunction]
#[pyo3(signature = (param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step, v_hat=None))]
#[allow(clippy::too_many_arguments)]
fn adam_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, m: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>,
               learning_rate: f32, beta_1: f32, beta_2: f32, epsilon: f32, step: &Bound<'_, PyAny>,
               v_hat: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let op = "adam_update";
    let step = int_arg::<u64>(op, "step", "an int", step)?;
    with_buffers(py, op, param, grad, [("m", Some(m)), ("v", Some(v)), ("v_hat", v_hat)], |p, g, [m, v, h]| {
        ops::optim::adam(p, g, m.unwrap_or_default(), v.unwrap_or_default(), h, learning_rate, beta_1, beta_2, epsilon, step)
    })
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn adadelta_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, accumulated_grad: &Bound<'_, PyAny>,
                   accumulated_delta: &Bound<'_, PyAny>, learning_rate: f32, rho: f32, epsilon: f32) -> PyResult<()> {
    let states = [("accumulated_grad", Some(accumulated_grad)), ("accumulated_delta", Some(accumulated_delta))];
    with_buffers(py, "adadelta_update", param, grad, states, |p, g, [a, d]| {
        ops::optim::adadelta(p, g, a.unwrap_or_default(), d.unwrap_or_default(), learning_rate, rho, epsilon)
    })
}

#[pyfunction]
fn adagrad_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, accumulator: &Bound<'_, PyAny>,
                  learning_rate: f32, epsilon: f32) -> PyResult<()> {
    with_buffers(py, "adagrad_update", param, grad, [("accumulator", Some(accumulator))], |p, g, [a]| {
        ops::optim::adagrad(p, g, a.unwrap_or_default(), learning_rate, epsilon)
    })
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn adamax_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, m: &Bound<'_, PyAny>, u: &Bound<'_, PyAny>,
                 learning_rate: f32, beta_1: f32, beta_2: f32, epsilon: f32, step: &Bound<'_, PyAny>) -> PyResult<()> {
    let op = "adamax_update";
    let step = int_arg::<u64>(op, "step", "an int", step)?;
    with_buffers(py, op, param, grad, [("m", Some(m)), ("u", Some(u))], |p, g, [m, u]| {
        ops::optim::adamax(p, g, m.unwrap_or_default(), u.unwrap_or_default(), learning_rate, beta_1, beta_2, epsilon, step)
    })
}

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn nadam_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, m: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>,
                learning_rate: f32, beta_1: f32, beta_2: f32, epsilon: f32, step: &Bound<'_, PyAny>, u_product: f32) -> PyResult<()> {
    let op = "nadam_update";
    let step = int_arg::<u64>(op, "step", "an int", step)?;
    with_buffers(py, op, param, grad, [("m", Some(m)), ("v", Some(v))], |p, g, [m, v]| {
        ops::optim::nadam(p, g, m.unwrap_or_default(), v.unwrap_or_default(), learning_rate, beta_1, beta_2, epsilon, step,
                          u_product)
    })
}

#[pyfunction]
fn lion_update(py: Python<'_>, param: &Bound<'_, PyAny>, grad: &Bound<'_, PyAny>, m: &Bound<'_, PyAny>, learning_rate: f32,
               beta_1: f32, beta_2: f32) -> PyResult<()> {
    with_buffers(py, "lion_update", param, grad, [("m", Some(m))], |p, g, [m]| {
        ops::optim::lion(p, g, m.unwrap_or_default(), learning_rate, beta_1, beta_2)
    })
}

#[pyfunction]
fn weight_decay_update(py: Python<'_>, param: &Bound<'_, PyAny>, weight_decay: f32, learning_rate: f32) -> PyResult<()> {
    let op = "weight_decay_update";
    let mut p = in_out(op, "param", param)?;
    let ps = slice_mut(op, &mut p)?;
    run(py, op, || {
        ops::optim::weight_decay(ps, weight_decay, learning_rate);
        Ok(())
    })
}

#[pyfunction]
fn ema_update(py: Python<'_>, average: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>, momentum: f32) -> PyResult<()> {
    let op = "ema_update";
    let (mut a, x) = (in_out(op, "average", average)?, input(op, "value", value)?);
    check_shape(op, "value", x.shape(), a.shape())?;
    let (avg, xs) = (slice_mut(op, &mut a)?, slice(&x));
    run(py, op, || ops::optim::ema(avg, xs, momentum))
}

#[pyfunction]
fn sum_squares(py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<f64> {
    let op = "sum_squares";
    let x = input(op, "x", x)?;
    let xs = slice(&x);
    run(py, op, || Ok(ops::optim::sum_squares(xs)))
}

/// Adds this family's functions to the module (in `__all__` order).
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sgd_update, m)?)?;
    m.add_function(wrap_pyfunction!(rmsprop_update, m)?)?;
    m.add_function(wrap_pyfunction!(adam_update, m)?)?;
    m.add_function(wrap_pyfunction!(adadelta_update, m)?)?;
    m.add_function(wrap_pyfunction!(adagrad_update, m)?)?;
    m.add_function(wrap_pyfunction!(adamax_update, m)?)?;
    m.add_function(wrap_pyfunction!(nadam_update, m)?)?;
    m.add_function(wrap_pyfunction!(lion_update, m)?)?;
    m.add_function(wrap_pyfunction!(weight_decay_update, m)?)?;
    m.add_function(wrap_pyfunction!(ema_update, m)?)?;
    m.add_function(wrap_pyfunction!(sum_squares, m)?)?;
    Ok(())
}
