"""tf_keras model builders restricted to what the stock int8 converter turns into fused LSTM ops.

Every LSTM here is tanh/sigmoid, with biases, stateless, unmasked, without recurrent dropout and not
unrolled: other settings either crash the converter (segfault) or give a WHILE loop / hundreds of
ops instead of UNIDIRECTIONAL_SEQUENCE_LSTM (shared/reference/ecosystem_facts.md).

The converter needs a fixed batch size while training wants a free one, so every builder takes
`batch_size`; `build_model(spec, batch_size=1)` followed by `set_weights` (or `with_batch_size`)
gives the conversion twin of a trained model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Union

from ..errors import InputError
from .stock import keras_module

# Pinned explicitly, not left to Keras defaults, because they are the converter's contract.
_CONVERTIBLE_LSTM = dict(activation="tanh", recurrent_activation="sigmoid", use_bias=True, stateful=False,
                         unroll=False, dropout=0.0, recurrent_dropout=0.0, return_state=False)


@dataclass(frozen=True)
class ModelSpec:
    """What `build_model` builds: [Conv1D] -> LSTM x len(units) (each optionally bidirectional) -> Dense.

    conv is (filters, kernel size) for a ReLU Conv1D front with 'same' padding, or None.
    Classification heads end in softmax over `outputs` classes, regression heads are linear.
    """

    timesteps: int
    features: int
    outputs: int
    task: str = "classification"
    units: tuple[int, ...] = (32,)
    bidirectional: bool = False
    conv: Optional[tuple[int, int]] = None

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise InputError(f"task must be classification or regression, not {self.task!r}")
        if not self.units or any(int(u) < 1 for u in self.units):
            raise InputError(f"units must be one or more positive integers, got {list(self.units)}")
        if min(self.timesteps, self.features, self.outputs) < 1:
            raise InputError(f"timesteps, features and outputs must be >= 1, got "
                             f"{self.timesteps}, {self.features}, {self.outputs}")
        if self.task == "classification" and self.outputs < 2:
            raise InputError("a classification head needs at least 2 classes")
        if self.conv is not None and (len(self.conv) != 2 or min(self.conv) < 1):
            raise InputError(f"conv must be (filters, kernel size) with both >= 1, got {self.conv}")
        # normalise to plain tuples so specs read back from JSON compare equal
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        if self.conv is not None:
            object.__setattr__(self, "conv", (int(self.conv[0]), int(self.conv[1])))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["units"] = list(self.units)
        d["conv"] = list(self.conv) if self.conv else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        conv = d.get("conv")
        return cls(int(d["timesteps"]), int(d["features"]), int(d["outputs"]), d.get("task", "classification"),
                   tuple(d.get("units", (32,))), bool(d.get("bidirectional", False)),
                   tuple(conv) if conv else None)


def build_model(spec: ModelSpec, batch_size: Optional[int] = None):
    """A tf_keras functional model for `spec`; batch_size None to train, 1 (or N) to convert."""
    K = keras_module()
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch_size must be None or >= 1, got {batch_size}")
    inp = K.Input((spec.timesteps, spec.features), batch_size=batch_size, name="x")
    h = inp
    if spec.conv is not None:
        filters, kernel = spec.conv
        h = K.layers.Conv1D(filters, kernel, padding="same", activation="relu", name="conv")(h)
    for i, units in enumerate(spec.units):
        last = i == len(spec.units) - 1
        # every layer but the last hands its whole sequence to the next
        lstm = K.layers.LSTM(units, return_sequences=not last, name=f"lstm{i}", **_CONVERTIBLE_LSTM)
        if spec.bidirectional:
            lstm = K.layers.Bidirectional(lstm, name=f"bilstm{i}")
        h = lstm(h)
    act = "softmax" if spec.task == "classification" else "linear"
    out = K.layers.Dense(spec.outputs, activation=act, name="head")(h)
    return K.Model(inp, out, name="edgelstm")


def with_batch_size(model, batch_size: Optional[int] = 1):
    """The same tf_keras model (architecture and weights) with a fixed (or free) batch size.

    Works for any functional or Sequential model by editing its config, so it also serves models
    that were not built here.
    """
    config = model.get_config()
    changed = 0
    for layer in config.get("layers", []):
        cfg = layer.get("config", {})
        if "batch_input_shape" in cfg:
            cfg["batch_input_shape"] = (batch_size, *tuple(cfg["batch_input_shape"])[1:])
            changed += 1
    if not changed:
        raise InputError("could not find the model's input shape in its config (not a functional "
                         "or Sequential tf_keras model with a declared input?)")
    twin = model.__class__.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def load_trained(path: Union[str, Path], batch_size: Optional[int] = 1):
    """The model.keras in `path` (a file or the training output directory), rebuilt with batch_size."""
    K = keras_module()
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.exists():
        raise InputError(f"model file not found: {path}")
    model = K.models.load_model(path, compile=False)
    return with_batch_size(model, batch_size)
