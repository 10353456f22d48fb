"""Shared driver for the three Python interpreters built from TFLite's C++ (same API)."""
from __future__ import annotations

import numpy as np

from ..errors import ReferenceUnavailable
from .base import Reference


class InterpreterReference(Reference):
    """Drives a tf.lite-style `Interpreter` with the builtin reference kernels."""

    def __init__(self, interpreter_cls, resolver_enum, model_bytes: bytes, name: str, version: str,
                 preserve_all_tensors: bool = False, resolver: str = "BUILTIN_REF"):
        self.name, self.version = name, version
        kwargs = {"model_content": model_bytes, "num_threads": 1}
        if resolver_enum is not None:
            # default BUILTIN_REF: the portable reference kernels, no XNNPACK (see ecosystem_facts.md)
            kwargs["experimental_op_resolver_type"] = getattr(resolver_enum, resolver)
        if preserve_all_tensors:
            kwargs["experimental_preserve_all_tensors"] = True
        try:
            self._it = interpreter_cls(**kwargs)
            self._it.allocate_tensors()
        except (ValueError, RuntimeError, SystemError) as exc:
            raise ReferenceUnavailable(f"{name} {version} cannot load this model: {exc}") from None
        self._inputs = [d["index"] for d in self._it.get_input_details()]
        self._outputs = [d["index"] for d in self._it.get_output_details()]
        self._preserve = preserve_all_tensors

    def run(self, x: list[np.ndarray], reset: bool = True) -> list[np.ndarray]:
        if reset:
            self._it.reset_all_variables()
        for idx, a in zip(self._inputs, x):
            if tuple(self._it.get_tensor_details()[idx]["shape"]) != a.shape:
                self._it.resize_tensor_input(idx, a.shape)
                self._it.allocate_tensors()
                if reset:
                    self._it.reset_all_variables()
            self._it.set_tensor(idx, a)
        self._it.invoke()
        return [self._it.get_tensor(i).copy() for i in self._outputs]

    def tensors(self) -> dict[int, np.ndarray]:
        if not self._preserve:
            return {}
        out = {}
        for d in self._it.get_tensor_details():
            try:
                out[d["index"]] = np.array(self._it.get_tensor(d["index"]))
            except ValueError:  # tensors without data (e.g. unused intermediates)
                continue
        return out
