"""Rewrites of a plan's steps, run once per plan variant (`Plan` + settings -> the steps the executor runs).

* `fuse_conv_pool`: a ReLU Conv2D node whose output only one MaxPooling2D node reads (and which is not a
  model output) runs inside that node as one kernel (`graph/fused.py`); the conv node is skipped.
* `split_output_activation`: the given output nodes run without their final activation, so the loss can
  take logits and fuse softmax+cross-entropy / sigmoid+binary-cross-entropy (Keras's TF backend does the
  same). The node runs a shallow copy of the layer with a linear activation: the same weight variables,
  so no layer needs an "apply activation" switch.
"""
from __future__ import annotations

import copy
import math

from .. import activations, config
from ..layers.conv import Conv1D, Conv2D
from ..layers.conv_transpose import Conv2DTranspose
from ..layers.dense import Dense
from ..layers.depthwise_conv import DepthwiseConv2D, SeparableConv2D
from ..layers.normalization import BatchNormalization
from .fused import ConvReluMaxPool, FoldedBatchNorm, fusable


# The fused kernel records each pooled value's winner as a uint32 offset into the image's conv output.
_FUSABLE_OUTPUT = 2 ** 32 - 1


def _readers(steps: list) -> dict:
    """slot -> the slots of the nodes that read it."""
    readers: dict = {}
    for i, step in enumerate(steps):
        for p in step.parents if step is not None else ():
            readers.setdefault(p, []).append(i)
    return readers


def fuse_conv_pool(steps: list, output_slots: list, shapes=None) -> list:
    readers = _readers(steps)
    steps = list(steps)
    for conv_slot, reading in readers.items():
        if len(reading) != 1 or conv_slot in output_slots or steps[conv_slot] is None:
            continue
        conv_step, pool_slot = steps[conv_slot], reading[0]
        pool_step = steps[pool_slot]
        if conv_step.multi or not fusable(conv_step.layer, pool_step.layer):
            continue
        per_image = shapes[conv_slot][1:] if shapes is not None else ()
        if None not in per_image and math.prod(per_image) >= _FUSABLE_OUTPUT:
            continue  # too large for the winner offsets: the unfused ops (and their MemoryError) handle it
        steps[pool_slot] = pool_step.replaced(runner=ConvReluMaxPool(conv_step.layer, pool_step.layer),
                                              owner=conv_step.layer, parents=conv_step.parents)
        steps[conv_slot] = conv_step.replaced(skip=True)
    return steps


# Layers a following BatchNormalization folds into at inference (each has `folded(inputs, scale, shift)`);
# exact types: a subclass may compute something else.
FOLDABLE = (Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D, Dense)


def fold_batch_norm(steps: list, output_slots: list, tensors: list) -> list:
    """Inference only: a BatchNormalization on the channel (last) axis whose input is the output of a linear
    layer of `FOLDABLE` read by nothing else runs as that layer with the normalization folded into kernel and bias."""
    readers = _readers(steps)
    steps = list(steps)
    for bn_slot, bn_step in enumerate(steps):
        if bn_step is None or bn_step.multi or type(bn_step.layer) is not BatchNormalization:
            continue
        rank = len(tensors[bn_slot].shape)
        prev_slot = bn_step.parents[0]
        prev = steps[prev_slot]
        if bn_step.layer.axis not in (-1, rank - 1) or prev is None or prev.skip or prev.multi:
            continue
        if type(prev.layer) not in FOLDABLE or prev.layer.activation is not activations.linear:
            continue
        if readers.get(prev_slot) != [bn_slot] or prev_slot in output_slots:
            continue
        steps[bn_slot] = bn_step.replaced(runner=FoldedBatchNorm(prev.layer, bn_step.layer), owner=prev.layer,
                                          parents=prev.parents)
        steps[prev_slot] = prev.replaced(skip=True)
    return steps


def without_activation(layer):
    """The layer computing its pre-activation output, sharing its weights (a shallow copy)."""
    linear = copy.copy(layer)
    linear.activation = activations.linear
    return linear


def split_output_activation(steps: list, slots) -> list:
    steps = list(steps)
    for s in slots:
        step = steps[s]
        steps[s] = step.replaced(runner=without_activation(step.layer))
    return steps


def variant(plan, split_slots=frozenset(), inference=False) -> list:
    """The steps to run for this plan with the current settings; cached on the plan per variant. `inference`
    variants (predict, evaluate) also fold batch normalizations into the layer before them."""
    key = (frozenset(split_slots), config.is_kernel_fusion_enabled(), bool(inference))
    cache = plan.__dict__.setdefault("_variants", {})
    steps = cache.get(key)
    if steps is None:
        steps = plan.steps
        if key[1]:
            steps = fuse_conv_pool(steps, plan.output_slots, [t.shape for t in plan.tensors])
            if inference:
                steps = fold_batch_norm(steps, plan.output_slots, plan.tensors)
        if split_slots:
            steps = split_output_activation(steps, split_slots)
        cache[key] = steps
    return steps
