"""The common interface of the reference-interpreter adapters."""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
import numpy as np

from ..errors import ReferenceUnavailable

# name -> module implementing it (each module defines `make(model_bytes, **kw) -> Reference`)
_ADAPTERS = {
    "litert": "edgelstm.references.litert",
    "tflite-runtime": "edgelstm.references.tflite_runtime",
    "tflite": "edgelstm.references.tf_lite",
    "tflm": "edgelstm.references.tflm",
}
REFERENCE_NAMES = tuple(_ADAPTERS)


class Reference(ABC):
    """One reference interpreter holding one model."""

    name: str = ""
    version: str = ""

    @abstractmethod
    def run(self, x: list[np.ndarray], reset: bool = True) -> list[np.ndarray]:
        """Outputs for inputs x; the interpreter's variables (LSTM state) are reset first if asked."""

    def tensors(self) -> dict[int, np.ndarray]:
        """Every tensor after the last run, by index (empty if the runtime cannot keep them)."""
        return {}


def get_reference(name: str, model_bytes: bytes, preserve_all_tensors: bool = False) -> Reference:
    """Build the named reference for a model; raises ReferenceUnavailable if it is not installed."""
    if name not in _ADAPTERS:
        raise ReferenceUnavailable(f"unknown reference {name!r}; known: {', '.join(REFERENCE_NAMES)}")
    module = importlib.import_module(_ADAPTERS[name])
    return module.make(model_bytes, preserve_all_tensors=preserve_all_tensors)


def available() -> list[str]:
    """Names of the reference interpreters that import in this environment."""
    names = []
    for name in REFERENCE_NAMES:
        module = importlib.import_module(_ADAPTERS[name])
        if module.installed():
            names.append(name)
    return names
