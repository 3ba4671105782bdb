//! The core's one error type. Kernels and the binding helpers return it; `lib.rs` maps it to a Python
//! exception in one place (`py_err`).

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum OpError {
    /// Shapes, ranks or parameters that do not fit together (Python: ValueError).
    #[error("{0}")]
    Shape(String),
    /// An argument of the wrong type or dtype, or an array the kernels cannot use (Python: TypeError).
    #[error("{0}")]
    Type(String),
    /// An output or scratch buffer that cannot be allocated, or whose size overflows (Python: MemoryError).
    #[error("{0}")]
    Memory(String),
    /// A bug in rconv: a caught panic or a broken internal invariant (Python: RuntimeError).
    #[error("{0}")]
    Internal(String),
}

pub type OpResult<T> = Result<T, OpError>;

/// `return Err(OpError::Shape(format!(...)))` in one line.
macro_rules! shape_err {
    ($($arg:tt)*) => { return Err($crate::error::OpError::Shape(format!($($arg)*))) };
}
pub(crate) use shape_err;
