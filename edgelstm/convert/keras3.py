"""Loading .keras files safely, and carrying Keras 3 layers over to tf_keras.

The converter fuses only tf_keras LSTMs (a Keras 3 LSTM becomes a WHILE loop, and in int8 a
segfault), so a Keras 3 model is rebuilt layer by layer as tf_keras with the same weights. Both
libraries write the same zip container; its metadata.json says which one wrote it. Loading always
uses safe_mode=True: a Lambda layer's pickled Python code is refused, never executed.
"""
from __future__ import annotations

import inspect
import json
import zipfile
from pathlib import Path
from typing import Any

from ..errors import ConversionError

# Constructor arguments that only matter for training or for building the input: the weights are
# copied over afterwards, and the input is created separately with a fixed batch size.
_TRAINING_ONLY_SUFFIXES = ("_initializer", "_regularizer", "_constraint")
_INPUT_KWARGS = {"input_shape", "batch_input_shape", "batch_size", "input_dim", "weights", "batch_shape"}


def saved_keras_version(path: Path) -> str:
    """The Keras version recorded in a .keras file ("2.x" for tf_keras, "3.x" for Keras 3)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise ConversionError(f"{path} is not a .keras model file (no config.json inside)")
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
    except FileNotFoundError:
        raise ConversionError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ConversionError(f"{path} is a directory; edgelstm convert takes a .keras file") from None
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ConversionError(f"{path} is not a .keras model file (a zip archive written by "
                              f"model.save('model.keras')): {exc}") from None
    version = str(meta.get("keras_version", ""))
    if not version[:1].isdigit():
        raise ConversionError(f"{path}: metadata.json does not say which Keras wrote it")
    return version


def load_keras(path: Path) -> tuple[Any, str]:
    """Load a .keras file with the library that wrote it. Returns (model, "keras3" | "tf_keras")."""
    from .stock import keras_module

    path = Path(path)
    if path.suffix != ".keras":
        raise ConversionError(f"{path}: edgelstm convert reads Keras v3-format files (*.keras, written by "
                              "model.save('model.keras')); legacy .h5 and SavedModel directories can run "
                              "code when loaded and are not accepted")
    version = saved_keras_version(path)
    K2 = keras_module()
    if version.startswith("3."):
        import keras as K3

        loader, source = K3.saving.load_model, "keras3"
    else:
        loader, source = K2.models.load_model, "tf_keras"
    try:
        model = loader(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises ValueError/TypeError/KeyError for unknown classes and Lambdas
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "lambda" in msg.lower() or "safe_mode" in msg:
            hint = (" (the model contains a Lambda layer, i.e. Python code; edgelstm loads with "
                    "safe_mode=True and never runs it - replace the Lambda with built-in layers)")
        raise ConversionError(f"cannot load {path} (written by Keras {version}): {msg}{hint}") from None
    return model, source


def _init_params(cls) -> set[str]:
    names: set[str] = set()
    for klass in inspect.getmro(cls):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            continue
        names.update(p.name for p in sig.parameters.values()
                     if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self")
    return names


def tf_keras_kwargs(cls, config: dict) -> dict:
    """A layer config (from either Keras) reduced to what `cls` (a tf_keras class) accepts.

    Whatever is dropped here either does not affect inference (initializers, regularizers, seeds,
    cuDNN switches) or is caught by the comparison of the two models on the calibration data."""
    accepted = _init_params(cls) | {"name", "trainable", "dtype"}
    out = {}
    for key, value in config.items():
        if key.endswith(_TRAINING_ONLY_SUFFIXES) or key in _INPUT_KWARGS or key not in accepted:
            continue
        if key == "dtype" and isinstance(value, dict):  # Keras 3 DTypePolicy
            value = value.get("config", {}).get("name", "float32")
        if key == "dtype" and value not in ("float32", None):
            value = "float32"  # the int8 model is calibrated from float32; mixed precision is not kept
        if isinstance(value, dict) and "class_name" in value:
            # an activation or other object serialized as a dict: only built-in names are carried over
            name = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) else None
            value = name or value["class_name"].lower()
        if isinstance(value, list) and key in ("target_shape", "kernel_size", "strides", "pool_size",
                                               "dilation_rate", "cropping", "padding", "size", "dims"):
            value = tuple(value)
        out[key] = value
    return out


def tf_keras_class(layer, K2) -> type:
    """The tf_keras class with the same name as a Keras 3 layer, or ConversionError."""
    name = type(layer).__name__
    cls = getattr(K2.layers, name, None)
    if cls is None or not isinstance(cls, type):
        raise ConversionError(f"layer '{layer.name}' ({name}) has no tf_keras counterpart, so the Keras 3 "
                              "model cannot be rebuilt for the converter", layer=layer.name,
                              reason=f"{name} has no tf_keras counterpart")
    return cls
