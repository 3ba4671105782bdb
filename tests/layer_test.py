"""`run_layer_test`: the one contract check every rconv layer goes through (like Keras's
`TestCase.run_layer_test`, keras/src/testing/test_case.py), plus the float64 checks Keras gets from
autodiff and rconv has to test by hand.

For a layer class, its constructor kwargs, an input shape (a list of shapes for merge layers) and a
float64 NumPy reference ``reference_fn(inputs, weights) -> output`` (inputs: the float32 values the
layer saw, in float64; weights: aligned with ``layer.weights``), each check in `CHECKS`:

``forward``        ``layer.forward(x, training=False)`` (and ``layer(x, training=False)``) against the
                   reference; with ``training=True`` against `training_reference_fn` (the same
                   reference by default: deterministic layers; a seeded one for Dropout; None: no
                   reference for the random draw, not checked). Tolerance: `FWD_TOL` relative to the
                   output's scale (a float32 computation of a float64 formula).
``backward``       ``y, ctx = layer.forward(x, training)``, ``grad_x, grads = layer.backward(ctx, g)``
                   against central finite differences of ``<reference(x, w), g>`` in float64 (or, with
                   no reference for the training draw, of the float32 layer itself with the same
                   randomness): every input and every weight (up to `FD_POINTS` sampled entries each).
``need_input_grad``  ``layer.backward(ctx, g, need_input_grad=False)`` gives None for the input gradient
                   and the same weight gradients (xfails, naming the layer, while its backward lacks
                   the keyword).
``config``         ``get_config() -> from_config()`` gives an equal, JSON-serialisable config and, after
                   ``set_weights``, equal outputs.
``saving``         the layer inside ``Sequential([Input(shape), layer])`` (a functional Model for merge
                   layers) survives ``save(.keras)`` / ``models.load_model``: equal predictions, equal
                   layer config.
``output_shape``   ``compute_output_shape`` with a None batch, a symbolic call on ``rconv.Input`` and the
                   real output shape agree.
``bad_input``      each of `bad_input_shapes` gives a ValueError naming the layer, on a fresh layer and
``bad_input_built``  on a layer already built for the good shape (which also gets `bad_built_shapes`:
                   shapes only wrong for a built layer, e.g. another channel count).

Randomness is fixed by building a fresh layer (seeded kwargs, plus `rconv.utils.set_random_seed`)
before every training-mode forward, so the forward, its finite differences and a seeded reference
all see the same draw.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

import rconv
import reference as ref

CHECKS = ("forward", "backward", "need_input_grad", "config", "saving", "output_shape", "bad_input",
          "bad_input_built")
SAME = "same"  # training_reference_fn default: training output == inference output

EPS32 = float(np.finfo(np.float32).eps)
FWD_TOL = 32 * EPS32      # ~3.8e-6: relative error of a float32 forward; measured worst ~1 ulp (<2% of this)
GRAD_TOL = 256 * EPS32    # ~3.1e-5: float32 backward sums (batch x pixels) against float64 differences
FD_STEP = 1e-6            # float64 central differences of the float64 reference
FD_STEP_LAYER = 1e-2      # of the float32 layer itself (only used where the layer is linear in what moves)
FD_POINTS = 160           # entries per tensor checked by finite differences (all of them when fewer)


def _is_multi(input_shape) -> bool:
    return isinstance(input_shape, list)


def _as_list(x) -> list:
    return list(x) if isinstance(x, list) else [x]


def _unlist(xs: list, multi: bool):
    return list(xs) if multi else xs[0]


def _none_batch(shape) -> tuple:
    return (None,) + tuple(shape[1:])


class LayerTest:
    """The state one `run_layer_test` call shares between its checks (inputs, weights, cotangent)."""

    def __init__(self, layer_cls, init_kwargs, input_shape, reference_fn, *, training_reference_fn=SAME,
                 input_data=None, grad_training=True, bad_input_shapes=(), bad_built_shapes=(), seed=0,
                 weight_scale=0.5, fwd_tol=FWD_TOL, grad_tol=GRAD_TOL, fd_points=FD_POINTS, tmp_path=None):
        self.layer_cls = layer_cls
        self.init_kwargs = dict(init_kwargs or {})
        self.multi = _is_multi(input_shape)
        self.shapes = [tuple(s) for s in _as_list(input_shape)]
        self.reference_fn = reference_fn
        self.training_reference_fn = reference_fn if training_reference_fn is SAME else training_reference_fn
        self.grad_training = grad_training
        self.bad_input_shapes = list(bad_input_shapes)
        self.bad_built_shapes = list(bad_built_shapes)
        self.seed = seed
        self.fwd_tol, self.grad_tol, self.fd_points = fwd_tol, grad_tol, fd_points
        self.tmp_path = tmp_path
        self.rng = np.random.default_rng(seed)
        if input_data is None:
            input_data = [self.rng.uniform(-1.0, 1.0, s).astype(np.float32) for s in self.shapes]
        self.inputs = [np.ascontiguousarray(a, dtype=np.float32) for a in _as_list(input_data)]
        assert [a.shape for a in self.inputs] == self.shapes, "input_data does not match input_shape"
        probe = self.make_layer()
        self.kind = f"{layer_cls.__name__}({', '.join(f'{k}={v!r}' for k, v in self.init_kwargs.items())})"
        self.weights = [self.rng.uniform(-weight_scale, weight_scale, w.shape).astype(np.float32)
                        for w in probe.weights]
        probe.set_weights(self.weights)
        y, _ = probe.forward(self.x, training=False)
        self.out_shape = tuple(np.shape(y))
        self.cotangent = self.rng.standard_normal(self.out_shape)

    # --- building ----------------------------------------------------------------------------------
    @property
    def x(self):
        return _unlist(self.inputs, self.multi)

    def make_layer(self, weights=None, **overrides):
        """A fresh built layer (fresh random state) holding `weights` (the test's by default)."""
        rconv.utils.set_random_seed(self.seed)
        layer = self.layer_cls(**{**self.init_kwargs, **overrides})
        layer(self.x, training=False)  # builds it (no random draw at inference)
        weights = getattr(self, "weights", None) if weights is None else weights
        if weights is not None:
            layer.set_weights(weights)
        return layer

    # --- references ----------------------------------------------------------------------------------
    def reference(self, inputs, weights, training):
        fn = self.training_reference_fn if training else self.reference_fn
        return np.asarray(fn(_unlist(inputs, self.multi), weights), dtype=np.float64)

    def layer_output64(self, inputs, weights, training):
        """The float32 layer's output in float64, with the test's fixed randomness."""
        layer = self.make_layer([np.asarray(w, np.float32) for w in weights])
        x = _unlist([np.asarray(a, np.float32) for a in inputs], self.multi)
        return np.asarray(layer.forward(x, training=training)[0], dtype=np.float64)

    # --- checks --------------------------------------------------------------------------------------
    def check_forward(self):
        for training in (False, True):
            if training and self.training_reference_fn is None:
                continue
            layer = self.make_layer()
            y, _ = layer.forward(self.x, training=training)
            what = f"{self.kind} forward(training={training})"
            assert np.asarray(y).dtype == np.float32, f"{what}: output dtype {np.asarray(y).dtype}, not float32"
            want = self.reference([ref.r32(a) for a in self.inputs], [ref.r32(w) for w in self.weights], training)
            ref.assert_close(y, want, what, rtol=self.fwd_tol, atol_scale=self.fwd_tol)
            if not training:
                called = self.make_layer()(self.x, training=False)
                np.testing.assert_array_equal(called, y, err_msg=f"{self.kind}: layer(x) != layer.forward(x)[0]")

    def _forward_backward(self, need_input_grad=None):
        layer = self.make_layer()
        y, ctx = layer.forward(self.x, training=self.grad_training)
        g = self.cotangent.astype(np.float32)
        if need_input_grad is None:
            return layer, layer.backward(ctx, g)
        return layer, layer.backward(ctx, g, need_input_grad=need_input_grad)

    def _check_grad_structure(self, layer, grad_x, grads):
        what = f"{self.kind} backward"
        assert len(grads) == len(layer.weights), (f"{what}: {len(grads)} weight gradients for "
                                                   f"{len(layer.weights)} weights")
        for w, gw in zip(layer.weights, grads):
            assert np.shape(gw) == w.shape, f"{what}: gradient of {w.path} has shape {np.shape(gw)}, not {w.shape}"
        if grad_x is not None:
            if self.multi:
                assert isinstance(grad_x, list) and len(grad_x) == len(self.inputs), (
                    f"{what}: a merge layer must return a list of {len(self.inputs)} input gradients")
            for a, ga in zip(self.inputs, _as_list(grad_x)):
                assert np.shape(ga) == a.shape, f"{what}: input gradient shape {np.shape(ga)} != {a.shape}"

    def check_backward(self):
        layer, (grad_x, grads) = self._forward_backward()
        self._check_grad_structure(layer, grad_x, grads)
        training = self.grad_training
        through_layer = training and self.training_reference_fn is None
        out = self.layer_output64 if through_layer else self.reference
        step = FD_STEP_LAYER if through_layer else FD_STEP
        prep = np.asarray if through_layer else ref.r32
        inputs, weights = [prep(a) for a in self.inputs], [prep(w) for w in self.weights]
        g = self.cotangent

        def loss_of(slot, i):
            def f(v):
                xs, ws = list(inputs), list(weights)
                (xs if slot == "input" else ws)[i] = v
                return float((out(xs, ws, training) * g).sum())
            return f

        tensors = [("input", i, a, ga) for i, (a, ga) in enumerate(zip(inputs, _as_list(grad_x)))]
        tensors += [("weight", i, w, gw) for i, (w, gw) in enumerate(zip(weights, grads))]
        for slot, i, value, analytic in tensors:
            name = f"input {i}" if slot == "input" else f"weight {layer.weights[i].path}"
            idx = self._fd_indices(value.size)
            numeric = ref.numeric_grad(loss_of(slot, i), value, step, indices=idx)
            got = np.asarray(analytic, np.float64).reshape(-1)[idx]
            tol = max(self.grad_tol, 1e-3) if through_layer else self.grad_tol
            ref.assert_close(got, numeric, f"{self.kind} backward(training={training}): gradient of {name} "
                             f"at flat indices {idx[:8].tolist()}...", rtol=tol, atol_scale=tol)

    def _fd_indices(self, size: int) -> np.ndarray:
        if size <= self.fd_points:
            return np.arange(size)
        pick = np.random.default_rng(size).choice(size, self.fd_points - 2, replace=False)
        return np.unique(np.concatenate([[0, size - 1], pick]))

    def check_need_input_grad(self):
        if "need_input_grad" not in inspect.signature(self.layer_cls.backward).parameters:
            pytest.xfail(f"{self.layer_cls.__name__}.backward does not accept need_input_grad yet")
        layer, (grad_x, grads) = self._forward_backward()
        _, (none_x, grads2) = self._forward_backward(need_input_grad=False)
        assert none_x is None, f"{self.kind}: backward(..., need_input_grad=False) returned an input gradient"
        assert len(grads2) == len(grads), f"{self.kind}: need_input_grad=False changed the number of weight grads"
        for w, a, b in zip(layer.weights, grads, grads2):
            ref.assert_close(b, np.asarray(a, np.float64), f"{self.kind}: gradient of {w.path} with "
                             "need_input_grad=False", rtol=self.fwd_tol, atol_scale=self.fwd_tol)

    def check_config(self):
        layer = self.make_layer()
        config = layer.get_config()
        json.dumps(config)  # saving writes it as JSON
        clone = self.layer_cls.from_config(config)
        assert clone.get_config() == config, f"{self.kind}: from_config(get_config()) changed the config"
        clone(self.x, training=False)
        clone.set_weights(layer.get_weights())
        np.testing.assert_array_equal(clone(self.x, training=False), layer(self.x, training=False),
                                      err_msg=f"{self.kind}: the from_config clone computes something else")

    def check_saving(self):
        assert self.tmp_path is not None, "the saving check needs tmp_path"
        layer = self.layer_cls(**self.init_kwargs)
        inputs = [rconv.Input(s[1:]) for s in self.shapes]
        if self.multi:
            try:
                model = rconv.Model(inputs, layer(inputs))
            except NotImplementedError as e:  # the model code, not the layer
                pytest.xfail(f"functional models cannot hold {self.kind} yet: {e}")
        else:
            model = rconv.Sequential([inputs[0], layer])
        layer.set_weights(self.weights)
        want = model.predict(self.x, verbose=0)
        path = Path(self.tmp_path) / "m.keras"
        model.save(path)
        loaded = rconv.models.load_model(path)
        got = loaded.predict(self.x, verbose=0)
        np.testing.assert_array_equal(got, want, err_msg=f"{self.kind}: predictions change after save/load")
        twin = [lay for lay in loaded.layers if type(lay) is self.layer_cls]
        assert len(twin) == 1, f"{self.kind}: the loaded model holds {len(twin)} layers of this class"
        assert twin[0].get_config() == layer.get_config(), f"{self.kind}: config changed by save/load"

    def check_output_shape(self):
        layer = self.make_layer()
        none_shapes = [_none_batch(s) for s in self.shapes]
        declared = tuple(layer.compute_output_shape(_unlist(none_shapes, self.multi)))
        assert declared == _none_batch(self.out_shape), (
            f"{self.kind}: compute_output_shape({_unlist(none_shapes, self.multi)}) = {declared}, but the "
            f"output of {_unlist(self.shapes, self.multi)} has shape {self.out_shape}")
        concrete = tuple(layer.compute_output_shape(_unlist(self.shapes, self.multi)))
        assert concrete == self.out_shape, f"{self.kind}: compute_output_shape(concrete) = {concrete}"
        symbolic = [rconv.Input(s[1:]) for s in self.shapes]
        out = self.layer_cls(**self.init_kwargs)(_unlist(symbolic, self.multi))
        assert tuple(out.shape) == declared, f"{self.kind}: a symbolic call gives {out.shape}, not {declared}"

    def _check_bad(self, built: bool):
        shapes = self.bad_input_shapes + (self.bad_built_shapes if built else [])
        if not shapes:
            pytest.skip(f"{self.layer_cls.__name__} accepts inputs of any shape")
        name = "probe_" + rconv.backend.to_snake_case(self.layer_cls.__name__)
        for bad in shapes:
            where = f"{self.kind} ({'built for ' + str(_unlist(self.shapes, self.multi)) if built else 'fresh'})"
            layer = self.make_layer(name=name) if built else self.layer_cls(**{**self.init_kwargs, "name": name})
            data = _unlist([np.zeros(s, np.float32) for s in _as_list(bad)], _is_multi(bad))
            try:
                layer(data)
            except ValueError as e:
                assert name in str(e), f"{where} on input shape {bad}: the ValueError does not name '{name}': {e}"
            else:
                raise AssertionError(f"{where} accepted the bad input shape {bad}")

    def check_bad_input(self):
        self._check_bad(built=False)

    def check_bad_input_built(self):
        self._check_bad(built=True)


def run_layer_test(layer_cls, init_kwargs, input_shape, reference_fn, *, checks=CHECKS, **options):
    """Run `checks` (default: all of `CHECKS`) on `layer_cls(**init_kwargs)`; see the module docstring.

    options: training_reference_fn (SAME | callable | None), input_data, grad_training (the mode of
    the backward check), bad_input_shapes, bad_built_shapes, seed, weight_scale, fwd_tol, grad_tol,
    fd_points, tmp_path.
    """
    test = LayerTest(layer_cls, init_kwargs, input_shape, reference_fn, **options)
    for check in checks:
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}; known: {CHECKS}")
        getattr(test, "check_" + check)()
    return test
