//! What every binding shares: argument conversion (typed, aligned, contiguous NumPy views), integer and
//! size arguments, shape checks, the one mapping of core errors to Python exceptions, running a kernel with
//! the GIL released (panics caught), and outputs handed to NumPy without a copy.

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyReadwriteArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::error::{OpError, OpResult};
use crate::pool;

pub(crate) type Array<'py> = Bound<'py, PyArrayDyn<f32>>;

/// The one mapping from the core's errors to Python exceptions, each message prefixed by the op.
pub(crate) fn py_err(op: &str, e: OpError) -> PyErr {
    let message = format!("{op}: {e}");
    match e {
        OpError::Shape(_) => PyValueError::new_err(message),
        OpError::Type(_) => PyTypeError::new_err(message),
        OpError::Memory(_) => PyMemoryError::new_err(message),
        OpError::Internal(_) => PyRuntimeError::new_err(message),
    }
}

/// `.map_err(shape_error(op))`: an `OpError` from the core (of any kind, despite the historical name) as
/// the Python exception for `op`.
pub(crate) fn shape_error(op: &str) -> impl Fn(OpError) -> PyErr + '_ {
    move |e| py_err(op, e)
}

/// "dtype int64 with shape (2, 3)" for arrays, the type name otherwise.
pub(crate) fn describe(obj: &Bound<'_, PyAny>) -> String {
    match (obj.getattr("dtype"), obj.getattr("shape")) {
        (Ok(dtype), Ok(shape)) => format!("dtype {dtype} with shape {shape}"),
        _ => obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "an unknown object".into()),
    }
}

pub(crate) fn typed<'py>(op: &str, name: &str, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    obj.cast::<PyArrayDyn<f32>>().cloned().map_err(|_| {
        py_err(op, OpError::Type(format!("`{name}` must be a float32 numpy array, got {}", describe(obj))))
    })
}

pub(crate) fn not_contiguous(op: &str, name: &str, shape: &[usize]) -> PyErr {
    py_err(op, OpError::Shape(format!("`{name}` (shape {shape:?}) must be C-contiguous; use numpy.ascontiguousarray")))
}

/// `arr`, or an aligned copy when its data is not aligned for its element type (a view into a byte buffer
/// at an odd offset): only aligned data can be read as a Rust slice.
pub(crate) fn aligned<'py, T: numpy::Element>(arr: Bound<'py, PyArrayDyn<T>>) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    if arr.is_aligned() || arr.len() == 0 {
        return Ok(arr);
    }
    Ok(arr.call_method0("copy")?.cast_into::<PyArrayDyn<T>>()?)
}

/// Borrow a float32, C-contiguous array for reading. A C-contiguous array whose data is not 4-byte
/// aligned (a view into a byte buffer at an odd offset) cannot be read as `&[f32]`: it is copied.
pub(crate) fn input<'py>(op: &str, name: &str, obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    let arr = aligned(typed(op, name, obj)?)?;
    let ro = arr.try_readonly().map_err(|e| py_err(op, OpError::Shape(format!("`{name}` is in use: {e}"))))?;
    if !ro.is_c_contiguous() {
        return Err(not_contiguous(op, name, ro.shape()));
    }
    Ok(ro)
}

/// Borrow a float32, C-contiguous, aligned, writeable array for an in-place update (never copied: the
/// update would be lost).
pub(crate) fn in_out<'py>(op: &str, name: &str, obj: &Bound<'py, PyAny>) -> PyResult<PyReadwriteArrayDyn<'py, f32>> {
    let arr = typed(op, name, obj)?;
    if !arr.is_aligned() && arr.len() > 0 {
        return Err(py_err(op, OpError::Type(format!(
            "`{name}` (shape {:?}) is updated in place, so its data must be 4-byte aligned float32", arr.shape()))));
    }
    let rw = arr.try_readwrite().map_err(|e| {
        py_err(op, OpError::Shape(format!("`{name}` must be a writeable array not borrowed elsewhere: {e}")))
    })?;
    if !rw.is_c_contiguous() {
        return Err(not_contiguous(op, name, rw.shape()));
    }
    Ok(rw)
}

pub(crate) fn unusable(op: &str, shape: &[usize]) -> PyErr {
    py_err(op, OpError::Internal(format!("an array of shape {shape:?} passed the checks but cannot be read as a slice")))
}

/// The data of an array `input` returned: aligned (copied if it was not) and C-contiguous, so `as_slice`
/// cannot fail; if it ever did, the empty slice makes the kernel's length checks (or a caught panic) report it.
pub(crate) fn slice<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>) -> &'a [f32] {
    a.as_slice().unwrap_or(&[])
}

pub(crate) fn slice_mut<'a>(op: &str, a: &'a mut PyReadwriteArrayDyn<'_, f32>) -> PyResult<&'a mut [f32]> {
    let shape = a.shape().to_vec();
    a.as_slice_mut().map_err(|_| unusable(op, &shape))
}

/// A Python int argument as `T`: negative or too large is a ValueError (not OverflowError), a
/// non-integer a TypeError.
pub(crate) fn int_arg<'a, 'py, T>(op: &str, name: &str, what: &str, obj: &'a Bound<'py, PyAny>) -> PyResult<T>
where T: FromPyObject<'a, 'py>, T::Error: Into<PyErr> {
    obj.extract::<T>().map_err(|e| {
        let e: PyErr = e.into();
        let repr = obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into());
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            py_err(op, OpError::Shape(format!("`{name}` must hold non-negative ints below 2**64, got {repr}")))
        } else {
            py_err(op, OpError::Type(format!("`{name}` must be {what}, got {repr}")))
        }
    })
}

/// A (height, width)-style pair of sizes.
pub(crate) fn pair(op: &str, name: &str, obj: &Bound<'_, PyAny>) -> PyResult<(usize, usize)> {
    int_arg::<(usize, usize)>(op, name, "a pair of ints", obj)
}

pub(crate) fn opt_pair(op: &str, name: &str, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<(usize, usize)>> {
    obj.filter(|o| !o.is_none()).map(|o| pair(op, name, o)).transpose()
}

pub(crate) fn check_shape(op: &str, name: &str, actual: &[usize], expected: &[usize]) -> PyResult<()> {
    if actual != expected {
        return Err(py_err(op, OpError::Shape(format!("`{name}` has shape {actual:?}, expected {expected:?}"))));
    }
    Ok(())
}

/// The text of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}

/// Run a kernel with the GIL released on the thread pool this process may use (a fresh one in a forked
/// child, see pool.rs); a panic becomes a RuntimeError instead of crossing into Python.
pub(crate) fn run<T: Send>(py: Python<'_>, op: &str, kernel: impl FnOnce() -> OpResult<T> + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(|| pool::install(kernel))))
        .map_err(|p| py_err(op, OpError::Internal(format!(
            "internal error in the Rust kernel (a bug in rconv): {}", panic_message(p.as_ref())))))?
        .and_then(|r| r)
        .map_err(shape_error(op))
}

pub(crate) fn output<'py, T: numpy::Element>(py: Python<'py>, data: Vec<T>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<T>>> {
    ArrayD::from_shape_vec(IxDyn(shape), data)
        .map(|a| a.into_pyarray(py))
        .map_err(|e| PyRuntimeError::new_err(format!("internal error: output shape {shape:?}: {e}")))
}

/// The activations kernels can fuse into their store: only ReLU (`None` for none).
pub(crate) fn fused_relu(op: &str, activation: Option<&str>) -> PyResult<bool> {
    match activation {
        None | Some("linear") => Ok(false),
        Some("relu") => Ok(true),
        Some(other) => Err(PyValueError::new_err(format!("{op}: only 'relu' can be fused, got activation '{other}'"))),
    }
}

/// The saved ReLU output that masks a fused backward, checked against the output gradient's shape.
pub(crate) fn relu_output<'py>(op: &str, y: Option<&Bound<'py, PyAny>>, dy_shape: &[usize]) -> PyResult<Option<PyReadonlyArrayDyn<'py, f32>>> {
    let y = y.map(|y| input(op, "relu_output", y)).transpose()?;
    if let Some(y) = &y {
        check_shape(op, "relu_output", y.shape(), dy_shape)?;
    }
    Ok(y)
}
