"""Layer-contract cases (tests/test_layers_contract.py) of the convolutions beside the plain Conv2D: Conv2D
with dilation_rate / groups, Conv1D (valid, same, causal), DepthwiseConv2D, SeparableConv2D and
Conv2DTranspose (output_padding, dilation), with float64 references built on tests/test_conv_ops.py's.

Odd sizes, batch 1, one channel, stride > kernel, asymmetric 'same' pads, dilation > 1, groups > 1,
depth_multiplier > 1, fused and unfused activations, use_bias=False. tests/test_conv_layers.py imports the
references for its Keras ports.
"""
from __future__ import annotations

import numpy as np

from contract_case import Case
from rconv import layers
from test_conv_ops import conv_ref, depthwise_ref, keras_deconv_length, pair, transpose_ref

ACT = {None: lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}


def conv2d_layer_ref(filters, kernel_size, strides=1, padding="valid", dilation_rate=1, groups=1, activation=None,
                use_bias=True, **_):
    def fn(x, w):
        return ACT[activation](conv_ref(x, w[0], w[1] if use_bias else None, strides, padding, dilation_rate, groups))
    return fn


def conv1d_layer_ref(filters, kernel_size, strides=1, padding="valid", dilation_rate=1, groups=1, activation=None,
                use_bias=True, **_):
    def fn(x, w):
        x2 = x[:, None]
        pad = "valid" if padding == "causal" else padding
        if padding == "causal":
            x2 = np.pad(x2, ((0, 0), (0, 0), (dilation_rate * (kernel_size - 1), 0), (0, 0)))
        y = conv_ref(x2, w[0][None], w[1] if use_bias else None, (1, strides), pad, (1, dilation_rate), groups)
        return ACT[activation](y[:, 0])
    return fn


def depthwise_layer_ref(kernel_size, strides=1, padding="valid", depth_multiplier=1, dilation_rate=1, activation=None,
                   use_bias=True, **_):
    def fn(x, w):
        return ACT[activation](depthwise_ref(x, w[0], w[1] if use_bias else None, strides, padding, dilation_rate))
    return fn


def separable_layer_ref(filters, kernel_size, strides=1, padding="valid", depth_multiplier=1, dilation_rate=1,
                   activation=None, use_bias=True, **_):
    def fn(x, w):
        z = depthwise_ref(x, w[0], None, strides, padding, dilation_rate)
        y = np.einsum("nhwc,cf->nhwf", z, w[1][0, 0])
        return ACT[activation](y + w[2] if use_bias else y)
    return fn


def transpose_layer_ref(filters, kernel_size, strides=1, padding="valid", output_padding=None, dilation_rate=1,
                   activation=None, use_bias=True, **_):
    def fn(x, w):
        k, s, d = pair(kernel_size), pair(strides), pair(dilation_rate)
        op = (None, None) if output_padding is None else pair(output_padding)
        out = tuple(keras_deconv_length(x.shape[1 + i], k[i], s[i], padding, op[i], d[i]) for i in range(2))
        return ACT[activation](transpose_ref(x, w[0], w[1] if use_bias else None, s, padding, d, out))
    return fn


CASES: list[Case] = []
for cls, kw, shape, make_ref, bad_built in [  # class, kwargs, input shape, reference maker, bad built shape
    (layers.Conv2D, dict(filters=6, kernel_size=(3, 2), padding="same", dilation_rate=(2, 1), groups=2),
     (2, 7, 6, 4), conv2d_layer_ref, (2, 7, 6, 6)),
    (layers.Conv2D, dict(filters=3, kernel_size=3, strides=(2, 1), groups=3, activation="tanh"),
     (1, 9, 8, 3), conv2d_layer_ref, (1, 9, 8, 6)),
    (layers.Conv2D, dict(filters=4, kernel_size=2, dilation_rate=3, activation="relu", use_bias=False),
     (2, 8, 7, 1), conv2d_layer_ref, (2, 8, 7, 2)),
    (layers.Conv1D, dict(filters=4, kernel_size=3), (2, 9, 3), conv1d_layer_ref, (2, 9, 2)),
    (layers.Conv1D, dict(filters=6, kernel_size=2, padding="causal", dilation_rate=2, groups=2, activation="relu"),
     (3, 7, 4), conv1d_layer_ref, (3, 7, 2)),
    (layers.Conv1D, dict(filters=2, kernel_size=2, strides=3, padding="same", activation="tanh"),
     (1, 10, 1), conv1d_layer_ref, (1, 10, 3)),
    (layers.DepthwiseConv2D, dict(kernel_size=3, depth_multiplier=2, padding="same", strides=2),
     (2, 7, 6, 3), depthwise_layer_ref, (2, 7, 6, 2)),
    (layers.DepthwiseConv2D, dict(kernel_size=(2, 3), dilation_rate=(2, 1), activation="relu"),
     (1, 7, 6, 1), depthwise_layer_ref, (1, 7, 6, 2)),
    (layers.SeparableConv2D, dict(filters=5, kernel_size=3, depth_multiplier=2, padding="same", activation="relu"),
     (2, 6, 5, 3), separable_layer_ref, (2, 6, 5, 2)),
    (layers.SeparableConv2D, dict(filters=2, kernel_size=(2, 3), strides=(3, 2), use_bias=False),
     (1, 8, 7, 2), separable_layer_ref, (1, 8, 7, 1)),
    (layers.Conv2DTranspose, dict(filters=3, kernel_size=3, strides=2, padding="same"),
     (2, 4, 5, 2), transpose_layer_ref, (2, 4, 5, 3)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=(2, 3), strides=3, output_padding=(2, 1), activation="tanh"),
     (1, 3, 4, 2), transpose_layer_ref, (1, 3, 4, 1)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=4, strides=2, padding="same", output_padding=1,
                                  use_bias=False), (1, 3, 3, 1), transpose_layer_ref, (1, 3, 3, 2)),
    (layers.Conv2DTranspose, dict(filters=2, kernel_size=3, padding="same", dilation_rate=2, activation="relu"),
     (2, 5, 4, 2), transpose_layer_ref, (2, 5, 4, 1)),
]:
    bad = [shape[:-1]] + ([shape + (1,)] if len(shape) == 3 else [shape[:2] + shape[3:]])
    CASES.append(Case(cls, kw, shape, make_ref, bad=bad, bad_built=[bad_built]))
