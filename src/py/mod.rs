//! The binding layer's shared pieces and the bindings grouped by kernel family (the rest are in `lib.rs`).

pub(crate) mod args;
pub(crate) mod norm;
