"""The runtimes `edgelstm profile` and the benchmarks time, behind one small interface.

A runner holds one model in one runtime, prepared for one batch of inputs; calling it processes the
whole batch once, each sequence from a fresh state (as independent sequences are run in practice),
and fetches the outputs. The interpreters use their default op resolvers here (XNNPACK where LiteRT
applies it): profiling measures what users run, unlike `verify`, which compares against the
portable reference kernels.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import InputError, ReferenceUnavailable

BACKENDS = ("edgelstm", "litert", "tflite-runtime", "tflm", "keras")

# backend -> (module that must import, pip distribution for its version and for the install hint)
_REQUIRES = {
    "edgelstm": ("numba", "edgelstm"),
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tflm": ("tflite_micro", "tflite-micro"),
    "keras": ("tf_keras", "tf-keras"),
}


def _dist_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def missing(name: str) -> Optional[str]:
    """Why a backend cannot run here (None if it may). Looks for the module without importing it,
    so that asking about keras does not load TensorFlow; a module that is present but broken (e.g.
    tflite-runtime under numpy 2) fails later, in the measuring process, with its own message."""
    if name not in _REQUIRES:
        return f"unknown backend {name!r}; known: {', '.join(BACKENDS)}"
    module, dist = _REQUIRES[name]
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        found = False
    return None if found else f"{dist} is not installed (pip install {dist})"


class Runner(ABC):
    """One model in one runtime, ready to process a batch of sequences per call."""

    name: str = ""
    dist: str = ""

    @property
    def version(self) -> str:
        return _dist_version(self.dist)

    @abstractmethod
    def __call__(self) -> None:
        """Process the batch once (fresh state for every sequence), outputs fetched."""

    def outputs(self) -> list:
        """The outputs of the last call, for sanity checks (one list per sequence)."""
        return []


class EdgeLSTMRunner(Runner):
    name, dist = "edgelstm", "edgelstm"

    def __init__(self, model_bytes: bytes, batch: list[list[np.ndarray]], threads: int, flavor: str = "tflite"):
        from ..model import load

        self.model = load(model_bytes, flavor=flavor)
        self.batch = [self.model.check_inputs(xs) for xs in batch]
        self.threads = threads
        self._last: list = []

    def __call__(self) -> None:
        if len(self.batch) == 1:
            self._last = [self.model.run(self.batch[0])]
        else:
            self._last = self.model.run_batch(self.batch, workers=self.threads)

    def outputs(self) -> list:
        return self._last


class InterpreterRunner(Runner):
    """LiteRT and tflite-runtime share TFLite's Python interpreter API."""

    def __init__(self, name: str, interpreter_cls, model_bytes: bytes, batch: list[list[np.ndarray]], threads: int):
        self.name, self.dist = name, _REQUIRES[name][1]
        try:
            self.it = interpreter_cls(model_content=model_bytes, num_threads=threads)
            self.it.allocate_tensors()
        except (ValueError, RuntimeError, SystemError) as exc:
            raise ReferenceUnavailable(f"{name} cannot load this model: {exc}") from None
        self.ins = [d["index"] for d in self.it.get_input_details()]
        self.outs = [d["index"] for d in self.it.get_output_details()]
        shapes = [tuple(d["shape"]) for d in self.it.get_input_details()]
        for idx, shape, a in zip(self.ins, shapes, batch[0]):
            if shape != a.shape:  # dynamic time dimension: size it once, outside the timed calls
                self.it.resize_tensor_input(idx, a.shape)
        self.it.allocate_tensors()
        self.batch = batch
        self._last: list = []

    def __call__(self) -> None:
        it, last = self.it, []
        for xs in self.batch:
            it.reset_all_variables()
            for idx, a in zip(self.ins, xs):
                it.set_tensor(idx, a)
            it.invoke()
            last.append([it.get_tensor(i) for i in self.outs])
        self._last = last

    def outputs(self) -> list:
        return self._last


class TFLMRunner(Runner):
    """TFLite Micro's C++ interpreter through its Python wrapper (single-threaded by design)."""

    name, dist = "tflm", "tflite-micro"

    def __init__(self, model_bytes: bytes, batch: list[list[np.ndarray]]):
        from tflite_micro.python.tflite_micro import runtime

        from ..tflite_reader import read_model

        try:
            # the wrapper's default arena (10x the model size) is too small for long sequences
            self.it = runtime.Interpreter.from_bytes(model_bytes, arena_size=max(len(model_bytes) * 10, 4 << 20))
        except Exception as exc:  # the wrapper raises RuntimeError or its own types
            raise ReferenceUnavailable(f"TFLite Micro cannot load this model: {exc}") from None
        self.batch = batch
        self.n_out = len(read_model(model_bytes).outputs)
        self._last: list = []

    def __call__(self) -> None:
        it, last = self.it, []
        for xs in self.batch:
            it.reset()
            for i, a in enumerate(xs):
                it.set_input(a, i)
            it.invoke()
            last.append([it.get_output(i) for i in range(self.n_out)])
        self._last = last

    def outputs(self) -> list:
        return self._last


class KerasRunner(Runner):
    """The float Keras model, as a compiled tf.function over the whole batch (how Keras users run it)."""

    name, dist = "keras", "tf-keras"

    def __init__(self, keras_path: Path, batch_float: np.ndarray, threads: int):
        import os

        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
        import tf_keras

        set_tf_threads(threads)
        try:
            model = tf_keras.models.load_model(keras_path, compile=False, safe_mode=True)
        except Exception as exc:
            raise InputError(f"cannot load the Keras model {keras_path}: {exc}") from None
        self.x = tf.constant(batch_float)
        fn = tf.function(lambda x: model(x, training=False))
        self.fn: Callable = fn
        self._last: list = []

    def __call__(self) -> None:
        self._last = [self.fn(self.x).numpy()]

    def outputs(self) -> list:
        return self._last


def set_tf_threads(threads: int) -> None:
    """Limit TensorFlow to `threads` (it fixes them at first use; later calls must agree)."""
    import tensorflow as tf

    cfg = tf.config.threading
    if cfg.get_intra_op_parallelism_threads() == threads and cfg.get_inter_op_parallelism_threads() == threads:
        return
    try:
        cfg.set_intra_op_parallelism_threads(threads)
        cfg.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        raise ReferenceUnavailable(f"TensorFlow is already running with other thread settings; cannot time "
                                   f"Keras on {threads} thread(s) in this process") from None


def dequantize_for_keras(model_bytes: bytes, batch: list[list[np.ndarray]]) -> np.ndarray:
    """The float input a Keras model sees for the int8 samples: dequantized, batch rows concatenated."""
    from ..model import load

    spec = load(model_bytes).inputs[0]
    xs = np.concatenate([s[0] for s in batch], axis=0)
    if spec.dtype.kind == "f" or spec.quantization is None:
        return xs.astype(np.float32)
    q = spec.quantization
    return ((xs.astype(np.float32) - q.zp) * q.s).astype(np.float32)


def make_runner(name: str, model_bytes: bytes, batch: list[list[np.ndarray]], threads: int = 1,
                keras_path: Optional[Path] = None) -> Runner:
    """A runner for backend `name`; raises ReferenceUnavailable when it cannot run here."""
    why = missing(name)
    if why:
        raise ReferenceUnavailable(why)
    if name == "edgelstm":
        return EdgeLSTMRunner(model_bytes, batch, threads)
    if name == "litert":
        from ai_edge_litert.interpreter import Interpreter

        return InterpreterRunner(name, Interpreter, model_bytes, batch, threads)
    if name == "tflite-runtime":
        from tflite_runtime.interpreter import Interpreter

        return InterpreterRunner(name, Interpreter, model_bytes, batch, threads)
    if name == "tflm":
        return TFLMRunner(model_bytes, batch)
    if keras_path is None:
        raise ReferenceUnavailable("the keras backend needs the float model: pass --keras MODEL.keras")
    return KerasRunner(Path(keras_path), dequantize_for_keras(model_bytes, batch), threads)
