"""Hot-swap of the serving model: load and validate off the control path, swap between ticks, roll back.

ROS-free. One background worker thread does all slow work: `load_fn(model_dir)` builds a runtime,
`validate_fn(runtime)` raises with a reason if it must not serve. The control loop calls `poll()`
between ticks; it only swaps references (O(1), no I/O, no session construction or destruction).
Runtimes that leave service are handed back to the worker to be dropped there, so an onnxruntime
session is never destroyed on the control path.

Concurrency policy: one request at a time. A `request` while another is loading, validating, or
waiting for `poll` is REFUSED (returns False, nothing is queued, `last_result` is unchanged); ask again
after the pending one finished. A failed load or validation keeps the old model serving.

`last_result` is one of "loaded", "swapped", "rolled_back", "rejected: <reason>".
One previous model is kept for `rollback()`; rolling back twice returns to the newer model.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

SWAPPED = "swapped"
REJECTED = "rejected"
ROLLED_BACK = "rolled_back"
LOADED = "loaded"

_DROP = object()   # worker job: free the retired runtimes

LoadFn = Callable[[str], Any]
ValidateFn = Callable[[Any], None]


class ModelRejected(ValueError):
    """A model failed validation; the message is the reason."""


@dataclass(frozen=True)
class SwapEvent:
    """What happened to a request (from `poll`) or a rollback.

    kind: "swapped", "rejected" or "rolled_back".
    model_dir: the directory now serving (swapped / rolled_back) or the one refused (rejected).
    reason: why a model was rejected ("" otherwise).
    runtime: the runtime now serving (the old one when rejected).
    prepare_seconds: load + validation time on the worker (0 for rollbacks).
    """
    kind: str
    model_dir: str
    reason: str = ""
    runtime: Any = None
    prepare_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind != REJECTED

    @property
    def result(self) -> str:
        return f"{REJECTED}: {self.reason}" if self.kind == REJECTED else self.kind


def _reason(stage: str, exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{stage} failed: {text}"


class ModelSwapper:
    """Serve one runtime, prepare the next in the background, swap between control ticks."""

    def __init__(self, load_fn: LoadFn, validate_fn: ValidateFn | None = None):
        self._load_fn = load_fn
        self._validate_fn = validate_fn
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()   # a model_dir to prepare, _DROP, or None (stop)
        self._retired: list = []   # runtimes out of service, dropped by the worker
        self._worker: threading.Thread | None = None
        self._busy = False
        self._ready: SwapEvent | None = None   # finished request waiting for poll()
        self.active: Any = None
        self.active_dir: str = ""
        self.previous: Any = None
        self.previous_dir: str = ""
        self.last_result: str = ""
        self.refused = 0

    # -- start-up (not the control path) -------------------------------------------------------
    def load_initial(self, model_dir: str) -> Any:
        """Load and validate synchronously (configure / start-up); raises ModelRejected on failure."""
        try:
            runtime = self._load_fn(str(model_dir))
        except Exception as exc:  # noqa: BLE001 - any load error is a rejection with its reason
            self.last_result = f"{REJECTED}: {_reason('load', exc)}"
            raise ModelRejected(_reason("load", exc)) from exc
        try:
            if self._validate_fn is not None:
                self._validate_fn(runtime)
        except Exception as exc:  # noqa: BLE001
            self.last_result = f"{REJECTED}: {_reason('validation', exc)}"
            raise ModelRejected(_reason("validation", exc)) from exc
        with self._lock:
            retired = self.previous
            self.previous, self.previous_dir = self.active, self.active_dir
            self.active, self.active_dir = runtime, str(model_dir)
            self.last_result = LOADED
        del retired          # the displaced previous model is freed here, outside the lock (start-up, not a tick)
        return runtime

    # -- requests (any thread, e.g. a service callback) ----------------------------------------
    @property
    def busy(self) -> bool:
        """A request is loading, validating, or waiting for poll()."""
        return self._busy

    def request(self, model_dir: str) -> bool:
        """Start loading + validating ``model_dir`` on the worker. False (refused) if one is pending."""
        with self._lock:
            if self._busy:
                self.refused += 1
                return False
            self._busy = True
        self._ensure_worker()
        self._jobs.put(str(model_dir))
        return True

    def wait(self, timeout_s: float) -> bool:
        """Block until the pending request is ready for poll() (tests, tools; never the control loop)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._busy or self._ready is not None:
                return True
            time.sleep(0.002)
        return not self._busy or self._ready is not None

    # -- control path ----------------------------------------------------------------------------
    def poll(self) -> SwapEvent | None:
        """Between ticks: swap a ready validated model in, or report a rejection. O(1); None if nothing."""
        if self._ready is None:       # the common case: one attribute read, no lock
            return None
        with self._lock:
            event, self._ready = self._ready, None
            if event is None:
                return None
            if event.kind == SWAPPED:
                if self.previous is not None:
                    # the worker holds the last reference and frees it, never this (control) thread
                    self._retired.append(self.previous)
                    self._jobs.put(_DROP)
                self.previous, self.previous_dir = self.active, self.active_dir
                self.active, self.active_dir = event.runtime, event.model_dir
            else:
                event = SwapEvent(REJECTED, event.model_dir, event.reason, self.active, event.prepare_seconds)
            self.last_result = event.result
            self._busy = False
        return event

    def rollback(self) -> SwapEvent:
        """Swap the previous model back in (between ticks). Rejected if there is none."""
        with self._lock:
            if self.previous is None:
                self.last_result = f"{REJECTED}: no previous model to roll back to"
                return SwapEvent(REJECTED, self.active_dir, "no previous model to roll back to", self.active)
            self.active, self.previous = self.previous, self.active
            self.active_dir, self.previous_dir = self.previous_dir, self.active_dir
            self.last_result = ROLLED_BACK
            return SwapEvent(ROLLED_BACK, self.active_dir, "", self.active)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker (after its current job)."""
        worker = self._worker
        if worker is not None and worker.is_alive():
            self._jobs.put(None)
            worker.join(timeout_s)
        self._worker = None

    # -- worker ----------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="model_swap", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job is _DROP:
                with self._lock:
                    retired, self._retired = self._retired, []
                # The last references to the retired runtimes: clearing them frees their sessions here,
                # on the worker and outside the lock, so a slow destructor never delays poll().
                retired.clear()
                continue
            self._prepare(job)

    def _prepare(self, model_dir: str) -> None:
        start = time.perf_counter()
        runtime = None
        try:
            runtime = self._load_fn(model_dir)
        except Exception as exc:  # noqa: BLE001
            event = SwapEvent(REJECTED, model_dir, _reason("load", exc), None, time.perf_counter() - start)
        else:
            try:
                if self._validate_fn is not None:
                    self._validate_fn(runtime)
            except Exception as exc:  # noqa: BLE001
                event = SwapEvent(REJECTED, model_dir, _reason("validation", exc), None,
                                  time.perf_counter() - start)
            else:
                event = SwapEvent(SWAPPED, model_dir, "", runtime, time.perf_counter() - start)
        del runtime                  # a rejected runtime dies here, on the worker
        with self._lock:
            self._ready = event


# -- the standard validation of a PolicyRuntime ------------------------------------------------------

def make_runtime_validator(joint_names: Sequence[str], condition_names: Sequence[str] | None = None, *,
                           probe_condition: np.ndarray | Callable[[], np.ndarray] | None = None,
                           probe_count: int = 200, latency_budget_s: float | None = None,
                           latency_percentile: float = 99.0, probe_pause_s: float = 0.0005,
                           action_kind: str | None = None) -> ValidateFn:
    """A validate_fn for a PolicyRuntime about to replace the running one.

    Checks, each failing with ModelRejected naming the values:
      - manifest.action_names == joint_names (the running joint order);
      - manifest.condition_names == condition_names (when given; the running condition layout);
      - manifest.action_kind == action_kind (when given: absolute targets must not become deltas);
      - ``probe_count`` decisions on ``probe_condition`` (an array, or a callable giving e.g. the latest
        measured condition; default: the manifest's condition normalisation mean, else zeros) have a
        finite action of the right size and a finite energy;
      - the ``latency_percentile`` of their inference time (Decision.inference_seconds, else wall time)
        is within ``latency_budget_s`` (when given).
    ``runtime.warmup()`` runs first when the runtime has one. Between probes the worker sleeps
    ``probe_pause_s`` so that the control thread, which shares the GIL and the cores, keeps its timing;
    the measured latency is therefore the latency under the real load, which is what will serve.
    """
    joint_names = tuple(joint_names)
    condition_names = tuple(condition_names) if condition_names is not None else None
    if probe_count < 1:
        raise ValueError(f"probe_count: {probe_count!r} must be >= 1")

    def validate(runtime: Any) -> None:
        manifest = runtime.manifest
        actions = tuple(getattr(manifest, "action_names", ()))
        if actions != joint_names:
            raise ModelRejected(f"joint names differ: model {list(actions)}, running {list(joint_names)}")
        conditions = tuple(getattr(manifest, "condition_names", ()))
        if condition_names is not None and conditions != condition_names:
            raise ModelRejected(f"condition names differ: model {list(conditions)}, running {list(condition_names)}")
        kind = getattr(manifest, "action_kind", None)
        if action_kind is not None and kind != action_kind:
            raise ModelRejected(f"action kind differs: model {kind!r}, running {action_kind!r}")
        default_condition = np.zeros(len(conditions), dtype=np.float32)
        normalization = getattr(manifest, "normalization", None)
        if normalization is not None and len(getattr(normalization, "condition_mean", ())) == len(conditions):
            default_condition = np.asarray(normalization.condition_mean, dtype=np.float32)
        warmup = getattr(runtime, "warmup", None)
        if callable(warmup):
            warmup()
        seconds = np.empty(probe_count)
        # Once this many probes are over the budget, the percentile is over it whatever follows:
        # stop early, so a slow model costs the machine a few probes, not probe_count.
        decisive = probe_count - math.floor(latency_percentile / 100.0 * (probe_count - 1))
        over = 0
        for i in range(probe_count):
            if callable(probe_condition):
                condition = np.asarray(probe_condition(), dtype=np.float32)
            elif probe_condition is not None:
                condition = np.asarray(probe_condition, dtype=np.float32)
            else:
                condition = default_condition
            start = time.perf_counter()
            decision = runtime.decide(condition)
            wall = time.perf_counter() - start
            action = np.asarray(decision.action, dtype=np.float64)
            # a chunk model's action is the whole chunk, flattened: horizon x joints
            if (action.shape != (getattr(manifest, "horizon", 1) * len(joint_names),)
                    or not np.all(np.isfinite(action))):
                raise ModelRejected(f"probe decision {i} has a non-finite or misshapen action: {action.tolist()}")
            energy = getattr(decision, "energy", 0.0)
            # a diffusion model has no energy (NaN by contract): its finite action is the whole check
            if getattr(runtime, "is_diffusion", False):
                energy = 0.0
            if energy is None or not math.isfinite(float(energy)):
                raise ModelRejected(f"probe decision {i} has a non-finite energy: {energy!r}")
            measured = getattr(decision, "inference_seconds", None)
            seconds[i] = float(measured) if measured is not None and math.isfinite(measured) else wall
            if latency_budget_s is not None and seconds[i] > latency_budget_s:
                over += 1
                if over >= decisive:
                    raise ModelRejected(f"p{latency_percentile:g} probe latency is over the budget of "
                                        f"{latency_budget_s * 1e6:.0f} us ({over} of the first {i + 1} probes over it, "
                                        f"slowest {seconds[:i + 1].max() * 1e6:.0f} us)")
            if probe_pause_s > 0:
                time.sleep(probe_pause_s)
        if latency_budget_s is not None:
            slow = float(np.percentile(seconds, latency_percentile))
            if not slow <= latency_budget_s:
                raise ModelRejected(f"p{latency_percentile:g} probe latency {slow * 1e6:.0f} us is over the "
                                    f"budget of {latency_budget_s * 1e6:.0f} us")

    return validate
