"""Execution-time fusion of ``Conv2D(activation="relu")`` followed by ``MaxPooling2D``.

Models keep both layers (same weights, configs, summary and saved files); only the execution changes:
the pair runs as one kernel (``ops.conv2d_relu_max_pool``) that never writes the convolution's output
to memory. On the seed MNIST convnet this removes the largest memory sweeps of a training step. The
results equal the unfused layers (the same maxima; the gradients up to float32 summation order).
"""
from __future__ import annotations

from .. import activations, ops
from .conv import Conv2D
from .pooling import MaxPooling2D

#: Set to False to run every layer on its own (tests compare both ways).
ENABLED = True

#: Marks, in a model's tape, the pooling layer whose work was done by the fused convolution before it.
FUSED = object()


def fusable(layer, next_layer) -> bool:
    """True for a ReLU Conv2D directly followed by a MaxPooling2D (exact types: a subclass may change
    what either layer computes)."""
    return (ENABLED and type(layer) is Conv2D and type(next_layer) is MaxPooling2D and layer.activation is activations.relu
            and layer.built)


class ConvReluMaxPool:
    """Runs a fusable (conv, pool) pair with the layer training protocol (see layers/layer.py)."""

    def __init__(self, conv: Conv2D, pool: MaxPooling2D):
        self.conv, self.pool = conv, pool

    def _args(self):
        conv, pool = self.conv, self.pool
        return conv.strides, conv.padding, pool.pool_size, pool.strides, pool.padding

    def forward(self, inputs, training=False):
        conv = self.conv
        bias = conv.bias.value if conv.use_bias else None
        # The winning cells are only needed for a backward pass, which follows training forwards.
        y, winners = ops.conv2d_relu_max_pool(inputs, conv.kernel.value, bias, *self._args(), winners=training)
        return y, (inputs, winners)

    def backward(self, ctx, grad_outputs, need_input_grad=True):
        """(grad wrt the conv's input or None, the conv's weight grads)."""
        inputs, winners = ctx
        if winners is None:  # a backward after an inference forward: find the winners now
            _, (inputs, winners) = self.forward(inputs, training=True)
        grad_x, grad_k, grad_b = ops.conv2d_relu_max_pool_backward(
            inputs, self.conv.kernel.value, grad_outputs, winners, *self._args(), need_grad_x=need_input_grad)
        return grad_x, ([grad_k, grad_b] if self.conv.use_bias else [grad_k])
