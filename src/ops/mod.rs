//! Pure-Rust kernels, free of PyO3, so `cargo test` runs without Python. Float32, NHWC activations,
//! Keras weight layouts: conv kernel (kh, kw, cin, cout), dense kernel (in, out).

pub mod activation;
pub mod augment;
pub mod microkernel;
pub mod bf16;
pub mod conv;
pub mod conv_pool;
pub mod conv_transpose;
pub mod dense;
pub mod depthwise;
pub mod gemm;
pub mod geometry;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod resample;
pub mod simd;

/// What the backward of a layer with a kernel and a bias returns: (grad_x if asked, grad_kernel, grad_bias).
pub type LinearGrads = (Option<Vec<f32>>, Vec<f32>, Vec<f32>);

