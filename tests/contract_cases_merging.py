"""Layer-contract cases (tests/test_layers_contract.py) of the merge layers beyond Add and Concatenate:
Subtract, Multiply, Average, Maximum, Minimum (Keras's broadcasting: size-1 axes, and lower-rank inputs
getting new axes after the batch axis) and Dot (axes pairs, normalize). Float64 references here."""
from __future__ import annotations

import numpy as np

import reference as ref
from contract_case import Case
from rconv import layers


def expand(xs):
    """Keras's merge broadcasting: lower-rank inputs get new axes right after the batch axis."""
    xs = [ref.f64(x) for x in xs]
    rank = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]


def elementwise(fold):
    def make(**_):
        def fn(xs, w):
            xs = expand(xs)
            y = xs[0]
            for x in xs[1:]:
                y = fold(y, x)
            return y / len(xs) if fold is _mean else y
        return fn
    return make


def _mean(a, b):  # Average: a sum, divided at the end
    return a + b


def dot_ref(axes, normalize=False, **_):
    def fn(xs, w):
        a, b = ref.f64(xs[0]), ref.f64(xs[1])
        a1, a2 = (axes, axes) if isinstance(axes, int) else axes
        a1, a2 = a1 % a.ndim, a2 % b.ndim
        if normalize:
            a = a / np.sqrt(np.maximum((a * a).sum(axis=a1, keepdims=True), 1e-14))
            b = b / np.sqrt(np.maximum((b * b).sum(axis=a2, keepdims=True), 1e-14))
        y = np.stack([np.tensordot(a[i], b[i], (a1 - 1, a2 - 1)) for i in range(a.shape[0])])
        return y.reshape(-1, 1) if y.ndim == 1 else y
    return fn


MERGES = [(layers.Subtract, np.subtract), (layers.Multiply, np.multiply), (layers.Average, _mean),
          (layers.Maximum, np.maximum), (layers.Minimum, np.minimum)]
SHAPES = {
    2: [[(2, 5)] * 2, [(1, 3, 4, 2), (1, 1, 4, 1)], [(2, 4, 3), (2, 3)], [(1, 1)] * 2],
    3: [[(2, 3, 4)] * 3, [(2, 1, 3), (2, 3), (2, 4, 3)], [(1, 3, 3, 2), (1, 3, 1, 2), (1, 1, 1, 2)]],
}

CASES = []
for cls, fold in MERGES:
    for n, shape_lists in SHAPES.items():
        if cls is layers.Subtract and n != 2:
            continue
        for shapes in shape_lists:
            first = shapes[0]
            wrong = [first[:-1] + (2,), first[:-1] + (3,)]  # neither broadcasts to the other
            other_batch = [first, (first[0] + 1,) + first[1:]]
            bad = [wrong, other_batch] + ([[first] * 3, [first]] if cls is layers.Subtract else [])
            CASES.append(Case(cls, {}, shapes, elementwise(fold), bad=bad))

for kw, shapes, wrong in [
    (dict(axes=1), [(2, 5), (2, 5)], [(2, 5), (2, 6)]),
    (dict(axes=-1), [(1, 4)] * 2, [(1, 4), (1, 3)]),
    (dict(axes=(1, 2)), [(1, 5, 2), (1, 3, 5)], [(1, 5, 2), (1, 5, 3)]),
    (dict(axes=-1, normalize=True), [(3, 4, 6), (3, 2, 6)], [(3, 4, 6), (3, 2, 5)]),
    (dict(axes=[2, 1]), [(2, 3, 4), (2, 4)], [(2, 3, 4), (2, 3)]),
    (dict(axes=(-2, -1)), [(1, 3, 2), (1, 1, 2, 3)], [(1, 3, 2), (1, 2, 3, 2)]),
]:
    CASES.append(Case(layers.Dot, kw, shapes, dot_ref, bad=[wrong, [shapes[0]]]))
