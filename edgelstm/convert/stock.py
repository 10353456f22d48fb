"""The stock TFLite converter recipe for full-int8 LSTM models.

This is the plain recipe (Optimize.DEFAULT + representative dataset + TFLITE_BUILTINS_INT8) that
yields the fused UNIDIRECTIONAL_SEQUENCE_LSTM op with int8 weights and an int16 cell state. It needs
tf_keras models: Keras 3 LSTMs do not fuse (see shared/reference/ecosystem_facts.md).
"""
from __future__ import annotations

import os
import warnings
from typing import Iterable

import numpy as np


def keras_module():
    """The tf_keras module (Keras 2), the only Keras whose LSTM the converter fuses."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras

    return tf_keras


def convert_int8(model, calibration: np.ndarray, io: str = "int8") -> bytes:
    """Convert a tf_keras model with a fixed batch size to a full-int8 .tflite flatbuffer.

    calibration: float32 samples shaped exactly like the model input (batch dimension included
    in each sample, i.e. an array of shape [N, *input_shape]). io: "int8" for int8 inputs and
    outputs, "float" to keep float32 I/O (QUANTIZE/DEQUANTIZE are added at the edges).
    """
    keras_module()
    import tensorflow as tf

    if io not in ("int8", "float"):
        raise ValueError(f"io must be 'int8' or 'float', not {io!r}")
    samples = np.asarray(calibration, dtype=np.float32)

    def representative() -> Iterable[list[np.ndarray]]:
        for s in samples:
            yield [s]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if io == "int8":
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": harmless with a representative dataset
        warnings.simplefilter("ignore", UserWarning)
        return bytes(conv.convert())
