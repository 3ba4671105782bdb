"""Every rconv layer class through `layer_test.run_layer_test`, over several shapes each: odd sizes,
batch 1, channels 1, strides larger than the window, 'same' padding with asymmetric pads.

One pytest item per (case, check), so a known gap in one check (an xfail naming the layer) hides
nothing else. The references are float64 NumPy (tests/reference.py); nothing here calls rconv to
compute an expected value.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

import rconv
import reference as ref
from contract_case import Case
from layer_test import run_layer_test
from rconv import layers

# --- float64 references (the layer's weights come in aligned with layer.weights) -------------------


def conv_ref(strides=(1, 1), padding="valid", activation=None, use_bias=True, **_):
    def fn(x, w):
        return ref.activation(activation or "linear", ref.conv2d(x, w[0], w[1] if use_bias else None, strides, padding))
    return fn


def dense_ref(activation=None, use_bias=True, **_):
    return lambda x, w: ref.activation(activation or "linear", ref.dense(x, w[0], w[1] if use_bias else None))


def pool_ref(op):
    def make(pool_size=(2, 2), strides=None, padding="valid", **_):
        return lambda x, w: op(x, pool_size, strides, padding)
    return make


def global_ref(op):
    return lambda keepdims=False, **_: (lambda x, w: op(x, keepdims))


def identity_ref(**_):
    return lambda x, w: ref.f64(x)


def flatten_ref(**_):
    return lambda x, w: ref.f64(x).reshape(len(x), -1)


def activation_ref(activation, **_):
    return lambda x, w: ref.activation(activation, x)


def rescaling_ref(scale, offset=0.0, **_):
    return lambda x, w: ref.f64(x) * scale + offset


def add_ref(**_):
    return lambda xs, w: sum(ref.f64(x) for x in xs)


def concat_ref(axis=-1, **_):
    return lambda xs, w: np.concatenate([ref.f64(x) for x in xs], axis=axis)


def dropout_training_ref(rate, seed, noise_shape=None, **_):
    """rconv's seeded Dropout: its own `default_rng(seed)`, one float32 uniform per mask entry, kept
    where >= rate, scaled by 1/(1-rate) (inverted dropout, Keras)."""
    def fn(x, w):
        shape = x.shape if noise_shape is None else tuple(d if n is None else n for d, n in zip(x.shape, noise_shape))
        keep = np.random.default_rng(seed).random(shape, dtype=np.float32) >= rate
        return ref.f64(x) * keep / (1.0 - rate)
    return fn


# --- cases ---------------------------------------------------------------------------------------------


CASES: list[Case] = []
# Cases of further layer families live in tests/contract_cases_<family>.py (each a module-level `CASES` list of
# `contract_case.Case`); they are gathered at the end of this file.


# Conv2D: valid/same, stride > kernel, asymmetric 'same' pads, 1x1 output, channels 1, batch 1.
for kw, shape in [
    (dict(filters=4, kernel_size=3, activation="relu"), (2, 7, 7, 3)),
    (dict(filters=1, kernel_size=(3, 2), strides=2, padding="same", activation="sigmoid"), (1, 8, 9, 1)),
    (dict(filters=3, kernel_size=4, padding="same", use_bias=False), (2, 7, 6, 2)),  # pads 1 before, 2 after
    (dict(filters=2, kernel_size=2, strides=3), (3, 9, 7, 2)),  # stride > kernel, valid
    (dict(filters=5, kernel_size=1, strides=3, padding="same"), (1, 5, 5, 3)),  # stride > kernel, same
    (dict(filters=4, kernel_size=5, activation="softmax"), (2, 5, 5, 2)),  # 1x1 output
]:
    n, h, w, c = shape
    CASES.append(Case(layers.Conv2D, kw, shape, conv_ref, bad=[(h, w, c)], bad_built=[(n, h, w, c + 1)]))
CASES.append(Case(layers.Conv2D, dict(filters=2, kernel_size=3), (1, 4, 4, 1), conv_ref, bad=[(1, 2, 2, 1)],
                  checks=("bad_input",), tag="-too_small"))

# Dense on rank 2 and rank 4 inputs.
for kw, shape in [
    (dict(units=4, activation="relu"), (3, 5)),
    (dict(units=1), (1, 1)),
    (dict(units=3, activation="sigmoid"), (2, 3, 4, 5)),
    (dict(units=6, activation="softmax", use_bias=False), (2, 7)),
    (dict(units=2), (1, 2, 3, 1)),
]:
    CASES.append(Case(layers.Dense, kw, shape, dense_ref, bad=[shape[-1:]],
                      bad_built=[shape[:-1] + (shape[-1] + 1,)]))

# Pooling: default strides, asymmetric 'same', stride > window, rectangular windows, 1x1 output.
for cls, op in [(layers.MaxPooling2D, ref.max_pool2d), (layers.AveragePooling2D, ref.avg_pool2d)]:
    for kw, shape in [
        (dict(pool_size=2), (2, 7, 7, 3)),
        (dict(pool_size=3, strides=2, padding="same"), (1, 8, 8, 1)),  # pads 0 before, 1 after
        (dict(pool_size=2, strides=3), (2, 7, 5, 2)),
        (dict(pool_size=(2, 3), strides=(3, 1), padding="same"), (1, 6, 7, 2)),
        (dict(pool_size=5), (2, 5, 5, 1)),
    ]:
        CASES.append(Case(cls, kw, shape, pool_ref(op), bad=[shape[1:]]))
    CASES.append(Case(cls, dict(pool_size=3), (1, 4, 4, 1), pool_ref(op), bad=[(1, 2, 2, 1)], checks=("bad_input",),
                      tag="-too_small"))

for cls, op in [(layers.GlobalAveragePooling2D, ref.global_avg_pool2d),
                (layers.GlobalMaxPooling2D, ref.global_max_pool2d)]:
    for kw, shape in [({}, (2, 5, 7, 3)), ({}, (1, 1, 1, 1)), (dict(keepdims=True), (1, 4, 3, 2))]:
        CASES.append(Case(cls, kw, shape, global_ref(op), bad=[shape[1:]]))

for shape in [(2, 3, 4, 5), (1, 7), (3, 1, 1, 1)]:
    CASES.append(Case(layers.Flatten, {}, shape, flatten_ref))

# Dropout: rate 0 (identity in both modes) and seeded training masks (a per-element and a shared one).
for kw, shape in [(dict(rate=0.0), (2, 5)), (dict(rate=0.0), (1, 3, 3, 1))]:
    CASES.append(Case(layers.Dropout, kw, shape, identity_ref))
for kw, shape in [(dict(rate=0.5, seed=3), (3, 4, 5)),
                  (dict(rate=0.3, seed=1, noise_shape=(None, 1, 1, 3)), (2, 4, 4, 3))]:
    CASES.append(Case(layers.Dropout, kw, shape, identity_ref,
                      options=dict(training_reference_fn=dropout_training_ref(**kw))))


def activation_names() -> list:
    """Every activation rconv knows by name (the registry when there is one)."""
    try:
        from rconv import registry
        return sorted(registry.names("activations"))
    except ImportError:
        return sorted(rconv.activations._BY_NAME)


for name in activation_names():
    for shape in [(2, 7), (1, 3, 3, 2)]:
        CASES.append(Case(layers.Activation, dict(activation=name), shape, activation_ref))
for shape in [(2, 5, 3), (1, 1)]:
    CASES.append(Case(layers.ReLU, {}, shape, lambda **_: (lambda x, w: ref.relu(x))))
for shape in [(3, 7), (1, 2, 2, 5), (2, 1)]:
    CASES.append(Case(layers.Softmax, {}, shape, lambda **_: (lambda x, w: ref.softmax(x))))

pixels = np.random.default_rng(7).integers(0, 256, (2, 3, 3, 1)).astype(np.float32)
CASES.append(Case(layers.Rescaling, dict(scale=1 / 255), (2, 3, 3, 1), rescaling_ref,
                  options=dict(input_data=pixels)))
CASES.append(Case(layers.Rescaling, dict(scale=2.0, offset=-1.0), (1, 5), rescaling_ref))

for shapes in [[(2, 5)] * 2, [(1, 3, 3, 2)] * 3, [(2, 1)] * 2]:
    wrong = [shapes[0][:-1] + (2,), shapes[0][:-1] + (3,)]  # 2 vs 3: no broadcasting (1 vs 2 would, as Keras)
    CASES.append(Case(layers.Add, {}, shapes, add_ref, bad=[wrong]))
for axis, shapes in [(-1, [(2, 3, 4, 2), (2, 3, 4, 5)]), (1, [(2, 3, 4, 2), (2, 1, 4, 2)]),
                     (2, [(1, 3, 4, 2), (1, 3, 2, 2), (1, 3, 1, 2)]), (-2, [(2, 3, 2), (2, 4, 2)]),
                     (1, [(2, 3), (2, 4)])]:
    rank = len(shapes[0])
    other = ([i for i in range(1, rank) if i != axis % rank] or [0])[0]  # a non-concatenation axis to break
    wrong = tuple(d + 1 if i == other else d for i, d in enumerate(shapes[1]))
    CASES.append(Case(layers.Concatenate, dict(axis=axis), shapes, concat_ref, bad=[[shapes[0], wrong]]))

# Augmentation: identity at inference (every check); training-mode gradients vs finite differences of
# the layer itself under the same seeded draw (no reference for the draw).
AUGMENTATIONS = [
    (layers.RandomFlip, dict(mode="horizontal", seed=1)),
    (layers.RandomFlip, dict(seed=2)),
    (layers.RandomRotation, dict(factor=0.2, seed=1)),
    (layers.RandomZoom, dict(height_factor=0.3, seed=1)),
    (layers.RandomTranslation, dict(height_factor=0.2, width_factor=0.3, seed=1)),
    (layers.RandomContrast, dict(factor=0.5, value_range=(-5, 5), seed=1)),  # no clipping: linear in x
]
for cls, kw in AUGMENTATIONS:
    for shape in [(2, 5, 6, 3), (1, 7, 5, 1)]:
        CASES.append(Case(cls, kw, shape, identity_ref, bad=[shape[1:3], (1,) + shape],
                          options=dict(training_reference_fn=None, grad_training=False), tag="-inference"))
        CASES.append(Case(cls, kw, shape, identity_ref, checks=("backward",), tag="-training",
                          options=dict(training_reference_fn=None, grad_training=True)))


# Normalization. The test's random weights include the moving variance (uniform in +-0.5), so cases whose
# inference mode is checked use an epsilon > 0.5; the training-mode checks use the batch statistics.
def batch_norm_ref(axis=-1, epsilon=1e-3, center=True, scale=True, **_):
    def fn(x, w):
        gamma, beta = (w.pop(0) if scale else None), (w.pop(0) if center else None)
        return ref.batch_norm(x, gamma, beta, w[0], w[1], epsilon, axis)
    return lambda x, w: fn(x, list(w))


def batch_norm_training_ref(axis=-1, epsilon=1e-3, center=True, scale=True, trainable=True, **_):
    if not trainable:  # Keras 3: a frozen BatchNormalization runs in inference mode, even in training
        return batch_norm_ref(axis, epsilon, center, scale)

    def fn(x, w):
        gamma, beta = (w[0] if scale else None), (w[int(scale)] if center else None)
        return ref.batch_norm(x, gamma, beta, *ref.batch_moments(x, axis), epsilon, axis)
    return fn


def layer_norm_ref(axis=-1, epsilon=1e-3, center=True, scale=True, **_):
    def fn(x, w):
        gamma, beta = (w[0] if scale else None), (w[int(scale)] if center else None)
        return ref.layer_norm(x, gamma, beta, axis, epsilon)
    return fn


for kw, shape, bad_built in [
    (dict(epsilon=0.75), (2, 5, 7, 3), [(2, 5, 7, 4), (2, 5, 3)]),
    (dict(axis=1, epsilon=0.75, momentum=0.5), (3, 4, 2, 5), [(3, 5, 2, 5)]),  # channels first: transposed
    (dict(axis=-2, epsilon=0.6, center=False), (2, 3, 4), [(2, 2, 4)]),
    (dict(epsilon=0.6, center=False), (1, 3, 3, 1), [(1, 3, 3, 2)]),  # batch 1, channels 1
    (dict(epsilon=0.6, scale=False), (5, 1), [(5, 2)]),
    (dict(epsilon=0.6), (1, 1), [(1, 2)]),  # one value per channel: the training output is beta
    (dict(epsilon=0.75, trainable=False), (2, 3, 3, 2), [(2, 3, 3, 3)]),
]:
    CASES.append(Case(layers.BatchNormalization, kw, shape, batch_norm_ref, bad=[()], bad_built=bad_built,
                      options=dict(training_reference_fn=batch_norm_training_ref(**kw))))
for kw, shape in [(dict(), (3, 4, 5, 2)), (dict(center=False, scale=False, epsilon=1e-5), (4, 3))]:
    CASES.append(Case(layers.BatchNormalization, kw, shape, batch_norm_ref, checks=("backward", "need_input_grad"),
                      options=dict(training_reference_fn=batch_norm_training_ref(**kw)), tag="-default_eps"))
CASES.append(Case(layers.BatchNormalization, dict(axis=3), (2, 3, 4, 5), batch_norm_ref, bad=[(2, 3)],
                  checks=("bad_input",), tag="-axis"))

for kw, shape, bad_built in [
    (dict(), (2, 5, 7, 3), [(2, 5, 7, 4)]),
    (dict(axis=[1, 2]), (2, 3, 4, 5), [(2, 3, 3, 5), (2, 3, 4)]),  # not the trailing axes: transposed
    (dict(axis=[1, 2, 3], epsilon=1e-5), (1, 3, 3, 1), [(1, 3, 2, 1)]),
    (dict(center=False), (3, 1), [(3, 2)]),  # one feature: the output is beta (0 here)
    (dict(scale=False, epsilon=0.1), (4, 6), [(4, 7)]),
    (dict(axis=-2), (2, 3, 4), [(2, 4, 4)]),
]:
    CASES.append(Case(layers.LayerNormalization, kw, shape, layer_norm_ref, bad=[()], bad_built=bad_built))
CASES.append(Case(layers.LayerNormalization, dict(axis=[1, 3]), (2, 3, 4, 5), layer_norm_ref, bad=[(2, 3)],
                  checks=("bad_input",), tag="-axis"))


for _path in sorted(Path(__file__).parent.glob("contract_cases_*.py")):
    CASES.extend(importlib.import_module(_path.stem).CASES)


def _params():
    for case in CASES:
        for check in case.checks:
            takes_any = not (case.bad or (check == "bad_input_built" and case.bad_built))
            if check.startswith("bad_input") and takes_any:
                continue  # the layer takes any shape
            marks = ()
            if check in case.xfail:
                reason, strict, raises = case.xfail[check]
                marks = pytest.mark.xfail(reason=reason, strict=strict, raises=raises)
            yield pytest.param(case, check, id=f"{case.id}-{check}", marks=marks)


@pytest.mark.parametrize("case,check", list(_params()))
def test_layer_contract(case, check, tmp_path):
    options = {"bad_input_shapes": case.bad, "bad_built_shapes": case.bad_built, "tmp_path": tmp_path,
               **case.options}
    run_layer_test(case.cls, case.kwargs, case.shape, case.make_ref(**case.kwargs), checks=(check,), **options)


def test_every_layer_class_has_cases():
    """A new layer class must join CASES (so it goes through the contract too)."""
    exported = {getattr(layers, name) for name in layers.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, layers.Layer)}
    untested = classes - {layers.Layer, layers.InputLayer} - {case.cls for case in CASES}
    assert not untested, (f"layer classes with no contract cases: {sorted(c.__name__ for c in untested)}; add "
                          "them to a CASES list in tests/contract_cases_<family>.py (see tests/contract_case.py)")


def test_every_activation_has_a_reference():
    missing = [name for name in activation_names() if name not in ref.ACTIVATIONS]
    assert not missing, f"activations with no float64 reference in tests/reference.py: {missing}"
