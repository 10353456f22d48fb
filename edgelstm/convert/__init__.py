"""Workstation side: Keras models to full-int8 .tflite (needs the `workstation` extra)."""
from .stock import convert_int8, keras_module

__all__ = ["convert_int8", "keras_module"]
