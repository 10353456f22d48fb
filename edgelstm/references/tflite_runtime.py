"""tflite-runtime, the frozen (2.14) standalone interpreter still common on Raspberry Pis.

It needs numpy < 2; under numpy 2 its Interpreter raises SystemError, reported here as unavailable.

Its BUILTIN_REF resolver is not usable as a reference: the int8 FULLY_CONNECTED registered there
computes only the first row of a 3-D (keep_num_dims, e.g. TimeDistributed(Dense)) output, reading
past the weights for the rest, and it lacks REVERSE_V2 version 3 (bidirectional models). So this
adapter uses its builtin kernels without the XNNPACK delegate, which load every zoo model and match
edgelstm's LSTM exactly; their FULLY_CONNECTED requantizes with the fixed-point multiplier (as
LiteRT's optimized kernels still do), so it can differ from edgelstm by 1 on a few elements.
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
    resolver = getattr(tr, "OpResolverType", None)
    return InterpreterReference(tr.Interpreter, resolver, model_bytes, "tflite-runtime",
                                version("tflite-runtime"), preserve_all_tensors,
                                resolver="BUILTIN_WITHOUT_DEFAULT_DELEGATES")
