//! Depthwise 2-D convolution (NHWC, kernel (kh, kw, cin, depth_multiplier)), forward and backward.
