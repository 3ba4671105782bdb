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

/// Below about this much work (floating-point operations) a kernel runs on the calling thread: handing it
/// to the pool (a cross-thread wake-up) took longer than the work itself for batch-1 inference.
pub(crate) const PARALLEL_MIN_FLOPS: usize = 1 << 21;

/// What the backward of a layer with a kernel and a bias returns: (grad_x if asked, grad_kernel, grad_bias).
pub type LinearGrads = (Option<Vec<f32>>, Vec<f32>, Vec<f32>);

