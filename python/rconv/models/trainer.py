"""`Trainer`: compile / fit / evaluate / predict for any `Model`, over the one data path.

Every input kind (arrays or lists/dicts of them, Sequences, generators, datasets, image iterators) goes
through `rconv.data.EpochIterator`; every batch runs through the model's plan with the one executor. A
training step: forward (outputs whose final softmax/sigmoid fuses with the loss run without it), the
compiled losses and their gradients, the reverse walk with no input gradient (so nothing is computed
below the first trainable layer), one optimizer update.

Threads: a per-model lock is held around each training step (forward, backward, optimizer update) and
around each inference batch, so a `predict`/`evaluate` from another thread while `fit` runs sees the
weights of a whole step, never a torn mix; `evaluate` from another thread then keeps its own metric
state. A second `fit` on a model already fitting raises RuntimeError.
"""
from __future__ import annotations

import contextlib
import copy
import numbers
import os
import threading
import warnings
import weakref

import numpy as np

from .. import callbacks as callbacks_module
from .. import distribution as distribution_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..data import EpochIterator, class_weight_to_sample_weights, stream_kind, train_validation_split
from ..graph import executor, passes
from ..layers.layer import positive_int
from .compile_utils import CompileLoss, CompileMetrics


def _unpack_validation(data):
    """`validation_data`: `(x, y)`, `(x, y, sample_weight)`, or a dataset / generator / PyDataset."""
    if isinstance(data, tuple) or (isinstance(data, list) and len(data) in (2, 3)):
        if len(data) not in (2, 3):
            raise ValueError("When passing `validation_data`, it must contain either 2 items (x_val, y_val), or 3 "
                             f"items (x_val, y_val, val_sample_weights). Received: tuple of {len(data)} items")
        return (tuple(data) + (None,))[:3]
    return data, None, None


def _require_steps(data, steps, name: str) -> None:
    """A generator gives no length, so a training or validation epoch over it would never end without a step
    count (Keras 2's rule, kept as a guard; evaluate/predict run a generator until it stops)."""
    if steps is None and stream_kind(data) == "iterator":
        raise ValueError(f"`{name}=None` is only valid for a generator based on the `keras.utils.Sequence` class, "
                         f"or a dataset with a length. Please specify `{name}` or use the `keras.utils.Sequence` "
                         "class.")


def _check_int(value, name: str, where: str, minimum: int = 1, allow_none: bool = False):
    """Entry checks of fit/evaluate/predict arguments (batch sizes, epochs, steps, frequencies)."""
    if minimum == 1:
        return positive_int(value, name, where, allow_none)
    if (value is None and allow_none) or (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                                           and value >= minimum):
        return value
    raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")


_TRAINERS: weakref.WeakSet = weakref.WeakSet()  # every model, so a forked child can reset their locks


def _reset_locks_after_fork() -> None:
    """A forked child has one thread: locks (and fit/evaluate claims) held by the parent's other threads at the
    fork would never be released there, so every model gets fresh ones."""
    for trainer in list(_TRAINERS):
        trainer._init_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_after_fork)


class Trainer:
    def _init_locks(self) -> None:
        self._step_lock = threading.RLock()  # held around each train step and each inference batch
        self._metrics_free = threading.Condition(self._step_lock)
        self._metrics_owner = None  # [thread, depth]: the fit/evaluate updating the model's own metrics
        self._fit_thread = None  # the thread running fit(), if any
        _TRAINERS.add(self)

    def _init_trainer(self) -> None:
        self._init_locks()
        self._compiled_trainable = None  # the trainable set, captured at the first train step after compile
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._compile_loss = None
        self._compile_metrics = None
        self._loss_tracker = None

    # --- compile ---------------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", **kwargs):
        if loss is None:
            raise ValueError(f"Model '{self.name}': compile() needs a `loss`")
        names = self.output_names if self._plan is not None else ["output"]
        self.optimizer = optimizers_module.get(optimizer)
        self._compile_loss = CompileLoss(loss, loss_weights, names)
        self._compile_metrics = CompileMetrics(metrics, names, weighted_metrics)
        self.loss = self._compile_loss.losses[0] if len(names) == 1 and not isinstance(loss, (list, dict)) else loss
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.compiled = True
        self._compiled_trainable = None  # Keras: `trainable` changes take effect at (re)compile

    def _assert_compiled(self, method: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"You must call `compile()` before using the model (called `{method}` on "
                               f"model '{self.name}').")

    @property
    def compile_spec(self) -> dict:
        """The loss, loss weights and metrics as given to `compile` (what the saved compile config holds)."""
        return {"loss": self._compile_loss.spec, "loss_weights": self._compile_loss.weights_spec,
                "metrics": self._compile_metrics.spec, "weighted_metrics": self._compile_metrics.weighted_spec}

    @property
    def metrics(self) -> list:
        """The loss tracker and the compiled metrics (built at the first batch), like Keras's `model.metrics`."""
        if not self.compiled:
            return []
        return [self._loss_tracker] + list(self._compile_metrics.loss_trackers or ()) + self._compile_metrics.all()

    @property
    def metrics_names(self) -> list:
        return [m.name for m in self.metrics]

    def _trainable_variables(self) -> tuple:
        """(variables, their ids) the optimizer updates. Like Keras, the set is captured once after `compile`
        (at the first training step): changing `trainable` later only takes effect after compiling again."""
        if self._compiled_trainable is None:
            variables = list(self.trainable_weights)
            ids = frozenset(id(v) for v in variables)
            executor.check_differentiable(self._plan, passes.variant(self._plan), ids)
            self._compiled_trainable = (variables, ids)
        return self._compiled_trainable

    def _targets(self, y, compile_metrics) -> list:
        if y is None:
            raise ValueError(f"Model '{self.name}': training and evaluation need targets `y`")
        flat = self._flatten_data(y, self._outputs_struct, self.output_names, "output")
        if compile_metrics.metrics is None:  # 'accuracy' is resolved from the first batch's shapes
            compile_metrics.build([np.shape(t) for t in flat], [t.shape for t in self.outputs])
        return self._compile_loss.prepare_targets(flat, [t.shape for t in self.outputs],
                                                  where=f"Model '{self.name}': ")

    def _output_plan(self, training: bool):
        """(steps to run, per output: fused with the loss?, final activation name), per plan and setting."""
        plan = self._plan
        split = self._compile_loss.fused_slots(plan)
        steps = passes.variant(plan, split, inference=not training)
        key = (id(plan), id(steps))
        cached = getattr(self, "_output_plan_cache", None)
        if cached is None or cached[0] != key:
            fused = [s in split for s in plan.output_slots]
            acts = [None if plan.steps[s] is None else plan.steps[s].layer.output_activation_name
                    for s in plan.output_slots]
            cached = self._output_plan_cache = (key, (steps, fused, acts))
        return cached[1]

    @contextlib.contextmanager
    def _metric_state(self, wait: bool):
        """Yield the (loss tracker, compiled metrics) a fit/evaluate updates: the model's own, claimed for the
        whole call (re-entrantly: fit's validation, an evaluate from a callback), or, when another thread holds
        them, a private copy (`wait=False`, evaluate) or the model's own once that thread is done (fit)."""
        me = threading.current_thread()
        with self._metrics_free:
            owner = self._metrics_owner
            private = owner is not None and owner[0] is not me and not wait
            if private:
                state = copy.deepcopy((self._loss_tracker, self._compile_metrics))
            else:
                self._metrics_free.wait_for(lambda: self._metrics_owner is None or self._metrics_owner[0] is me)
                if self._metrics_owner is None:
                    self._metrics_owner = [me, 0]
                self._metrics_owner[1] += 1
        if private:
            self._reset_metrics(state)
            yield state
            return
        try:
            yield None
        finally:
            with self._metrics_free:
                self._metrics_owner[1] -= 1
                if not self._metrics_owner[1]:
                    self._metrics_owner = None
                    self._metrics_free.notify_all()

    def _sample_weights(self, sample_weight, n: int) -> list | None:
        """The batch's sample weights per output (one array for all outputs, or one per output)."""
        if sample_weight is None:
            return None
        names = self.output_names
        if isinstance(sample_weight, dict) or (isinstance(sample_weight, (list, tuple)) and len(names) > 1):
            flat = self._flatten_data(sample_weight, self._outputs_struct, names, "sample_weight")
        else:
            flat = [sample_weight] * len(names)
        out = []
        for sw in flat:
            if sw is None:
                out.append(None)
                continue
            sw = np.asarray(sw, np.float32)
            if sw.ndim == 0 or sw.shape[0] != n:
                raise ValueError(f"Model '{self.name}': sample weights must have one entry per sample ({n}), got "
                                 f"shape {sw.shape}")
            out.append(sw)
        return out

    def _regularized(self) -> list:
        """The trainable variables with a regularizer (their penalties join the loss, as Keras's `model.losses`)."""
        return [v for v in self.trainable_weights if v.regularizer is not None]

    @property
    def losses(self) -> list:
        """The weight-regularization penalties of the trainable weights, like Keras's `model.losses`."""
        return [float(v.regularizer(v.value)) for v in self._regularized()]

    def _step(self, x, y, training: bool, state=None, sample_weight=None, sync=None, share=1.0):
        with self._step_lock:
            self._locked_step(x, y, training, state or (self._loss_tracker, self._compile_metrics), sample_weight,
                              sync, share)

    def _locked_step(self, x, y, training: bool, state, sample_weight=None, sync=None, share=1.0):
        """One batch. With a `sync` (data-parallel fit over several ranks, see rconv.distribution) the batch is
        this rank's slice, `share` its fraction of the global batch: the loss gradient is scaled by it, and the
        weight gradients and metric changes are summed over the ranks before the (identical) update."""
        loss_tracker, compile_metrics = state
        if sync is not None and not share:  # a global batch smaller than the number of ranks: no rows here
            weight_grads = sync.idle_step(self, training, state)
            if training:
                self._apply_gradients(weight_grads, *self._trainable_variables(), self._regularized())
            return
        xs = self._prepare_inputs(x)
        plan = self._plan
        steps, fused, acts = self._output_plan(training)
        ys = self._targets(y, compile_metrics)
        for t in ys:
            if t is not None and len(t) != len(xs[0]):
                raise ValueError(f"Model '{self.name}': x and y must have the same number of samples, got x with "
                                 f"shape {xs[0].shape} and y with shape {t.shape}")
        n = len(xs[0])
        sws = self._sample_weights(sample_weight, n)
        if sync is not None:
            if training:
                sync.first_step(self)
            snapshot = sync.snapshot([loss_tracker, *(compile_metrics.loss_trackers or ()), *compile_metrics.all()])
        with contextlib.nullcontext() if sync is None else sync.sharded():  # random layers: this rank's rows
            outs, tape = executor.forward(plan, steps, xs, training=training)
        total, values, grads = self._compile_loss(ys, outs, fused, sws)
        if sync is not None and training:  # the loss is a mean over the global batch
            grads = [None if g is None else g * np.float32(share) for g in grads]
        regularized = self._regularized()
        total += tape.penalty + sum(float(v.regularizer(v.value)) for v in regularized)
        if training:
            variables, ids = self._trainable_variables()
            _, weight_grads = executor.backward(plan, tape, grads, ids, need_input_grad=False)
        loss_tracker.update_state(total, sample_weight=n)
        compile_metrics.update(ys, outs, fused, acts, values, n, sws)
        if sync is not None:
            weight_grads = sync.reduce([weight_grads.get(id(v)) for v in variables] if training else [], snapshot)
            weight_grads = dict(zip(map(id, variables), weight_grads)) if training else None
        if training:
            self._apply_gradients(weight_grads, variables, ids, regularized)

    def _apply_gradients(self, weight_grads: dict, variables, ids, regularized) -> None:
        """The optimizer update from the loss gradients `{id(variable): gradient}` plus the regularizers'."""
        for v in regularized:
            if id(v) in ids:
                g, extra = weight_grads.get(id(v)), v.regularizer.gradient(v.value)
                weight_grads[id(v)] = extra if g is None else g + extra
        self.optimizer.apply([weight_grads.get(id(v)) for v in variables], variables)

    def _reset_metrics(self, state=None) -> None:
        loss_tracker, compile_metrics = state or (self._loss_tracker, self._compile_metrics)
        loss_tracker.reset_state()
        compile_metrics.reset()

    def _logs(self, prefix: str = "", state=None) -> dict:
        loss_tracker, compile_metrics = state or (self._loss_tracker, self._compile_metrics)
        logs = {"loss": loss_tracker.result(), **compile_metrics.results()}
        # Keras 3 sorts log keys; metrics with several values (F1Score(average=None), Precision at several
        # thresholds) stay arrays, as in Keras
        return {prefix + k: float(v) if np.size(v) == 1 else np.asarray(v, np.float64) for k, v in sorted(logs.items())}

    def _run_batch(self, batch, training: bool, state=None, sync=None) -> None:
        if sync is None:
            x, y, sample_weight = batch
            self._step(x, y, training=training, state=state, sample_weight=sample_weight)
        else:
            x, y, sample_weight, share = sync.shard(batch)
            self._step(x, y, training=training, state=state, sample_weight=sample_weight, sync=sync, share=share)

    # --- fit -------------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1):
        self._assert_compiled("fit")
        where = f"Model '{self.name}': fit()"
        for name, value in (("batch_size", batch_size), ("steps_per_epoch", steps_per_epoch),
                            ("validation_steps", validation_steps),
                            ("validation_batch_size", validation_batch_size)):
            _check_int(value, name, where, allow_none=True)
        _check_int(epochs, "epochs", where, minimum=0)
        _check_int(initial_epoch, "initial_epoch", where, minimum=0)
        _check_int(validation_freq, "validation_freq", where)
        with self._step_lock:
            if self._fit_thread is not None:
                raise RuntimeError(f"{where} is already running (in thread '{self._fit_thread.name}'); a model "
                                   "trains one fit() at a time")
            self._fit_thread = threading.current_thread()
        sync = distribution_module.training_sync()  # None on the single-process path
        try:
            with self._metric_state(wait=True), contextlib.nullcontext() if sync is None else sync.guard():
                return self._fit(x, y, batch_size, epochs, verbose, callbacks, validation_split,
                                 validation_data, shuffle, initial_epoch, steps_per_epoch, validation_steps,
                                 validation_batch_size, validation_freq, class_weight, sample_weight, sync)
        finally:
            self._fit_thread = None

    def _fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data, shuffle,
             initial_epoch, steps_per_epoch, validation_steps, validation_batch_size, validation_freq,
             class_weight=None, sample_weight=None, sync=None):
        verbose = 1 if verbose == "auto" else int(verbose)
        if sync is not None and sync.rank != 0:
            verbose = 0  # rank 0 prints the progress bar
        if validation_split and validation_data is None:
            (x, y, sample_weight), validation_data = train_validation_split((x, y, sample_weight), validation_split)
        _require_steps(x, steps_per_epoch, "steps_per_epoch")
        shard = None if sync is None else (sync.rank, sync.size)  # decode only this rank's rows when possible
        iterator = EpochIterator(x, y, sample_weight, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                                 shuffle=shuffle, class_weight=class_weight, shard=shard)
        val_iterator = None
        if validation_data is not None:
            val_x, val_y, val_sw = _unpack_validation(validation_data)
            _require_steps(val_x, validation_steps, "validation_steps")
            val_iterator = EpochIterator(val_x, val_y, val_sw, batch_size=validation_batch_size or batch_size,
                                         steps_per_epoch=validation_steps, training=False, shard=shard)
        if sync is not None:
            sync.begin_fit(iterator, val_iterator, batch_size, epochs, initial_epoch)
        cbs = callbacks_module.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                                            verbose=verbose, epochs=epochs, steps=iterator.num_batches, mode="train")
        self.stop_training = False
        cbs.on_train_begin()
        logs = {}
        epochs_ = iterator.epochs(initial_epoch, epochs)
        for epoch in epochs_ if sync is None else sync.checked(epochs_, iterator, "epochs"):
            self._reset_metrics()
            cbs.on_epoch_begin(epoch)
            batches = iterator.enumerate_epoch()
            for step, batch in batches if sync is None else sync.checked(batches, iterator, "batches"):
                cbs.on_train_batch_begin(step)
                self._run_batch(batch, training=True, sync=sync)
                cbs.on_train_batch_end(step, self._logs())
                if sync is not None:
                    self.stop_training = sync.any(self.stop_training)
                if self.stop_training:
                    break
            logs = self._logs()
            if val_iterator is not None and (epoch + 1) % validation_freq == 0:
                val = self._evaluate_iterator(val_iterator, cbs, sync=sync)
                logs.update({"val_" + k: v for k, v in val.items()})
            cbs.on_epoch_end(epoch, logs)
            if sync is not None:
                self.stop_training = sync.any(self.stop_training)
            if self.stop_training:
                break
        if epochs > initial_epoch:  # Keras: moving-average weights (use_ema) replace the weights at the end
            with self._step_lock:
                self.optimizer.finalize_variable_values(self.trainable_weights)
        cbs.on_train_end(logs)
        return cbs.history

    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, validation_freq=1, class_weight=None,
                      max_queue_size=10, workers=1, use_multiprocessing=False, shuffle=True, initial_epoch=0):
        """Keras 2's deprecated spelling of `fit(generator, ...)`."""
        warnings.warn("`Model.fit_generator` is deprecated and will be removed in a future version. Please use "
                      "`Model.fit`, which supports generators.", DeprecationWarning, stacklevel=2)
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data, validation_steps=validation_steps,
                        validation_freq=validation_freq, class_weight=class_weight, shuffle=shuffle,
                        initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                           use_multiprocessing=False, verbose=0):
        """Keras 2's deprecated spelling of `evaluate(generator, ...)`."""
        warnings.warn("`Model.evaluate_generator` is deprecated and will be removed in a future version. "
                      "Please use `Model.evaluate`, which supports generators.", DeprecationWarning, stacklevel=2)
        return self.evaluate(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    def predict_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                          use_multiprocessing=False, verbose=0):
        """Keras 2's deprecated spelling of `predict(generator, ...)`."""
        warnings.warn("`Model.predict_generator` is deprecated and will be removed in a future version. "
                      "Please use `Model.predict`, which supports generators.", DeprecationWarning, stacklevel=2)
        return self.predict(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    # --- evaluate / predict --------------------------------------------------------------------------
    def _evaluate_iterator(self, iterator, cbs, state=None, sync=None) -> dict:
        self._reset_metrics(state)
        cbs.on_test_begin()
        batches = iterator.enumerate_epoch()
        for step, batch in batches if sync is None else sync.checked(batches, iterator, "batches"):
            cbs.on_test_batch_begin(step)
            self._run_batch(batch, training=False, state=state, sync=sync)
            cbs.on_test_batch_end(step, self._logs(state=state))
        logs = self._logs(state=state)
        cbs.on_test_end(logs)
        return logs

    def _result(self, logs: dict, return_dict: bool):
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names if name in logs]
        return values[0] if len(values) == 1 else values

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        self._assert_compiled("evaluate")
        where = f"Model '{self.name}': evaluate()"
        _check_int(batch_size, "batch_size", where, allow_none=True)
        _check_int(steps, "steps", where, allow_none=True)
        verbose = 1 if verbose == "auto" else int(verbose)
        sync = distribution_module.training_sync()  # data-parallel: each rank evaluates its slices
        if sync is not None and sync.rank != 0:
            verbose = 0
        iterator = EpochIterator(x, y, sample_weight, batch_size=batch_size, steps_per_epoch=steps, training=False,
                                 shard=None if sync is None else (sync.rank, sync.size))
        cbs = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                            epochs=1, steps=iterator.num_batches, mode="test")
        with self._metric_state(wait=False) as state, contextlib.nullcontext() if sync is None else sync.guard():
            return self._result(self._evaluate_iterator(iterator, cbs, state, sync), return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        where = f"Model '{self.name}': predict()"
        _check_int(batch_size, "batch_size", where, allow_none=True)
        _check_int(steps, "steps", where, allow_none=True)
        verbose = 1 if verbose == "auto" else int(verbose)
        iterator = EpochIterator(x, None, batch_size=batch_size, steps_per_epoch=steps, training=False)
        cbs = callbacks_module.CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose,
                                            epochs=1, steps=iterator.num_batches, mode="predict")
        cbs.on_predict_begin()
        outputs = None
        for step, batch in iterator.enumerate_epoch():
            cbs.on_predict_batch_begin(step)
            outs = self._infer(batch[0])
            if outputs is None:
                outputs = [[] for _ in outs]
            for acc, out in zip(outputs, outs):
                acc.append(out)
            cbs.on_predict_batch_end(step, {"outputs": self._pack(outs, self._outputs_struct)})
        cbs.on_predict_end()
        if outputs is None:
            if self._plan is None:
                raise ValueError(f"Model '{self.name}': predict() got no batches from its input, so the output "
                                 "shape is unknown")
            outputs = [[np.empty((0,) + tuple(t.shape[1:]), np.float32)] for t in self.outputs]
        return self._pack([np.concatenate(acc) for acc in outputs], self._outputs_struct)

    # --- single batches --------------------------------------------------------------------------------
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._assert_compiled("train_on_batch")
        self._reset_metrics()
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError("You cannot specify `class_weight` and `sample_weight` at the same time.")
            sample_weight = class_weight_to_sample_weights(y, class_weight)
        self._step(x, y, training=True, sample_weight=sample_weight)
        return self._result(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._assert_compiled("test_on_batch")
        self._reset_metrics()
        self._step(x, y, training=False, sample_weight=sample_weight)
        return self._result(self._logs(), return_dict)

    def predict_on_batch(self, x):
        return self._pack(self._infer(x), self._outputs_struct)

    def _infer(self, x) -> list:
        """One inference forward under the step lock; the outputs are copies (the executor may reuse buffers,
        and a training step may run as soon as the lock is released)."""
        with self._step_lock:
            xs = self._prepare_inputs(x)
            outs, _ = executor.forward(self._plan, passes.variant(self._plan, inference=True), xs, training=False)
            return [np.array(out, np.float32) for out in outs]
