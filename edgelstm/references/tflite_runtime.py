"""tflite-runtime, the frozen (2.14) standalone interpreter still common on Raspberry Pis.

It needs numpy < 2; under numpy 2 its Interpreter raises SystemError, reported here as unavailable.
"""
from __future__ import annotations

from ..errors import ReferenceUnavailable
from ._interpreter import InterpreterReference


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
                                version("tflite-runtime"), preserve_all_tensors)
