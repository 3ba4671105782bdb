"""predict/evaluate from another thread while `fit` runs (issue 12, part 6).

Every loop is bounded (a step count and a join timeout), so a deadlock fails the test instead of hanging it.
"""
from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest

import rconv
from rconv import layers

JOIN_TIMEOUT = 120


def _model(optimizer="adam"):
    rconv.utils.set_random_seed(3)
    m = rconv.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3, activation="relu"), layers.Flatten(),
                          layers.Dense(4, activation="softmax")])
    m.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _data(n=64):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 6, 6, 2)).astype(np.float32), rng.integers(0, 4, n)


class _Looper(threading.Thread):
    """Calls `fn` until `stop` is set or `max_calls` calls were made; keeps the results and any exception."""

    def __init__(self, fn, stop, max_calls=2000):
        super().__init__(daemon=True)
        self.fn, self.stop, self.max_calls = fn, stop, max_calls
        self.results, self.error = [], None
        self.started_calls = threading.Event()

    def run(self):
        try:
            for _ in range(self.max_calls):
                self.results.append(self.fn())
                self.started_calls.set()
                if self.stop.is_set():
                    break
        except BaseException as e:  # reported by the test
            self.error = e
        finally:
            self.started_calls.set()


def _fit_with(m, fn, callbacks=(), **fit_kwargs):
    """Run `m.fit` while another thread loops `fn`; returns (history, the looper)."""
    x, y = _data()
    stop = threading.Event()
    looper = _Looper(fn, stop)
    looper.start()
    assert looper.started_calls.wait(JOIN_TIMEOUT)
    try:
        history = m.fit(x, y, batch_size=8, shuffle=False, verbose=0, callbacks=list(callbacks), **fit_kwargs)
    finally:
        stop.set()
        looper.join(JOIN_TIMEOUT)
    assert not looper.is_alive(), "the concurrent thread did not finish (deadlock?)"
    if looper.error is not None:
        raise looper.error
    return history, looper


class _Snapshots(rconv.callbacks.Callback):
    """The model's weights after every training step (each a state a concurrent predict may see)."""

    def __init__(self, model):
        super().__init__()
        self.states = [model.get_weights()]

    def on_train_batch_end(self, batch, logs=None):
        self.states.append(self.model.get_weights())


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_predict_during_fit_sees_whole_steps(optimizer):
    """A predict loop during fit neither breaks the optimizer update ("'param' must be a writeable array not
    borrowed elsewhere") nor sees a torn mix: every output equals the output of one step's weights."""
    m = _model(optimizer)
    probe = _data(5)[0]
    snapshots = _Snapshots(m)
    _, looper = _fit_with(m, lambda: m.predict(probe, verbose=0), callbacks=[snapshots], epochs=3)
    assert len(looper.results) >= 2
    reference = _model(optimizer)
    allowed = set()
    for state in snapshots.states:
        reference.set_weights(state)
        allowed.add(reference.predict(probe, verbose=0).tobytes())
    assert len(allowed) > 1  # the weights moved, so the check can fail
    torn = [i for i, out in enumerate(looper.results) if out.tobytes() not in allowed]
    assert not torn, f"{len(torn)} of {len(looper.results)} predictions match no step's weights"


def test_predict_on_batch_during_fit():
    m = _model()
    probe = _data(3)[0]
    _, looper = _fit_with(m, lambda: m.predict_on_batch(probe), epochs=2)
    assert all(r.shape == (3, 4) and np.all(np.isfinite(r)) for r in looper.results)


def test_evaluate_during_fit_leaves_fit_metrics_alone():
    """evaluate() from another thread works and keeps its own metric state: fit's history equals the
    history of the same fit without it (fit is deterministic with shuffle=False and a fixed seed)."""
    x, y = _data()
    alone = _model().fit(x, y, batch_size=8, shuffle=False, verbose=0, epochs=2).history
    m = _model()
    history, looper = _fit_with(m, lambda: m.evaluate(x[:16], y[:16], verbose=0, return_dict=True), epochs=2)
    assert history.history == alone
    assert looper.results and all(set(r) == {"loss", "accuracy"} and np.isfinite(r["loss"])
                                  for r in looper.results)


def test_second_concurrent_fit_raises():
    m = _model()
    x, y = _data()
    inside, release = threading.Event(), threading.Event()

    class Hold(rconv.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            inside.set()
            release.wait(JOIN_TIMEOUT)

    errors = []

    def first():
        try:
            m.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[Hold()])
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=first, daemon=True)
    thread.start()
    try:
        assert inside.wait(JOIN_TIMEOUT)
        with pytest.raises(RuntimeError, match=r"fit\(\) is already running"):
            m.fit(x, y, epochs=1, verbose=0)
        assert np.all(np.isfinite(m.predict(x[:2], verbose=0)))  # inference still works meanwhile
    finally:
        release.set()
        thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive() and not errors, errors
    m.fit(x, y, epochs=1, verbose=0)  # the guard is released when fit ends ...


def test_fit_guard_released_after_an_error():
    m = _model()
    x, y = _data()
    with pytest.raises(ValueError):
        m.fit(x, y[:3], epochs=1, verbose=0)  # x and y disagree
    m.fit(x, y, epochs=1, verbose=0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_free_locks():
    """A thread of the parent holds the model's step lock (an inference or training step) at the fork: the
    child, which has no such thread, must still be able to take it."""
    m = _model()
    held, release = threading.Event(), threading.Event()

    def hold():
        with m._step_lock:
            held.set()
            release.wait(JOIN_TIMEOUT)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        assert held.wait(JOIN_TIMEOUT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "fork() in a multi-threaded process"
            pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            os._exit(0 if m._step_lock.acquire(timeout=10) and m._fit_thread is None else 1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the child could not take the model's lock")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        thread.join(JOIN_TIMEOUT)


def test_set_weights_during_fit():
    """set_weights from another thread lands between training steps (the model's step lock)."""
    m = _model()
    fixed = [np.full(w.shape, 0.01, np.float32) for w in m.get_weights()]
    _, looper = _fit_with(m, lambda: m.set_weights(fixed), epochs=2)
    assert looper.results
    m.set_weights(fixed)
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), fixed))


@pytest.mark.parametrize("read", ["get_weights", "save_weights"])
def test_weights_read_during_fit_are_whole_steps(read, tmp_path):
    """get_weights / save_weights from another thread during fit give one step's weights, never a mix."""
    m = _model("adam")
    snapshots = _Snapshots(m)
    path = tmp_path / "w.weights.h5"

    def take():
        if read == "get_weights":
            return m.get_weights()
        m.save_weights(path)
        probe = _model("adam")
        probe.load_weights(path)
        return probe.get_weights()

    _, looper = _fit_with(m, take, callbacks=[snapshots], epochs=2)
    allowed = {b"".join(w.tobytes() for w in state) for state in snapshots.states}
    assert len(allowed) > 1
    torn = [i for i, ws in enumerate(looper.results) if b"".join(w.tobytes() for w in ws) not in allowed]
    assert not torn, f"{len(torn)} of {len(looper.results)} weight reads match no step"
