"""Workstation side: Keras models to full-int8 .tflite (needs the `workstation` extra).

`convert` is the guarded path behind `edgelstm convert` (preflight, converter in a child process,
post-check, quantization repair, report); `convert_int8` is the bare stock recipe. `load_dataset`,
`train` and `build_model` are the data and training side behind `edgelstm train`. `streaming_model`
(behind `edgelstm stream`; it lives in the TensorFlow-free graph layer, edgelstm.graph.streaming)
rewrites a converted model into its single-step variant.
"""
from ..graph.streaming import streaming_model
from .data import (Dataset, Preprocessing, load_arrays, load_basicmotions, load_csv, load_dataset,
                   load_preprocessing, synthetic)
from .models import ModelSpec, build_model, load_trained, with_batch_size
from .pipeline import ConversionReport, convert
from .stock import convert_int8, keras_module
from .train import TrainResult, train

__all__ = ["convert", "ConversionReport", "convert_int8", "keras_module",
           "Dataset", "Preprocessing", "load_arrays", "load_basicmotions", "load_csv", "load_dataset",
           "load_preprocessing", "synthetic", "ModelSpec", "build_model", "load_trained", "with_batch_size",
           "TrainResult", "train", "streaming_model"]
