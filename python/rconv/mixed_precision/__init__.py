"""Mixed precision (`keras.mixed_precision` / `keras.dtype_policies`): bfloat16 compute, float32 variables.

    rconv.mixed_precision.set_global_policy("mixed_bfloat16")
    model = ...  # layers created from now on compute in bfloat16
    outputs = layers.Dense(10, activation="softmax", dtype="float32")(x)  # keep the last layer in float32

Under a ``mixed_bfloat16`` policy a layer's dense and convolution GEMMs (forward and backward) round
their operands to bfloat16 and accumulate in float32 (AMX or AVX512_BF16 where the CPU has them). What
differs from Keras: activations stay float32 arrays between layers (Keras passes bfloat16 tensors), so
only the GEMM inputs are rounded, and elementwise work (bias, activations, pooling, normalization,
losses) stays float32; variables and the optimizer are float32 in both, and bfloat16 needs no loss
scaling. The few-tap first convolutions (input channels × taps ≤ 32, AVX-512 gather kernels) and the
depthwise kernels stay float32; so do the backward GEMMs of layers run eagerly under a `GradientTape`
(model training and prediction go through the executor, which sets every layer's precision for its
forward and backward). ``float16`` compute and non-float32 variables are not supported (layers
raise ValueError). Saved files write the policy as Keras 3 does, so Keras loads them.
"""
from .policy import (DTypePolicy, FloatDTypePolicy, Policy, deserialize, dtype_policy, get, global_policy,
                     serialize, set_dtype_policy, set_global_policy)

__all__ = ["DTypePolicy", "FloatDTypePolicy", "Policy", "dtype_policy", "set_dtype_policy", "global_policy",
           "set_global_policy", "get", "serialize", "deserialize"]
