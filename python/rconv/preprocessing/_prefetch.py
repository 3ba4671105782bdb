"""A bounded background producer: one daemon thread fills a ``queue.Queue`` a few items ahead.

The thread holds only a weak reference to its owner, so an abandoned iterator is garbage-collected
and its thread exits; an ``atexit`` hook stops every live producer and joins it (bounded), so interpreter exit
neither hangs nor finalizes while a producer is inside a kernel.
Exceptions raised while producing are handed to the consumer and re-raised there.
"""
from __future__ import annotations

import atexit
import queue
import threading
import time
import weakref

_live: "weakref.WeakSet[Prefetcher]" = weakref.WeakSet()
_POLL = 0.05  # seconds between checks of the stop event while the queue is full/empty


class _Error:
    __slots__ = ("exc",)

    def __init__(self, exc):
        self.exc = exc


class Prefetcher:
    """Runs ``produce(owner, key)`` for keys ``start, next_key(start), ...`` in a daemon thread.

    ``owner`` is weakly referenced; ``produce`` and ``next_key`` must not keep strong references to it.
    ``get()`` returns the items in key order; at most ``depth`` finished items wait in the queue.
    """

    def __init__(self, owner, produce, next_key, start, depth=3, name="rconv-prefetch"):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(depth)))
        self._stop = threading.Event()
        self._done = False
        ref = weakref.ref(owner)
        self._thread = threading.Thread(target=_run, name=name, daemon=True,
                                        args=(ref, produce, next_key, start, self._queue, self._stop))
        _live.add(self)
        self._thread.start()

    def get(self):
        if self._done:
            raise RuntimeError("this prefetcher was stopped")
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True
                    raise RuntimeError("the prefetch thread died without reporting an error") from None
        if isinstance(item, _Error):
            self.stop()
            raise item.exc
        return item

    def stop(self, join=True, timeout=5.0):
        """Signal the thread, drain the queue so it can leave ``put``, and (by default) join it."""
        self._done = True
        self._stop.set()
        self._drain()
        if join and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._drain()

    def _drain(self):
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __del__(self):
        try:
            self._stop.set()
        except Exception:  # pragma: no cover - interpreter teardown
            pass


def _run(ref, produce, next_key, key, q, stop):
    while not stop.is_set():
        owner = ref()
        if owner is None:
            return
        try:
            item = produce(owner, key)
        except BaseException as exc:  # handed to the consumer
            item = _Error(exc)
        del owner
        while not stop.is_set():
            try:
                q.put(item, timeout=_POLL)
                break
            except queue.Full:
                if ref() is None:
                    return
        if isinstance(item, _Error):
            return
        key = next_key(key)


@atexit.register
def _stop_all(timeout: float = 5.0):
    """Stop every live producer and wait (bounded) until its thread has left any rconv kernel call: a daemon
    thread that returns from a GIL-released kernel while the interpreter finalizes is ended by pthread_exit,
    whose forced unwind through the extension's Rust frames can crash the process at exit."""
    producers = list(_live)
    for p in producers:
        p._done = True
        p._stop.set()
    deadline = time.monotonic() + timeout
    for p in producers:
        p._drain()
        if p._thread.is_alive() and p._thread is not threading.current_thread():
            p._thread.join(max(0.0, deadline - time.monotonic()))
