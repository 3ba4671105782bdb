"""`model.export(path, format="onnx")`: the model's plan as an ONNX graph, built with the `onnx` package.

The exported graph takes and returns NHWC float32 tensors like the Keras model (batch dimension dynamic).
Convolutions and pooling run in ONNX's NCHW layout between a pair of Transposes; everything else stays NHWC.
Nested models are inlined; layers that are the identity at inference (Dropout, augmentation) become Identity.
A layer without a converter raises a ValueError naming it.
"""
from __future__ import annotations

import numpy as np

from . import onnx_layers

OPSET = 17
_TO_NCHW, _TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
_IDENTITY_AT_INFERENCE = {"Dropout", "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation",
                          "RandomContrast", "InputLayer", "SpatialDropout2D", "GaussianNoise",
                          *onnx_layers.IDENTITY_AT_INFERENCE}


class _Graph:
    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers, self._count = [], [], 0

    def name(self, base: str) -> str:
        self._count += 1
        return f"{base}_{self._count}"

    def const(self, base: str, value) -> str:
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list, base: str, **attrs) -> str:
        out = self.name(base)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def activation(self, x: str, fn, where: str) -> str:
        return onnx_layers.emit_activation(self, x, fn, where)


def _spatial(g, x, layer, op_type, weights=(), **attrs) -> str:
    """An NCHW ONNX op between Transposes, with TF's 'same' padding (extra pad at the end: SAME_UPPER)."""
    pad = {"auto_pad": "SAME_UPPER"} if layer.padding == "same" else {"auto_pad": "VALID"}
    nchw = g.op("Transpose", [x], "to_nchw", perm=_TO_NCHW)
    y = g.op(op_type, [nchw, *weights], layer.name, **pad, **attrs)
    return g.op("Transpose", [y], "to_nhwc", perm=_TO_NHWC)


def _pool(op_type):
    def convert(g, layer, x):
        return _spatial(g, x, layer, op_type, kernel_shape=list(layer.pool_size), strides=list(layer.strides))
    return convert


def _global_pool(op_type):
    def convert(g, layer, x):
        return g.op(op_type, [x], layer.name, axes=[1, 2], keepdims=int(getattr(layer, "keepdims", False)))
    return convert


def _dense(g, layer, x):
    y = g.op("MatMul", [x, g.const(f"{layer.name}_kernel", layer.kernel.numpy())], layer.name)
    if layer.use_bias:
        y = g.op("Add", [y, g.const(f"{layer.name}_bias", layer.bias.numpy())], f"{layer.name}_bias")
    return g.activation(y, layer.activation, f"layer '{layer.name}'")


def _flatten(g, layer, x):
    return g.op("Flatten", [x], layer.name, axis=1)


def _rescaling(g, layer, x):
    y = g.op("Mul", [x, g.const(f"{layer.name}_scale", np.float32(layer.scale))], layer.name)
    if layer.offset:
        y = g.op("Add", [y, g.const(f"{layer.name}_offset", np.float32(layer.offset))], f"{layer.name}_offset")
    return y


def _batch_norm(g, layer, x):
    """Inference batch normalization on the channel axis (last): x * scale + shift."""
    if layer.axis not in (-1, len(layer.input_shape) - 1):
        raise ValueError(f"ONNX export: BatchNormalization '{layer.name}' normalizes axis {layer.axis}; only the "
                         "channel (last) axis is exported")
    scale, shift = layer.inference_affine()
    y = g.op("Mul", [x, g.const(f"{layer.name}_scale", scale.astype(np.float32))], layer.name)
    return g.op("Add", [y, g.const(f"{layer.name}_shift", shift.astype(np.float32))], f"{layer.name}_shift")


_BINARY = {"add": "Add", "subtract": "Sub", "multiply": "Mul", "divide": "Div"}


def _binary_op(g, layer, x):
    if layer.constant is None:
        a, b = x
    else:
        c = g.const(f"{layer.name}_constant", layer.constant.astype(np.float32))
        a, b = (c, x) if layer.constant_first else (x, c)
    return g.op(_BINARY[layer.op], [a, b], layer.name)


def _get_item(g, layer, x):
    key = layer.key if isinstance(layer.key, tuple) else (layer.key,)
    if any(k is None or k is Ellipsis for k in key) or any(isinstance(k, slice) and k.step not in (None, 1)
                                                             for k in key):
        raise ValueError(f"ONNX export: '{layer.name}' indexes with {layer.key!r}; only ints and unit-step slices "
                         "are exported")
    starts, ends, axes, squeeze = [], [], [], []
    for axis, k in enumerate(key):
        if isinstance(k, slice):
            if k == slice(None):
                continue
            start, stop = k.start or 0, k.stop if k.stop is not None else np.iinfo(np.int64).max
        else:
            start, stop = int(k), int(k) + 1 if int(k) != -1 else np.iinfo(np.int64).max
            squeeze.append(axis)
        starts.append(start)
        ends.append(stop)
        axes.append(axis)
    y = x
    if axes:
        y = g.op("Slice", [x, g.const("starts", np.array(starts, np.int64)), g.const("ends", np.array(ends, np.int64)),
                           g.const("axes", np.array(axes, np.int64))], layer.name)
    if squeeze:
        y = g.op("Squeeze", [y, g.const("squeeze_axes", np.array(squeeze, np.int64))], f"{layer.name}_squeeze")
    return y


CONVERTERS = {
    "MaxPooling2D": _pool("MaxPool"), "AveragePooling2D": _pool("AveragePool"),
    "GlobalAveragePooling2D": _global_pool("ReduceMean"), "GlobalMaxPooling2D": _global_pool("ReduceMax"),
    "Dense": _dense, "Flatten": _flatten, "Rescaling": _rescaling, "BatchNormalization": _batch_norm,
    "BinaryOp": _binary_op, "GetItem": _get_item, **onnx_layers.CONVERTERS,
}


def _emit_plan(g, plan, inputs: list) -> list:
    """Add the nodes of `plan` fed by the ONNX value names `inputs`; returns the output value names."""
    values = [None] * len(plan.tensors)
    for slot, name in zip(plan.input_slots, inputs):
        values[slot] = name
    for i, step in enumerate(plan.steps):
        if step is None:  # a model input
            continue
        arg = [values[p] for p in step.parents] if step.multi else values[step.parents[0]]
        layer, kind = step.layer, type(step.layer).__name__
        if getattr(layer, "_plan", None) is not None:  # a nested model: inline its plan
            outs = _emit_plan(g, layer._plan, arg if isinstance(arg, list) else [arg])
            values[i] = outs[0] if len(outs) == 1 else outs
        elif kind in _IDENTITY_AT_INFERENCE:
            values[i] = g.op("Identity", [arg], layer.name)
        else:
            values[i] = CONVERTERS[kind](g, layer, arg)
    return [values[s] for s in plan.output_slots]


def unsupported_layers(model) -> list:
    out = []
    for layer in model._plan.layers:
        kind = type(layer).__name__
        if getattr(layer, "_plan", None) is not None:
            out += unsupported_layers(layer)
        elif kind not in CONVERTERS and kind not in _IDENTITY_AT_INFERENCE:
            out.append(f"{layer.name} ({kind})")
    return out


def export(model, filepath: str, opset: int = OPSET) -> None:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the `onnx` package: pip install onnx (or rconv[onnx])") from exc
    from ..saving.atomic import atomic_write
    if model._plan is None:
        raise ValueError(f"Model '{model.name}' is not built yet: give it an input shape or call it on data first")
    missing = unsupported_layers(model)
    if missing:
        raise ValueError(f"ONNX export of model '{model.name}': no converter for layer(s) {missing}")
    g = _Graph(onnx)
    inputs = [g.helper.make_tensor_value_info(t._keras_history[0].name, onnx.TensorProto.FLOAT,
                                              ["batch" if d is None else d for d in t.shape]) for t in model.inputs]
    outs = _emit_plan(g, model._plan, [v.name for v in inputs])
    outputs = []
    for name, t, out in zip(model.output_names, model.outputs, outs):  # outputs named like the model's
        g.nodes.append(g.helper.make_node("Identity", [out], [name], name=f"{name}_output"))
        outputs.append(g.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                       ["batch" if d is None else d for d in t.shape]))
    graph = g.helper.make_graph(g.nodes, model.name, inputs, outputs, g.initializers)
    proto = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", opset)], producer_name="rconv")
    onnx.checker.check_model(proto)
    with atomic_write(str(filepath)) as tmp:
        onnx.save(proto, tmp)
