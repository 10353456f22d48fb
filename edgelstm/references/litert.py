"""LiteRT (`ai-edge-litert`), the current TFLite interpreter on PyPI."""
from __future__ import annotations

from ..errors import ReferenceUnavailable
from .interpreter import InterpreterReference


def installed() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except Exception:
        return False
    return True


def make(model_bytes: bytes, preserve_all_tensors: bool = False) -> InterpreterReference:
    try:
        from ai_edge_litert import interpreter as lit
    except Exception as exc:
        raise ReferenceUnavailable(f"LiteRT is not installed (pip install ai-edge-litert): {exc}") from None
    from importlib.metadata import version
    return InterpreterReference(lit.Interpreter, lit.OpResolverType, model_bytes, "litert",
                                version("ai-edge-litert"), preserve_all_tensors)
