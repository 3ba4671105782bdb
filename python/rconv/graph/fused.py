"""The runner of a fused ``Conv2D(activation="relu")`` + ``MaxPooling2D`` pair (see `graph/passes.py`).

Models keep both layers (same weights, configs, summary and saved files); only the execution changes:
the pair runs as one kernel (``ops.conv2d_relu_max_pool``) that never writes the convolution's output
to memory. The results equal the unfused layers (the same maxima; the gradients up to float32
summation order). `rconv.config.disable_kernel_fusion()` turns it off.
"""
from __future__ import annotations

import numpy as np

from .. import activations, ops
from ..layers.conv import Conv2D
from ..layers.pooling import MaxPooling2D


def fusable(layer, next_layer) -> bool:
    """True for a built ReLU Conv2D (no dilation, no groups, no activity regularizer) directly followed by a
    MaxPooling2D (exact types: a subclass may change what either layer computes)."""
    return (type(layer) is Conv2D and type(next_layer) is MaxPooling2D and layer.activation is activations.relu
            and layer.built and tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1
            and layer.activity_regularizer is None)


class ConvReluMaxPool:
    """Runs a fusable (conv, pool) pair with the layer protocol; its gradients belong to the conv."""

    def __init__(self, conv: Conv2D, pool: MaxPooling2D):
        self.conv, self.pool = conv, pool
        self.name = f"{conv.name}+{pool.name}"

    def _args(self):
        conv, pool = self.conv, self.pool
        return conv.strides, conv.padding, pool.pool_size, pool.strides, pool.padding

    def forward(self, inputs, training=False):
        conv = self.conv
        bias = conv.bias.value if conv.use_bias else None
        # The winning cells are only needed for a backward pass, which follows training forwards.
        y, winners = ops.conv2d_relu_max_pool(inputs, conv.kernel.value, bias, *self._args(), winners=bool(training))
        return y, (inputs, winners)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        """(grad wrt the conv's input or None, the conv's weight grads)."""
        inputs, winners = ctx
        if winners is None:  # a backward after an inference forward: find the winners now
            _, (inputs, winners) = self.forward(inputs, training=True)
        grad_x, grad_k, grad_b = ops.conv2d_relu_max_pool_backward(
            inputs, self.conv.kernel.value, grad_outputs, winners, *self._args(), need_grad_x=need_input_grad)
        return grad_x, ([grad_k, grad_b] if self.conv.use_bias else [grad_k])


class FoldedBatchNorm:
    """Inference runner of a linear layer with a `folded` method (Conv1D/2D, DepthwiseConv2D, SeparableConv2D,
    Conv2DTranspose, Dense) followed by a BatchNormalization on its channel axis: one convolution (or matmul) with
    the normalization folded into its kernel and bias, computed from the current weights at each call. No
    intermediate output, no separate normalization pass."""

    differentiable = False  # inference variants only: training runs the layers themselves

    def __init__(self, layer, bn):
        self.layer, self.bn = layer, bn
        self.name = f"{layer.name}+{bn.name}"

    def forward(self, inputs, training=False):
        scale, shift = self.bn.inference_affine()
        return self.layer.folded(inputs, scale.astype(np.float32), shift.astype(np.float32)), None

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        raise RuntimeError(f"{self.name}: a folded batch normalization runs in inference only")
