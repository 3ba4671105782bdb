//! Resampling kernels: nearest and bilinear up-sampling and resizing (NHWC), forward and backward.

