"""tflite-runtime, the frozen (2.14) standalone interpreter still common on Raspberry Pis.

It needs numpy < 2; under numpy 2 its Interpreter raises SystemError, reported here as unavailable.

The reference is what `tflite_runtime.interpreter.Interpreter(model_path)` computes with its default
settings, i.e. what a Pi user's own code gets: the builtin optimized kernels, plus the XNNPACK delegate,
which 2.14 applies by default but which takes nothing from an int8 model except TRANSPOSE (measured on
the zoo models and every op in them: outputs identical with BUILTIN_WITHOUT_DEFAULT_DELEGATES). Those
kernels round differently from LiteRT's reference kernels in a few ops; the "tflite-runtime" flavour
reproduces them (ops/flavor.py). The adapter pins one thread, which changes no result.
Its BUILTIN_REF resolver is no alternative anyway: its int8 FULLY_CONNECTED computes only the first
row of a 3-D (keep_num_dims, e.g. TimeDistributed(Dense)) output, and it lacks REVERSE_V2 version 3.

With preserve_all_tensors, 2.14 still runs ADD and MUL in place: the tensor an ADD or MUL consumes
(e.g. a FULLY_CONNECTED output) then reads back as that op's result, so `verify` may locate a first
difference one op early on such a graph; outputs are not affected.
"""
from __future__ import annotations

from ..errors import ReferenceUnavailable
from .interpreter import InterpreterReference


def installed() -> bool:
    try:
        import tflite_runtime.interpreter  # noqa: F401
    except Exception:
        return False
    return True


def make(model_bytes: bytes, preserve_all_tensors: bool = False) -> InterpreterReference:
    try:
        from tflite_runtime import interpreter as tr
    except Exception as exc:
        raise ReferenceUnavailable(f"tflite-runtime is not installed: {exc}") from None
    from importlib.metadata import version
    # no resolver enum: the interpreter keeps its default op resolver and default delegates
    return InterpreterReference(tr.Interpreter, None, model_bytes, "tflite-runtime", version("tflite-runtime"),
                                preserve_all_tensors)
