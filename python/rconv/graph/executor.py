"""The one executor: a forward walk over a plan's steps that records one tape, and one reverse walk.

Forward: the steps in topological order, each ``runner.forward(arg, training)``; the tape keeps every
step's context. State updates the layers ask for (`Layer.add_update`) are applied when the walk ends.
A layer's `activity_regularizer` adds `regularizer(output) / batch size` to the walk's penalty (Keras 3),
and the backward walk adds that term's gradient to the output's.

Backward: the steps in reverse. Gradients of a tensor read by several nodes are summed, and so are the
weight gradients of a layer called at several places (shared weights). A node is only visited when the
caller wants the input gradient or a trainable variable lies upstream of it; its input gradient is only
asked for when that holds for one of its parents. So nothing is computed below the first trainable layer
(frozen bases cost their forward only).
"""
from __future__ import annotations

import numpy as np

from . import context
from ..mixed_precision import kernels


class Tape:
    __slots__ = ("steps", "ctxs", "input_shapes", "activity", "penalty")

    def __init__(self, steps, ctxs, input_shapes, activity=None, penalty=0.0):
        self.steps, self.ctxs, self.input_shapes = steps, ctxs, input_shapes
        self.activity = activity or {}  # slot -> (regularizer, output) of activity-regularized nodes
        self.penalty = penalty  # this walk's activity penalties, nested models' included


def _activity_penalty(reg, y) -> float:
    """Keras 3: the regularizer of the output, divided by the batch size."""
    return float(reg(y)) / max(1, len(y)) if np.ndim(y) else float(reg(y))


def forward(plan, steps, inputs: list, training=False):
    """Run `steps` (a variant of `plan`) on the flat list of input arrays -> (flat outputs, Tape). With
    `training=None` (an eager call without the argument) a node's own `training` argument, if it has one,
    decides its mode, as in Keras; otherwise the walk's flag does (fit, evaluate and predict always give one)."""
    values = [None] * len(steps)
    ctxs = [None] * len(steps)
    activity = {}
    for s, x in zip(plan.input_slots, inputs):
        values[s] = x
    with context.scope(training=bool(training)) as ctx, kernels.walk():
        for i, step in enumerate(steps):
            if step is None or step.skip:
                continue
            kernels.use_layer(step.layer)  # the layer's compute precision (mixed_bfloat16) for its kernels
            arg = [values[p] for p in step.parents] if step.multi else values[step.parents[0]]
            if training is None and step.training is not None:  # Keras: a call's own `training` argument
                with context.scope(training=step.training):  # applies when the caller gives none
                    values[i], ctxs[i] = step.runner.forward(arg, training=step.training)
            else:
                values[i], ctxs[i] = step.runner.forward(arg, training=bool(training))
            reg = getattr(step.layer, "activity_regularizer", None)
            if reg is not None:
                activity[i] = (reg, values[i])
                ctx.penalty += _activity_penalty(reg, values[i])
        penalty = ctx.penalty
    return [values[s] for s in plan.output_slots], Tape(steps, ctxs, [np.shape(x) for x in inputs], activity,
                                                        penalty)


def upstream_trainable(steps, trainable_ids) -> list:
    """Per slot: does a trainable variable feed this node's output? (Cached per steps list and trainable set,
    given as a frozenset, since training steps ask the same question every batch.)"""
    key = (id(steps), trainable_ids) if isinstance(trainable_ids, frozenset) else None
    entry = _upstream_cache.get(key) if key is not None else None
    if entry is not None and entry[0] is steps:
        return entry[1]
    upstream = [False] * len(steps)
    for i, step in enumerate(steps):
        if step is not None:
            upstream[i] = any(upstream[p] for p in step.parents) or any(
                id(v) in trainable_ids for v in step.owner.weights)
    if key is not None:
        if len(_upstream_cache) > 64:
            _upstream_cache.clear()
        _upstream_cache[key] = (steps, upstream)
    return upstream


_upstream_cache: dict = {}


def check_differentiable(plan, steps, trainable_ids) -> None:
    """A node that cannot pass gradients must not sit below a trainable one: that would train silently wrong."""
    upstream = upstream_trainable(steps, trainable_ids)
    for step in steps:
        if step is None or step.skip or not any(upstream[p] for p in step.parents):
            continue
        if not getattr(step.runner, "differentiable", True):
            raise ValueError(f"Layer '{step.layer.name}' ({type(step.layer).__name__}) has no backward pass, but "
                             "trainable weights lie upstream of it, so they could not be trained. Move it before the "
                             "first trainable layer, freeze the layers before it, or give it a `backward`.")


def backward(plan, tape: Tape, output_grads: list, trainable_ids, need_input_grad=True, slot_grads=None):
    """-> (list of input gradients or None, {id(variable): gradient}) for the walk recorded in `tape`.
    `output_grads` has one entry per plan output (None for an output that gets no gradient). A `slot_grads`
    dict receives every node output's total gradient (slot -> array), for callers that want inner ones."""
    steps, ctxs = tape.steps, tape.ctxs
    upstream = upstream_trainable(steps, trainable_ids)
    grads = [None] * len(steps)
    for s, g in zip(plan.output_slots, output_grads):
        if g is not None:
            grads[s] = g if grads[s] is None else grads[s] + g
    weight_grads: dict = {}
    with context.scope(training=True, trainable_ids=trainable_ids), kernels.walk():
        for i in range(len(steps) - 1, -1, -1):
            step, g = steps[i], grads[i]
            if i in tape.activity and step is not None and (need_input_grad or upstream[i]):
                reg, y = tape.activity[i]
                extra = np.asarray(reg.gradient(y), np.float32) / np.float32(max(1, len(y)) if np.ndim(y) else 1)
                g = extra if g is None else g + extra
            if step is None or g is None or step.skip or not (need_input_grad or upstream[i]):
                continue
            need_in = need_input_grad or any(upstream[p] for p in step.parents)
            kernels.use_layer(step.layer)
            grad_in, layer_grads = step.runner.backward(ctxs[i], g, need_input_grad=need_in)
            for var, lg in zip(step.owner.weights, layer_grads or ()):
                if lg is not None:
                    prev = weight_grads.get(id(var))
                    weight_grads[id(var)] = lg if prev is None else prev + lg
            if need_in and grad_in is not None:
                parts = grad_in if step.multi else [grad_in]
                for p, gp in zip(step.parents, parts):
                    if gp is not None:
                        grads[p] = gp if grads[p] is None else grads[p] + gp
    if slot_grads is not None:
        slot_grads.update((i, g) for i, g in enumerate(grads) if g is not None)
    input_grads = None
    if need_input_grad:
        input_grads = [grads[s] if grads[s] is not None else np.zeros(shape, np.float32)
                       for s, shape in zip(plan.input_slots, tape.input_shapes)]
    return input_grads, weight_grads
