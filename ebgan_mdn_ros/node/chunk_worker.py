"""One background thread that runs chunk inference, so the control callback never waits for it.

The executor thread `submit`s a request and `poll`s for the answer on later ticks; neither call
blocks (a request while one is in flight is refused, not queued: the node asks again when the
worker is free, with a fresher state). onnxruntime releases the GIL while it runs, so the executor
keeps its timer. The thread is a daemon and `close` joins it briefly: a stuck inference cannot
keep the process alive at shutdown.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, NamedTuple


class WorkerResult(NamedTuple):
    request: Any
    value: Any               # what the function returned (None on error)
    error: BaseException | None
    seconds: float           # wall time of the call


class ChunkWorker:
    def __init__(self, work: Callable[[Any], Any], name: str = "chunk_inference"):
        self._work = work
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pending: Any = None
        self._result: WorkerResult | None = None
        self._busy = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        """A request is in flight or its answer has not been polled yet."""
        return self._busy

    def submit(self, request: Any) -> bool:
        """Hand ``request`` to the worker; False (and nothing done) if it is busy."""
        with self._lock:
            if self._busy or self._closing:
                return False
            self._busy, self._pending = True, request
        self._wake.set()
        return True

    def poll(self) -> WorkerResult | None:
        """The finished answer, once; None while working or idle."""
        with self._lock:
            result, self._result = self._result, None
            if result is not None:
                self._busy = False
            return result

    def close(self, timeout_s: float = 1.0) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            with self._lock:
                request, self._pending = self._pending, None
            if request is None:
                continue
            start = time.perf_counter()
            try:
                value, error = self._work(request), None
            except Exception as exc:  # reported to the executor thread, which logs and counts it
                value, error = None, exc
            with self._lock:
                self._result = WorkerResult(request, value, error, time.perf_counter() - start)
