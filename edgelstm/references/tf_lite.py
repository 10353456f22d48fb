"""`tf.lite.Interpreter` from a full TensorFlow install (the last resort: it imports TensorFlow)."""
from __future__ import annotations

import importlib.util

from ..errors import ReferenceUnavailable
from .interpreter import InterpreterReference


def installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def make(model_bytes: bytes, preserve_all_tensors: bool = False) -> InterpreterReference:
    try:
        import tensorflow as tf
    except Exception as exc:
        raise ReferenceUnavailable(f"TensorFlow is not installed: {exc}") from None
    resolver = getattr(tf.lite.experimental, "OpResolverType", None)
    return InterpreterReference(tf.lite.Interpreter, resolver, model_bytes, "tflite", tf.__version__,
                                preserve_all_tensors)
