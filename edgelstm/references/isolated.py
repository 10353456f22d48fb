"""A reference interpreter in a child process, so that its crash or hang cannot take the caller down.

The interpreters are C++ code: tflite-runtime's optimized kernels segfault on some models under
aarch64 emulation, and a bad model can make any of them loop. `IsolatedReference` runs the
registered adapter (`references.register`) in a child process (`edgelstm.references.child`), talks
to it over its stdin/stdout (pickled requests and numpy outputs), and turns a death of the child into
`ReferenceFailure` ("crashed (signal 11, SIGSEGV) on input 2") and a request that takes longer than
`timeout` seconds into one with status "timed_out" (the child is killed).

A fresh process costs a Python start plus the interpreter's import: 0.2-0.5 s for LiteRT or
TFLite Micro, 5-10 s for TensorFlow's tf.lite. So a child that finished its work cleanly is kept,
idle, for the next `IsolatedReference` of the same reference in this process (a new model replaces
the old one in it); `shutdown()` ends the idle ones, and so does the end of this process.
"""
from __future__ import annotations

import atexit
import os
import pickle
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import errors
from ..errors import EdgeLSTMError, ReferenceFailure, ReferenceUnavailable
from .base import Reference, adapter

DEFAULT_TIMEOUT_S = 120.0  # the largest test-zoo models take a few seconds per input in TensorFlow's tf.lite
_EXIT_GRACE_S = 5.0


def signal_name(number: int) -> str:
    """"SIGSEGV" for 11 (and so on); "unknown signal" for a number this platform does not name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


class _Died(Exception):
    pass


class _Child:
    """One `edgelstm.references.child` process, with a writer and a reader thread so that neither a
    full pipe nor a silent child can block the caller beyond its deadline."""

    def __init__(self, factory: str):
        import edgelstm

        self.factory = factory
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # the child imports this very edgelstm: from a source tree that is on no default path, or from
        # site-packages, which must not be moved ahead of the standard library (as PYTHONPATH would)
        root = str(Path(edgelstm.__file__).resolve().parents[1])
        boot = (f"import sys; root = {root!r}\n"
                "if root not in sys.path: sys.path.insert(0, root)\n"
                "from edgelstm.references.child import main; main()")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", boot], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                                     start_new_session=os.name == "posix")
        self._outbox: queue.Queue = queue.Queue()
        self._inbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._write, daemon=True).start()
        threading.Thread(target=self._read, daemon=True).start()

    def _write(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        while True:
            message = self._outbox.get()
            try:
                if message is None:
                    stdin.close()
                    return
                stdin.write(message)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return  # the child is gone; the reader reports it

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                self._inbox.put(pickle.load(stdout))
        except Exception:  # EOF or a torn message: the child died mid-reply
            self._inbox.put(None)

    def send(self, request: tuple) -> None:
        self._outbox.put(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))

    def receive(self, deadline: Optional[float]) -> tuple:
        """The next reply; _Died if the child ended, queue.Empty once `deadline` (monotonic) passes."""
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        reply = self._inbox.get(timeout=timeout)
        if reply is None:
            raise _Died()
        return reply

    def exit_status(self) -> int:
        try:
            return self.proc.wait(timeout=_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:  # closed its output but lingers: end it
            self.kill()
            return self.proc.returncode

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        tail = [ln.strip() for ln in text.strip().splitlines()[-lines:] if ln.strip()]
        return " | ".join(tail)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                if os.name == "posix":
                    os.killpg(self.proc.pid, signal.SIGKILL)  # and whatever the interpreter started
                else:
                    self.proc.kill()
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait()
        self._close_files()

    def stop(self) -> None:
        """End an idle child: its input closes, it returns from its loop."""
        self._outbox.put(None)
        try:
            self.proc.wait(timeout=_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def _close_files(self) -> None:
        for f in (self.proc.stdout, self._stderr):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass


_idle: dict[str, _Child] = {}
_idle_lock = threading.Lock()


def _take_child(factory: str) -> _Child:
    with _idle_lock:
        child = _idle.pop(factory, None)
    if child is not None and child.proc.poll() is None:
        return child
    return _Child(factory)


def _park_child(child: _Child) -> None:
    with _idle_lock:
        previous = _idle.get(child.factory)
        _idle[child.factory] = child
    if previous is not None:
        previous.stop()


def shutdown() -> None:
    """End the idle reference processes kept for reuse (also done when this process exits)."""
    with _idle_lock:
        children = list(_idle.values())
        _idle.clear()
    for child in children:
        child.stop()


atexit.register(shutdown)


class IsolatedReference(Reference):
    """A registered reference interpreter holding one model in a child process.

    It starts loading the model at construction and returns at once; `ready()` waits for the load.
    `run` is the usual `Reference.run`; `submit` + `result` split it so that the caller can work
    while the child computes. Every request (the load, each run, `tensors`) may take at most
    `timeout` seconds (None: no limit). Errors: `ReferenceUnavailable` when the adapter cannot load
    or run the model (its own message, as in-process), the other edgelstm errors as raised in the
    child, `ReferenceFailure` when the child crashes or times out; after a crash, a time-out or a
    model that does not load, every call raises the same error again. `label` (e.g. "on input 3") goes into failure messages.
    Use it as a context manager, or call `close()`.
    """

    def __init__(self, name: str, model_bytes: bytes, preserve_all_tensors: bool = False,
                 timeout: Optional[float] = DEFAULT_TIMEOUT_S):
        if timeout is not None and not timeout > 0:
            raise EdgeLSTMError(f"the reference time limit must be a positive number of seconds, got {timeout}")
        entry = adapter(name)
        self.name, self.version, self.timeout = name, "", timeout
        self._failure: Optional[EdgeLSTMError] = None  # what every further call raises
        self._loaded = False
        self._calls = 0
        self._child: Optional[_Child] = _take_child(entry.factory)
        self._pending: Optional[tuple[float, str]] = None
        self._request(("load", entry.factory, bytes(model_bytes), preserve_all_tensors, list(sys.path)),
                      "while loading the model")

    def __enter__(self) -> "IsolatedReference":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _request(self, request: tuple, label: str) -> None:
        if self._failure is not None:
            raise self._failure
        if self._child is None:
            raise ReferenceUnavailable(f"reference {self.name} is closed")
        if self._pending is not None:
            raise EdgeLSTMError(f"reference {self.name}: a request is still in flight; collect its result first")
        self._child.send(request)
        self._pending = (time.monotonic(), label)

    def _reply(self) -> Any:
        if self._failure is not None:
            raise self._failure
        if self._pending is None or self._child is None:
            raise EdgeLSTMError(f"reference {self.name}: no request in flight")
        sent, label = self._pending
        child = self._child
        try:
            reply = child.receive(None if self.timeout is None else sent + self.timeout)
        except queue.Empty:
            child.kill()
            raise self._fail(f"reference {self.name} timed out after {self.timeout:g} s {label}", "timed_out",
                             seconds=self.timeout) from None
        except _Died:
            rc = child.exit_status()
            child.kill()
            if rc < 0:
                raise self._fail(f"reference {self.name} crashed (signal {-rc}, {signal_name(-rc)}) {label}",
                                 "crashed", signal=-rc) from None
            tail = child.stderr_tail()
            raise self._fail(f"reference {self.name} crashed (its process exited with status {rc}) {label}"
                             + (f": {tail}" if tail else ""), "crashed") from None
        self._pending = None
        if reply[0] == "ok":
            return reply[1]
        _, cls_name, message = reply
        cls = getattr(errors, cls_name, None)
        if isinstance(cls, type) and issubclass(cls, EdgeLSTMError):
            raise cls(message)
        raise ReferenceUnavailable(f"reference {self.name} failed {label}: {cls_name}: {message}")

    def _fail(self, message: str, status: str, signal: Optional[int] = None,
              seconds: Optional[float] = None) -> ReferenceFailure:
        self._child, self._pending = None, None
        failure = ReferenceFailure(message, self.name, status, signal=signal, seconds=seconds)
        self._failure = failure
        return failure

    def ready(self) -> "IsolatedReference":
        """Wait until the model is loaded (its version is known then)."""
        if not self._loaded:
            try:
                self.version = self._reply()[1]  # the report names the reference as registered
            except ReferenceUnavailable as exc:  # cannot load this model: so it stays
                self._failure = exc
                raise
            self._loaded = True
        return self

    def submit(self, x: list[np.ndarray], reset: bool = True, label: Optional[str] = None) -> None:
        """Start running inputs x in the child; `result()` collects the outputs."""
        self.ready()
        self._calls += 1
        self._request(("run", [np.ascontiguousarray(a) for a in x], reset), label or f"on call {self._calls}")

    def result(self) -> list[np.ndarray]:
        """The outputs of the run started by `submit`."""
        return self._reply()

    def run(self, x: list[np.ndarray], reset: bool = True) -> list[np.ndarray]:
        self.submit(x, reset)
        return self.result()

    def tensors(self) -> dict[int, np.ndarray]:
        self.ready()
        self._request(("tensors",), "while reading its tensors")
        return self._reply()

    def close(self) -> None:
        """Release the child: kept for reuse if it is idle and healthy, ended otherwise."""
        child, self._child = self._child, None
        if child is None:
            return
        if self._pending is None and child.proc.poll() is None:
            _park_child(child)
        else:
            child.kill()  # a request still in flight: its reply would confuse the next user
