"""How every node process here starts, stops and fails: one helper for all node mains.

Stopping. rclpy's own signal handlers shut the context down from inside the signal and then raise
KeyboardInterrupt wherever the main thread happens to be: in a timer or subscription callback (a FATAL
"Exception in 'timers' callback" log), in a publish (`RCLError: publisher's context is invalid`), in
spin (a RuntimeError), or in destroy_node (seen hanging until SIGKILL). `ros2 launch` stopped by a
SIGINT to its process group delivers SIGINT twice (the group's and launch's own), which killed every
node with a traceback and exit -2. So rclpy is initialised without its handlers
(SignalHandlerOptions.NO) and SIGINT/SIGTERM only set an Event; the executor spins with a timeout
until it is set and the teardown then runs in order (executor, nodes, context) with nothing
interrupting it. Further signals set the same Event, and once the teardown is done they are ignored
outright until the process has exited: a second SIGINT is harmless at any point.

Failing. A configuration the node cannot run with (a missing or malformed --params-file, a file
without `ros__parameters`, a mixed-type list, a bad value or model: whatever ``startup_errors``
names) is one line on stderr naming the problem and exit 2, never a traceback.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.signals import SignalHandlerOptions

from ebgan_mdn_ros.node.executors import make_executor, spin

try:
    from rclpy.exceptions import RCLError  # newer rclpy re-exports it
except ImportError:
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
    RCLError = _rclpy.RCLError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_OK, EXIT_CONFIG = 0, 2
EXECUTOR_SHUTDOWN_S = 0.5  # s; the executor waits for running callbacks at most this long
TEARDOWN_LIMIT_S = 1.5     # s; a teardown still not done by then is abandoned (the process must end)
# Errors rclpy raises for a bad command line or parameter (rcl's params-file parser, declare_parameter).
ROS_CONFIG_ERRORS: tuple[type[BaseException], ...] = (RCLError, ParameterException)


class StopSignals:
    """SIGINT and SIGTERM set ``event`` instead of raising; ``restore()`` puts the previous handlers back.

    A node process keeps them through its teardown and then ignores the signals (``ignore``) until it
    has exited, so a second signal during or after the teardown is ignored too.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous = {}
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number, _frame) -> None:
        # Runs in the main thread between bytecodes (possibly inside a callback): never raise here.
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    def ignore(self) -> None:
        """SIG_IGN from now on: for the end of a node process. Python's finalization resets a Python-level
        handler to SIG_DFL (so a second SIGINT then killed the process, exit -2), but leaves SIG_IGN."""
        for number in STOP_SIGNALS:
            signal.signal(number, signal.SIG_IGN)

    def restore(self) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}


def init(argv: Sequence[str] | None = None, context=None) -> None:
    """rclpy.init without rclpy's signal handlers (StopSignals handles SIGINT and SIGTERM).

    rcl logs "Failed to parse global arguments" on stderr before it raises for a bad --params-file; the
    caller prints the one line that says which file and why, so that log is dropped (anything else rcl
    writes during init is passed on).
    """
    with _StderrCaptured() as captured:
        try:
            rclpy.init(args=None if argv is None else list(argv), context=context,
                       signal_handler_options=SignalHandlerOptions.NO)
        except RCLError:
            captured.drop(RCL_ARGUMENT_LOG)
            raise


RCL_ARGUMENT_LOG = "Failed to parse global arguments"


class _StderrCaptured:
    """File descriptor 2 goes to a temporary file for the block (rcl writes there, not to sys.stderr);
    on exit what was written is passed on, less the lines asked to be dropped."""

    def __enter__(self):
        self._dropped: list[str] = []
        self._saved = None
        try:
            sys.stderr.flush()
            self._file = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._file.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded, or a closed stream)
            if self._saved is not None:
                os.close(self._saved)
            self._saved = None
        return self

    def drop(self, text: str) -> None:
        self._dropped.append(text)

    def __exit__(self, *exc) -> None:
        if self._saved is None:
            return
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        lines = self._file.read().decode(errors="replace").splitlines(keepends=True)
        self._file.close()
        kept = "".join(line for line in lines if not any(text in line for text in self._dropped))
        if kept:
            os.write(2, kept.encode())


def config_error_text(exc: BaseException, argv: Sequence[str] | None = None) -> str:
    """One line for a configuration error: the params file (when rcl names one) and the problem."""
    if not isinstance(exc, ROS_CONFIG_ERRORS):
        return str(exc)  # our own errors (ConfigError, ModelRejected, ...) already say what and where
    text = " ".join(str(exc).split())
    match = re.search(r"Couldn't parse params file: '--params-file (.*?)'\. Error: (.*)", text)
    if match:
        path, problem = match.groups()
        missing = "" if os.path.exists(path) else "no such file: "
        return f"parameter file {path}: {missing}{_strip_source_locations(problem)}"
    text = _strip_source_locations(text.removeprefix("failed to initialize rcl: "))
    files = _params_files(sys.argv if argv is None else argv)
    if isinstance(exc, ParameterException) and files:
        return f"{text} (parameter files: {', '.join(files)})"
    return text or type(exc).__name__


def _strip_source_locations(text: str) -> str:
    # rcl appends ", at /project/src/parse.c:776, at /project/src/rcl/arguments.c:415": its own source lines
    return re.sub(r"(,? at \S+:\d+)+\s*$", "", text).strip().rstrip(",")


def _params_files(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--params-file"]


def fail(name: str, message: str) -> int:
    print(f"[{name}] start-up failed: {message}", file=sys.stderr, flush=True)
    return EXIT_CONFIG


def run_nodes(name: str, build: Callable[[], Any], argv: Sequence[str] | None = None, *,
              executor: str | Callable[[list], str] = "events",
              startup_errors: tuple[type[BaseException], ...] = (),
              on_stop: Callable[[list], None] | None = None,
              done: Callable[[list], bool] | None = None) -> int:
    """Run a node process: init, ``build()`` its node(s), spin until SIGINT/SIGTERM, tear down; an exit code.

    ``build`` returns a Node or a list of them. ``executor`` is a kind for make_executor, or a function of
    the nodes that picks one (the policy node's comes from its parameters). ``startup_errors`` are the
    exceptions that mean "this configuration cannot run" (exit 2 with one line), in addition to rclpy's
    own for a bad params file or parameter. ``on_stop(nodes)`` runs after spinning, before the nodes are
    destroyed (the goal source prints its summary). ``done(nodes)`` ends the spin as a signal would (a
    goal source that has run its episodes). ``argv=None`` is the process's own command line: the
    signals are then ignored from the end of the teardown until exit; an explicit argv is an in-process
    call and gets the caller's handlers back.
    """
    signals = StopSignals()
    nodes: list = []
    try:
        try:
            init(argv)
            built = build()
            nodes = list(built) if isinstance(built, (list, tuple)) else [built]
        except ROS_CONFIG_ERRORS + tuple(startup_errors) as exc:
            # Nothing was commanded and nothing is half-started: the reason, and a code launch reports.
            code = fail(name, config_error_text(exc, argv))
            _teardown(name, None, nodes, watchdog=argv is None, exit_code=code)
            return code
        kind = executor(nodes) if callable(executor) else executor
        spinner = make_executor(kind)
        for node in nodes:
            spinner.add_node(node)
        try:
            spin(spinner, signals.is_set if done is None else lambda: signals.is_set() or done(nodes))
        finally:
            if on_stop is not None:
                on_stop(nodes)
            _teardown(name, spinner, nodes, watchdog=argv is None)
        return EXIT_OK
    finally:
        if argv is None:
            signals.ignore()
        else:
            signals.restore()


def _teardown(name: str, executor, nodes: list, watchdog: bool = True, exit_code: int = EXIT_OK) -> None:
    """Executor, then nodes, then the context; in a process (``watchdog``) in at most TEARDOWN_LIMIT_S:
    a teardown still running then (destroy_node was seen to hang) is abandoned and the process ends."""
    done = threading.Event()

    def end_process() -> None:
        if not done.wait(TEARDOWN_LIMIT_S):
            # os.write: the stuck main thread may hold the sys.stderr lock.
            os.write(2, f"[{name}] shutdown did not finish within {TEARDOWN_LIMIT_S} s; exiting without it\n"
                     .encode())
            os._exit(exit_code)  # the stop was asked for (or start-up failed) and nothing spins any more

    if watchdog:
        threading.Thread(target=end_process, name="teardown-watchdog", daemon=True).start()
    try:
        if executor is not None:
            for node in nodes:
                executor.remove_node(node)
            executor.shutdown(timeout_sec=EXECUTOR_SHUTDOWN_S)
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
    finally:
        done.set()
