"""Layer-contract cases (tests/test_layers_contract.py) of GroupNormalization, with its float64 NumPy reference
(`group_norm64` of tests/test_group_norm.py, which also tests the op and ports Keras's tests): odd sizes, batch 1,
rank 2 to 4, the default groups=32, instance normalization (groups=-1), a channels-first axis, no gamma/beta,
regularizer and constraint arguments. (BatchNormalization / LayerNormalization cases are in
tests/test_layers_contract.py.)"""
from __future__ import annotations

import numpy as np

from contract_case import Case
from rconv import layers
from test_group_norm import group_norm64


def group_norm_ref(groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, **_):
    def fn(x, weights):
        weights = list(weights)
        gamma = weights.pop(0) if scale else None
        beta = weights.pop(0) if center else None
        moved = np.moveaxis(np.asarray(x, np.float64), axis, -1)
        g = moved.shape[-1] if groups == -1 else groups
        return np.moveaxis(group_norm64(moved, gamma, beta, g, epsilon), -1, axis)
    return fn


CASES = []
for kw, shape in [
    (dict(groups=3), (2, 5, 4, 6)),
    (dict(), (2, 3, 64)),                                   # the default groups=32: two channels per group
    (dict(groups=-1, epsilon=1e-2), (1, 5, 3, 4)),          # instance normalization, batch 1
    (dict(groups=2, axis=1), (2, 4, 3, 5)),                 # channels first
    (dict(groups=1, center=False, scale=False), (3, 7)),
    (dict(groups=1), (1, 1)),                               # one sample, one channel
    (dict(groups=2, gamma_regularizer="l2", beta_constraint="non_neg"), (2, 3, 3, 4)),
]:
    groups, last = kw.get("groups", 32), kw.get("axis", -1) == -1
    bad = [(2,)] + ([(2, 3, groups + 1)] if last and groups > 1 else [])  # rank 1; channels the groups don't divide
    bad_built = ([tuple(shape[:-1]) + (shape[-1] * 2,)] if last else []) + [tuple(shape) + (1,)]
    CASES.append(Case(layers.GroupNormalization, kw, shape, group_norm_ref, bad=bad, bad_built=bad_built))
