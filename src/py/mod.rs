//! The binding layer: shared pieces in `args`, then one file of bindings per kernel family, each with a
//! `register` function that `lib.rs` calls.

pub(crate) mod activation;
pub(crate) mod args;
pub(crate) mod augment;
pub(crate) mod conv;
pub(crate) mod dense;
pub(crate) mod loss;
pub(crate) mod norm;
pub(crate) mod optim;
pub(crate) mod pool;
pub(crate) mod precision;
pub(crate) mod resample;
