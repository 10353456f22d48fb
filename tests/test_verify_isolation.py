"""verify runs every reference interpreter in a child process: a reference that segfaults or hangs is
reported with the signal or the time limit and the input it was on, and the other references still
run and report in the same call.

The misbehaving references are defined here and registered with `edgelstm.references.register`;
the child process finds them by importing this module (the parent's sys.path goes along).
"""
from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

import zoo
from edgelstm import EdgeLSTMError, ReferenceUnavailable
from edgelstm.references import (IsolatedReference, Reference, ReferenceFailure, available, get_reference, names,
                                 register, shutdown, unregister)
from edgelstm.verify import verify, verify_all

HANG_TIMEOUT_S = 8.0  # generous for a child's start on a busy machine, short for a test


class _LiteRTUntil(Reference):
    """LiteRT, until run number `fail_at` (counted from 0) of this model, where it misbehaves."""

    fail_at = -1

    def __init__(self, model_bytes: bytes, preserve_all_tensors: bool = False):
        self._inner = get_reference("litert", model_bytes, preserve_all_tensors)
        self.name, self.version = type(self).__name__, "test"
        self._runs = 0

    def run(self, x, reset=True):
        if self._runs == self.fail_at:
            self.misbehave()
        self._runs += 1
        return self._inner.run(x, reset)

    def misbehave(self) -> None:
        raise AssertionError("subclasses say how")


class SegfaultOnRun2(_LiteRTUntil):
    fail_at = 2

    def misbehave(self) -> None:
        os.kill(os.getpid(), signal.SIGSEGV)


class SegfaultOnRun9(SegfaultOnRun2):
    fail_at = 9  # with 7 inputs: input 2 of the state-carrying pass


class HangOnRun1(_LiteRTUntil):
    fail_at = 1

    def misbehave(self) -> None:
        while True:
            time.sleep(60)


class RaiseOnRun0(_LiteRTUntil):
    fail_at = 0

    def misbehave(self) -> None:
        raise RuntimeError("boom")


class SegfaultOnLoad(Reference):
    def __init__(self, model_bytes: bytes, preserve_all_tensors: bool = False):
        os.kill(os.getpid(), signal.SIGSEGV)

    def run(self, x, reset=True):
        raise AssertionError("never loaded")


class ReportsItsPid(Reference):
    """LiteRT whose version is the process id, to see which process served it."""

    def __init__(self, model_bytes: bytes, preserve_all_tensors: bool = False):
        self._inner = get_reference("litert", model_bytes, preserve_all_tensors)
        self.name, self.version = "pid", str(os.getpid())

    def run(self, x, reset=True):
        return self._inner.run(x, reset)


TEST_REFERENCES = {"segv": SegfaultOnRun2, "segv-carried": SegfaultOnRun9, "hang": HangOnRun1,
                   "raise": RaiseOnRun0, "segv-load": SegfaultOnLoad, "pid": ReportsItsPid}


@pytest.fixture(scope="module", autouse=True)
def test_references():
    for name, factory in TEST_REFERENCES.items():
        register(name, factory)
    yield
    for name in TEST_REFERENCES:
        unregister(name)


@pytest.fixture(scope="module")
def basic() -> bytes:
    return zoo.build("basic")


def _inputs(data: bytes, n_random: int = 4) -> list[list[np.ndarray]]:
    """n_random random samples, then all-min, all-max and all-zero-point ones."""
    return zoo.sample_inputs(data, n_random=n_random, seed=3)


def test_crash_and_hang_are_reported_and_the_real_references_still_run(basic):
    inputs = _inputs(basic)
    t0 = time.monotonic()
    results = verify_all(basic, ["litert", "segv", "hang", "tflm"], inputs=inputs, timeout=HANG_TIMEOUT_S)
    elapsed = time.monotonic() - t0
    by_name = {r.reference["name"]: r for r in results}
    assert [r.reference["name"] for r in results] == ["litert", "segv", "hang", "tflm"]
    per_sample = sum(o.elements for o in by_name["litert"].outputs) // (2 * len(inputs))

    for real in ("litert", "tflm"):
        r = by_name[real]
        assert r.status == "ok" and r.bit_exact and r.detail is None, r
        assert sum(o.elements for o in r.outputs) == 2 * len(inputs) * per_sample
        assert r.reference["version"]

    crashed = by_name["segv"]
    assert crashed.status == "crashed" and not crashed.bit_exact
    assert crashed.signal == signal.SIGSEGV and crashed.failed_input == 2
    assert crashed.detail == "reference segv crashed (signal 11, SIGSEGV) on input 2"
    # inputs 0 and 1 were compared (and agreed) before the crash
    assert sum(o.elements for o in crashed.outputs) == 2 * per_sample and crashed.mismatched_elements == 0

    hung = by_name["hang"]
    assert hung.status == "timed_out" and not hung.bit_exact and hung.signal is None
    assert hung.failed_input == 1
    assert hung.detail == f"reference hang timed out after {HANG_TIMEOUT_S:g} s on input 1"
    assert sum(o.elements for o in hung.outputs) == per_sample
    assert elapsed >= HANG_TIMEOUT_S

    d = crashed.to_dict()
    assert d["status"] == "crashed" and d["signal"] == 11 and d["failed_input"] == 2 and d["bit_exact"] is False


def test_crash_in_the_state_carrying_pass_and_at_load(basic):
    inputs = _inputs(basic)
    assert len(inputs) == 7
    r = verify(basic, reference="segv-carried", inputs=inputs)
    assert r.status == "crashed" and r.failed_input == 2
    assert r.detail == ("reference segv-carried crashed (signal 11, SIGSEGV) on input 2 of the pass that carries "
                        "state across inputs")
    r = verify(basic, reference="segv-load", inputs=_inputs(basic))
    assert r.status == "crashed" and r.failed_input is None and r.signal == signal.SIGSEGV
    assert r.detail == "reference segv-load crashed (signal 11, SIGSEGV) while loading the model"
    assert r.outputs and all(o.elements == 0 for o in r.outputs) and not r.bit_exact


def test_an_exception_in_the_reference_is_unavailable_not_a_crash(basic):
    with pytest.raises(ReferenceUnavailable, match="reference raise failed on input 0: RuntimeError: boom"):
        verify(basic, reference="raise", inputs=_inputs(basic))
    [r] = verify_all(basic, ["raise"], inputs=_inputs(basic))
    assert r.status == "unavailable" and "RuntimeError: boom" in r.detail


def test_a_healthy_child_is_reused_and_a_failed_one_is_not(basic):
    shutdown()
    first = verify(basic, reference="pid", inputs=_inputs(basic, 1)).reference["version"]
    again = verify(basic, reference="pid", inputs=_inputs(basic, 1)).reference["version"]
    assert first == again != str(os.getpid())
    shutdown()
    assert verify(basic, reference="pid", inputs=_inputs(basic, 1)).reference["version"] != first

    ref = IsolatedReference("segv", basic, timeout=HANG_TIMEOUT_S)
    xs = _inputs(basic, 1)[0]
    ref.run(xs)
    ref.run(xs)
    with pytest.raises(ReferenceFailure, match="on call 3") as failure:
        ref.run(xs)
    assert failure.value.status == "crashed" and failure.value.signal == signal.SIGSEGV
    with pytest.raises(ReferenceFailure):  # dead for good
        ref.run(xs)
    ref.close()


def test_cli_reports_the_crash(basic, tmp_path, capsys):
    from edgelstm.cli import EXIT_MISMATCH, main

    path = tmp_path / "basic.tflite"
    path.write_bytes(basic)
    assert main(["verify", str(path), "--against", "segv", "--samples", "5", "--json"]) == EXIT_MISMATCH
    obj = json.loads(capsys.readouterr().out)
    assert obj["status"] == "crashed" and obj["signal"] == 11 and obj["failed_input"] == 2
    assert obj["bit_exact"] is False and obj["reference"]["name"] == "segv"
    assert main(["verify", str(path), "--against", "hang", "--samples", "5", "--timeout", "5"]) == EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "TIMED OUT vs hang test (edgelstm flavor tflite): reference hang timed out after 5 s on input 1" in out
    assert "compared before that:" in out


def test_registration_rules():
    assert {"segv", "hang"} <= set(names()) and {"segv", "hang"} <= set(available())
    register("segv", SegfaultOnRun2)  # the same again: a no-op (the child imports this module too)
    register("segv", f"{__name__}:SegfaultOnRun2")
    with pytest.raises(EdgeLSTMError, match="already registered"):
        register("segv", HangOnRun1)
    with pytest.raises(EdgeLSTMError, match="lambda or a function defined inside"):
        register("anon", lambda data, preserve_all_tensors=False: None)
    with pytest.raises(EdgeLSTMError, match="'all' means"):
        register("all", SegfaultOnRun2)
    with pytest.raises(EdgeLSTMError, match="module:attr"):
        register("nopath", "no_colon_here")
    with pytest.raises(EdgeLSTMError, match="built-in"):
        unregister("litert")
    register("missing", "no_such_module_anywhere:make")
    try:
        with pytest.raises(ReferenceUnavailable, match="no_such_module_anywhere"):
            get_reference("missing", b"")
        with IsolatedReference("missing", b"") as ref:
            for _ in range(2):  # and again: a reference that did not load stays unavailable
                with pytest.raises(ReferenceUnavailable, match="no_such_module_anywhere"):
                    ref.run([np.zeros(3, np.int8)])
    finally:
        unregister("missing")
    assert "missing" not in names()
    with pytest.raises(ReferenceUnavailable, match="unknown reference"):
        IsolatedReference("missing", b"")
