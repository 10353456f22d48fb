"""TFLite Micro (`tflite-micro` on PyPI): the microcontroller interpreter, run on the host.

Its Python wrapper differs from the tf.lite-style ones: no input resizing (a model runs at the shape
stored in the flatbuffer, which for a dynamic dimension is the converter's placeholder size 1),
`reset()` instead of `reset_all_variables()`, and diagnostics printed by the C++ code on the
process's stdout/stderr. The adapter silences that output and puts it into its error messages.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import ReferenceUnavailable
from .base import Reference
from .capture import quiet_fds


def installed() -> bool:
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except Exception:
        return False
    return True


def _tensor_count(model_bytes: bytes) -> int:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    model = schema_fb.Model.GetRootAsModel(model_bytes, 0)
    return model.Subgraphs(0).TensorsLength() if model.SubgraphsLength() else 0


def arena_size(model_bytes: bytes) -> int:
    """Arena bytes to give TFLite Micro on the host for this model. The wrapper's default (10x the
    flatbuffer) is too small for tiny models whose activations outweigh their weights; memory is
    cheap on the host, so be generous. The firmware kit's recording run uses it too, then reports
    what the model actually used."""
    return max(16 * len(model_bytes), 16 << 20)


def _messages(captured: list[str]) -> str:
    text = " ".join(line.strip() for chunk in captured for line in chunk.splitlines() if line.strip())
    return f" ({text})" if text else ""


class TFLMReference(Reference):
    """One TFLite Micro interpreter (its reference kernels) holding one model."""

    def __init__(self, model_bytes: bytes, version: str, preserve_all_tensors: bool = False):
        from tflite_micro.python.tflite_micro import runtime

        self.name, self.version = "tflm", version
        self._preserve = preserve_all_tensors
        config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors
                  else runtime.InterpreterConfig.kAllocationRecording)
        captured: list[str] = []
        try:
            with quiet_fds(captured):
                self._it = runtime.Interpreter.from_bytes(bytes(model_bytes), intrepreter_config=config,
                                                          arena_size=arena_size(model_bytes))
                n_in = self._count(self._it.get_input_details)
                n_out = self._count(self._it.get_output_details)
        except Exception as exc:  # RuntimeError from C++, struct.error from a malformed flatbuffer
            raise ReferenceUnavailable(f"tflm {version} cannot load this model: {exc}{_messages(captured)}") from None
        self._in_details = [self._it.get_input_details(i) for i in range(n_in)]
        self._n_out = n_out
        self._n_tensors = _tensor_count(bytes(model_bytes)) if preserve_all_tensors else 0

    @staticmethod
    def _count(details) -> int:
        n = 0
        while True:
            try:
                details(n)
            except Exception:  # the wrapper raises for an index past the last
                return n
            n += 1

    def run(self, x: list[np.ndarray], reset: bool = True) -> list[np.ndarray]:
        if len(x) != len(self._in_details):
            raise ReferenceUnavailable(f"tflm: the model has {len(self._in_details)} inputs, got {len(x)}")
        for i, (a, d) in enumerate(zip(x, self._in_details)):
            fixed = [int(s) for s in d["shape"]]
            if tuple(fixed) != a.shape:
                raise ReferenceUnavailable(f"TFLite Micro cannot resize inputs: input {i} is fixed at {fixed} "
                                           f"in the flatbuffer, got {list(a.shape)}")
        captured: list[str] = []
        try:
            with quiet_fds(captured):
                if reset:
                    self._it.reset()
                for i, a in enumerate(x):
                    self._it.set_input(np.ascontiguousarray(a), i)
                self._it.invoke()
                return [np.array(self._it.get_output(i), copy=True) for i in range(self._n_out)]
        except (RuntimeError, ValueError) as exc:
            raise ReferenceUnavailable(f"tflm {self.version} failed to run this model: {exc}"
                                       f"{_messages(captured)}") from None

    def tensors(self) -> dict[int, np.ndarray]:
        if not self._preserve:
            return {}
        out: dict[int, np.ndarray] = {}
        sink: list[str] = []
        with quiet_fds(sink):
            for i in range(self._n_tensors):
                try:
                    d: Optional[dict] = self._it.GetTensor(i, 0)
                except Exception:
                    continue
                if d is None or "tensor_data" not in d:
                    continue
                out[i] = np.array(d["tensor_data"], copy=True).reshape([int(s) for s in d["shape"]])
        return out


def make(model_bytes: bytes, preserve_all_tensors: bool = False, **_options) -> TFLMReference:
    """TFLite Micro holding `model_bytes`. Options of the tf.lite-style adapters (an op resolver)
    do not apply: the Python package has TFLM's reference kernels only."""
    if not installed():
        raise ReferenceUnavailable("TFLite Micro is not installed (pip install tflite-micro)")
    from importlib.metadata import version
    return TFLMReference(model_bytes, version("tflite-micro"), preserve_all_tensors)
