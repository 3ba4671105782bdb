"""What `compile` sets up for each model output, like Keras 3's `trainers/compile_utils.py`.

* `CompileLoss`: one loss per output (a single loss applies to every output; a list gives one per output;
  a dict maps output names to losses, outputs it leaves out get none), `loss_weights` likewise. The total
  is the weighted sum. An output whose loss can take logits (softmax / sigmoid cross-entropy) and whose
  layer ends in that activation runs without it (`fused_slots`), and the loss fuses the two.
* `CompileMetrics`: per-output metric objects, resolved at the first batch (`accuracy` needs the shapes).
  With several outputs, names get the output's name in front (`y1_accuracy`), and per-output losses are
  tracked as `y1_loss`, as Keras 3 does. `weighted_metrics` get the sample weights; one named like an
  unweighted metric is reported as `weighted_<name>`.
* Sample weights (from `fit(sample_weight=...)`, `class_weight` or the data) reach each output's loss and
  weighted metrics: one array for every output, or one per output (a list or a dict by output name).
"""
from __future__ import annotations

import numpy as np

from .. import activations
from .. import losses as losses_module
from .. import metrics as metrics_module


def _per_output(value, names: list, what: str, single_ok=True) -> list:
    """A value given once, as a list (one per output) or as a dict keyed by output name -> list per output."""
    n = len(names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"In the dict argument `{what}`, key(s) {unknown} do not correspond to any model "
                             f"output. Received: {what}={value!r:.300}; the model's outputs are {names}")
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)) and not (single_ok and n == 1 and what == "metrics"):
        if len(value) != n:
            raise ValueError(f"For a model with {n} output(s), when providing the `{what}` argument as a list, it "
                             f"should have as many entries as the model has outputs. Received: {what}={value!r:.300}")
        return list(value)
    if n > 1 and not single_ok:
        raise ValueError(f"`{what}` must be a list or a dict for a model with {n} outputs; got {value!r:.200}")
    return [value] * n


class CompileLoss:
    def __init__(self, loss, loss_weights, output_names: list):
        if loss is None:
            raise ValueError("compile() needs a `loss`")
        self.output_names = list(output_names)
        self.spec = loss
        self.losses = [None if spec is None else losses_module.get(spec)
                       for spec in _per_output(loss, self.output_names, "loss")]
        if all(item is None for item in self.losses):
            raise ValueError(f"compile(): no output has a loss ({loss!r:.200})")
        self.weights_spec = loss_weights
        weights = [1.0] * len(self.output_names) if loss_weights is None else [
            1.0 if w is None else float(w) for w in _per_output(loss_weights, self.output_names, "loss_weights")]
        self.weights = weights

    def fused_slots(self, plan) -> frozenset:
        """Output slots whose final activation the loss fuses with."""
        slots = set()
        for loss, slot in zip(self.losses, plan.output_slots):
            step = plan.steps[slot]
            if loss is not None and step is not None and loss.fuses_with is not None \
                    and getattr(step.layer, "activation", None) is not None \
                    and getattr(step.layer, "activity_regularizer", None) is None \
                    and step.layer.output_activation_name == loss.fuses_with:
                slots.add(slot)
        return frozenset(slots)

    def prepare_targets(self, ys: list, output_shapes: list, where: str) -> list:
        if len(ys) != len(self.losses):
            raise ValueError(f"{where}the model has {len(self.losses)} outputs but {len(ys)} targets were given")
        out = []
        for loss, y, shape in zip(self.losses, ys, output_shapes):
            out.append(None if loss is None or y is None else loss.prepare_targets(y, shape, where=where))
        return out

    def __call__(self, ys: list, outs: list, fused: list, sample_weights=None):
        """-> (total loss, per-output losses, per-output gradients wrt the outputs)."""
        total, values, grads = 0.0, [], []
        sample_weights = sample_weights or [None] * len(ys)
        for loss, w, y, out, is_fused, sw in zip(self.losses, self.weights, ys, outs, fused, sample_weights):
            if loss is None or y is None:
                values.append(None)
                grads.append(None)
                continue
            fn = loss.fused_value_and_grad if is_fused else loss.value_and_grad
            value, grad = fn(y, out) if sw is None else fn(y, out, sample_weight=sw)
            if np.ndim(value):  # reduction=None: per-sample values; Keras's compiled loss averages them
                size = max(1, np.size(value))
                value, grad = float(np.mean(value)), grad / np.float32(size)
            total += w * float(value)
            values.append(float(value))
            grads.append(grad if w == 1.0 else grad * np.float32(w))
        return total, values, grads

    def get_config_entry(self):
        return self.spec


def _metric_ids(metrics, output_names: list, what: str) -> list:
    """compile's `metrics` / `weighted_metrics` -> per output, the list of metric identifiers."""
    if metrics is None:
        metrics = []
    if isinstance(metrics, (str,)) or not isinstance(metrics, (list, tuple, dict)):
        raise ValueError(f"Expected `{what}` argument to be a list, tuple, or dict. Received: {what}={metrics!r}")
    n = len(output_names)
    if isinstance(metrics, dict):
        per_output = _per_output(metrics, output_names, what)
    elif not metrics:
        per_output = [[] for _ in range(n)]
    elif n > 1:  # Keras 3: a list for several outputs has one entry (a metric or a list) per output
        per_output = _per_output(list(metrics), output_names, what)
    else:
        per_output = [list(metrics)]
    ids = [[] if m is None else (list(m) if isinstance(m, (list, tuple)) else [m]) for m in per_output]
    for entries in ids:
        for m in entries:  # validate names now, resolve 'accuracy' later (needs shapes)
            if isinstance(m, str) and m.lower() not in ("accuracy", "acc"):
                metrics_module.get(m)
    return ids


class CompileMetrics:
    def __init__(self, metrics, output_names: list, weighted_metrics=None):
        self.output_names = list(output_names)
        self.spec, self.weighted_spec = metrics, weighted_metrics
        self.ids = _metric_ids(metrics, self.output_names, "metrics")
        self.weighted_ids = _metric_ids(weighted_metrics, self.output_names, "weighted_metrics")
        self.metrics = None  # per output: list of Metric, built at the first batch
        self.weighted = None  # per output: list of Metric that get the sample weights
        self.loss_trackers = None

    def build(self, y_shapes: list, out_shapes: list) -> None:
        if self.metrics is not None:
            return
        multi = len(self.output_names) > 1

        def built(ids_per_output, taken):
            out = []
            for name, ids, y_shape, out_shape in zip(self.output_names, ids_per_output, y_shapes, out_shapes):
                metrics = [metrics_module.get(m, y_shape, out_shape) for m in ids]
                for metric in metrics:
                    if metric.name in taken:  # Keras: a weighted twin of an unweighted metric
                        metric.name = f"weighted_{metric.name}"
                    if multi:
                        metric.name = f"{name}_{metric.name}"
                out.append(metrics)
            return out

        self.metrics = built(self.ids, set())
        plain = {m.name.removeprefix(f"{name}_") if multi else m.name
                 for name, ms in zip(self.output_names, self.metrics) for m in ms}
        self.weighted = built(self.weighted_ids, plain)
        self.loss_trackers = [metrics_module.Mean(name=f"{name}_loss") for name in self.output_names] if multi else []

    def all(self) -> list:
        return [m for group in (self.metrics, self.weighted) for ms in group or () for m in ms]

    def reset(self) -> None:
        for m in self.all() + list(self.loss_trackers or ()):
            m.reset_state()

    def update(self, ys, outs, fused, activations_of, loss_values, n, sample_weights=None) -> None:
        for tracker, value in zip(self.loss_trackers or (), loss_values):
            if value is not None:
                tracker.update_state(value, sample_weight=n)
        sample_weights = sample_weights or [None] * len(ys)
        for metrics, weighted, y, out, is_fused, act, sw in zip(self.metrics, self.weighted, ys, outs, fused,
                                                                activations_of, sample_weights):
            probs = None if is_fused else out
            for m, weight in [(m, None) for m in metrics] + [(m, sw) for m in weighted]:
                if probs is None and not isinstance(m, (metrics_module.CategoricalAccuracy,
                                                        metrics_module.SparseCategoricalAccuracy)):
                    probs = activations.get(act)(out)  # argmax-based accuracies are exact on logits
                pred = out if probs is None else probs
                if weight is None:
                    m.update_state(y, pred)
                else:
                    m.update_state(y, pred, sample_weight=weight)

    def results(self) -> dict:
        logs = {t.name: t.result() for t in self.loss_trackers or ()}
        logs.update({m.name: m.result() for m in self.all()})
        return logs
