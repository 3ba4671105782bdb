//! Transposed 2-D convolution (NHWC, kernel (kh, kw, filters, cin)) with TF padding rules, forward and backward.
