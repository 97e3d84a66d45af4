"""The chunk inference worker: submit and poll never wait for the work (no ROS needed)."""
import threading
import time

from ebgan_mdn_ros.node.chunk_worker import ChunkWorker


def test_submit_and_poll_return_at_once_while_the_work_runs():
    release = threading.Event()
    worker = ChunkWorker(lambda request: (release.wait(5.0), request * 2)[1])
    try:
        start = time.perf_counter()
        assert worker.submit(21)
        assert worker.poll() is None            # working: nothing yet, and no waiting for it
        assert not worker.submit(22)            # busy: refused, not queued
        assert time.perf_counter() - start < 0.05
        release.set()
        deadline = time.monotonic() + 5.0
        result = None
        while result is None and time.monotonic() < deadline:
            result = worker.poll()
            time.sleep(0.001)
        assert result.request == 21 and result.value == 42 and result.error is None
        assert worker.poll() is None and not worker.busy  # handed over once
        assert worker.submit(1)
    finally:
        release.set()
        worker.close()


def test_an_error_in_the_work_is_handed_back_not_raised():
    worker = ChunkWorker(lambda request: 1 / 0)
    try:
        worker.submit(0)
        deadline = time.monotonic() + 5.0
        result = None
        while result is None and time.monotonic() < deadline:
            result = worker.poll()
            time.sleep(0.001)
        assert isinstance(result.error, ZeroDivisionError) and result.value is None
    finally:
        worker.close()
