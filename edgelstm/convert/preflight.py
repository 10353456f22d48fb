"""Preflight: every Keras configuration the TFLite converter crashes on or does not fuse, found before
the converter runs, and either rewritten to an equivalent form it handles or refused by name.

Measured with TF 2.21 / tf_keras 2.21 on this project's machines (full-int8 recipe, batch 1):

| configuration                     | converter                          | here                                 |
|-----------------------------------|------------------------------------|--------------------------------------|
| GRU, SimpleRNN, RNN(other cell)   | segfault                           | refused                              |
| LSTM activation != tanh           | segfault                           | refused                              |
| recurrent_activation != sigmoid   | segfault                           | refused                              |
| Masking / mask_zero reaching LSTM | segfault                           | refused                              |
| return_state, cell state used     | segfault                           | refused                              |
| LSTM called with initial_state    | calibrator error                   | refused                              |
| use_bias=False                    | segfault                           | zero biases (fuses)                  |
| stateful=True                     | segfault                           | stateless copy (fuses)               |
| recurrent_dropout > 0             | segfault                           | 0: a no-op at inference (fuses)      |
| RNN(LSTMCell)                     | segfault                           | LSTM with the cell's config (fuses)  |
| return_state, only h used         | segfault                           | h taken from the output (fuses)      |
| return_state, states unused       | fuses                              | return_state=False                   |
| unroll=True                       | ~20 unfused ops per step           | unroll=False (fuses)                 |
| batch size None                   | "Lowering tensor list ops failed"  | batch 1 (fuses)                      |
| go_backwards=True, dropout > 0, implementation=1, time_major, Bidirectional | fuse | kept |

The rewritten model is a tf_keras model (Keras 3 models are rebuilt as tf_keras: only tf_keras LSTMs
fuse) that must compute the same as the original on the calibration data before it is converted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..errors import ConversionError
from .keras3 import tf_keras_class, tf_keras_kwargs

# Rebuilt and original model must agree to this (max abs diff, relative above magnitude 1).
EQUIVALENCE_TOL = 1e-5

_REFUSED_RNNS = {
    "GRU": "the TFLite converter crashes (segfault) on GRU layers, and an unrolled GRU becomes hundreds "
           "of unfused ops; only LSTM has a fused integer op. Use an LSTM layer",
    "GRUV1": "the TFLite converter crashes on GRU layers; use an LSTM layer",
    "GRUV2": "the TFLite converter crashes on GRU layers; use an LSTM layer",
    "SimpleRNN": "the TFLite converter crashes (segfault) on SimpleRNN layers; only LSTM has a fused "
                 "integer op. Use an LSTM layer",
    "ConvLSTM1D": "convolutional LSTMs have no fused TFLite op",
    "ConvLSTM2D": "convolutional LSTMs have no fused TFLite op",
    "ConvLSTM3D": "convolutional LSTMs have no fused TFLite op",
}
_LSTM_NAMES = ("LSTM", "LSTMV1", "LSTMV2")
_MASK_REASON = ("masking (a Masking layer or Embedding(mask_zero=True)) has no TFLite form: the fused LSTM op "
                "has no mask input and the converter crashes on masked LSTMs. Remove the masking and feed "
                "fixed-length sequences")


@dataclass
class Rewrite:
    layer: str
    change: str
    why: str

    def to_dict(self) -> dict:
        return {"layer": self.layer, "change": self.change, "why": self.why}


@dataclass
class LayerInfo:
    name: str
    kind: str
    detail: str = ""
    lstm_ops: int = 0  # fused UNIDIRECTIONAL_SEQUENCE_LSTM ops this layer must become

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.kind, "detail": self.detail, "lstm_ops": self.lstm_ops}


@dataclass
class Prepared:
    """The model ready for the converter, and what was done to get there."""

    model: Any                       # tf_keras model with a fixed batch size
    source: str                      # "keras3" or "tf_keras"
    batch_size: int
    calibration: np.ndarray          # [N, batch, ...]: one converter sample per row
    layers: list[LayerInfo] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    max_abs_diff: float = 0.0        # rebuilt vs original model on the calibration data
    float_outputs: list[np.ndarray] = field(default_factory=list)  # rebuilt model on the calibration data
    hidden: list["HiddenRange"] = field(default_factory=list)

    @property
    def lstm_ops(self) -> int:
        return sum(info.lstm_ops for info in self.layers)


@dataclass
class HiddenRange:
    """The float hidden state of one LSTM over every step of every calibration sample. The
    input->forget weights [units, features] identify the LSTM among the converted model's ops."""

    layer: str
    forget_weights: np.ndarray
    lo: float
    hi: float


def _refuse(layer: str, reason: str) -> ConversionError:
    return ConversionError(f"layer '{layer}' cannot be converted: {reason}", layer=layer, reason=reason)


def _act_name(value) -> str:
    if isinstance(value, dict):
        cfg = value.get("config")
        return str((cfg.get("name") if isinstance(cfg, dict) else None) or value.get("class_name", "?")).lower()
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return str(value)


def _is_model(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs") and type(layer).__name__ in (
        "Functional", "Sequential", "Model")


class _Rebuilder:
    def __init__(self, K2, source: str):
        self.K2 = K2
        self.source = source
        self.rewrites: list[Rewrite] = []
        self.layers: list[LayerInfo] = []
        self._weights: list[tuple[Any, list[np.ndarray]]] = []
        self._made: dict[int, tuple[Any, dict]] = {}  # source layer id -> (new layer, facts)

    # -- walking the functional graph of either library ------------------------------------------
    def rebuild(self, model, batch_size: Optional[int]) -> Any:
        K2 = self.K2
        graph = model
        if self.source == "keras3" and type(model).__name__ == "Sequential":
            graph = getattr(model, "_functional", None)
        if graph is None or not getattr(graph, "_nodes_by_depth", None):
            raise ConversionError(f"model '{model.name}' has no defined input shape (build it on a keras.Input "
                                  "before saving)")
        inputs = list(graph.inputs) if isinstance(graph.inputs, (list, tuple)) else [graph.inputs]
        if len(inputs) != 1:
            raise ConversionError(f"model '{model.name}' has {len(inputs)} inputs; edgelstm convert takes "
                                  "models with one input (the calibration file holds one array)")
        shape = tuple(inputs[0].shape)
        dtype = str(getattr(inputs[0].dtype, "name", inputs[0].dtype))
        if dtype != "float32":
            raise ConversionError(f"model '{model.name}' takes {dtype} input; edgelstm convert needs a float32 "
                                  "input (quantized to int8 at the model's edge)")
        history = getattr(inputs[0], "_keras_history", None)
        in_name = getattr(history[0], "name", None) if history and batch_size is not None else None
        new_in = K2.Input(shape[1:], batch_size=batch_size if batch_size is not None else shape[0], name=in_name)
        for _, layer in self._nodes(graph):
            kind = type(layer).__name__
            if kind == "Masking" or (kind == "Embedding" and getattr(layer, "mask_zero", False)):
                raise _refuse(layer.name, _MASK_REASON)
        consumed = self._consumed(graph)
        outs = self._walk(graph, new_in, consumed)
        new = K2.Model(new_in, outs[0] if len(outs) == 1 else outs, name=model.name)
        return new

    def _flat(self, structure) -> list:
        import tensorflow as tf

        if self.source == "keras3":
            from keras import tree

            return tree.flatten(structure)
        return tf.nest.flatten(structure)

    def _is_symbolic(self, x) -> bool:
        if self.source == "keras3":
            from keras import KerasTensor

            return isinstance(x, KerasTensor)
        from tf_keras.src.engine.keras_tensor import KerasTensor

        return isinstance(x, KerasTensor)

    def _nodes(self, graph):
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                layer = node.operation if self.source == "keras3" else node.layer
                if node.is_input or layer is None:
                    continue
                yield node, layer

    def _node_io(self, node):
        if self.source == "keras3":
            return node.arguments.args, node.arguments.kwargs, list(node.outputs)
        return node.call_args, node.call_kwargs, self._flat(node.outputs)

    def _consumed(self, graph) -> set[int]:
        """ids of the symbolic tensors some node reads or the model returns."""
        used = {id(t) for t in self._flat(graph.outputs)}
        for node, _ in self._nodes(graph):
            args, kwargs, _ = self._node_io(node)
            used.update(id(t) for t in self._flat((list(args), dict(kwargs))) if self._is_symbolic(t))
        return used

    def _walk(self, graph, new_in, consumed: set[int]) -> list:
        import tensorflow as tf

        inputs = graph.inputs if isinstance(graph.inputs, (list, tuple)) else [graph.inputs]
        values = {id(inputs[0]): new_in}

        def sub(x):
            return values[id(x)] if self._is_symbolic(x) else x

        for node, layer in self._nodes(graph):
            args, kwargs, outs = self._node_io(node)
            if any(self._is_symbolic(t) and id(t) not in values for t in self._flat((list(args), dict(kwargs)))):
                continue  # a node of this layer that belongs to another model
            args = tf.nest.map_structure(sub, list(args))
            kwargs = {k: tf.nest.map_structure(sub, v) for k, v in dict(kwargs).items()
                      if k != "training" and not (k == "mask" and v is None)}
            results = self._call(layer, args, kwargs, outs, consumed)
            for t, v in zip(outs, results):
                if v is not None:
                    values[id(t)] = v
        return [values[id(t)] for t in self._flat(graph.outputs)]

    # -- one layer call ----------------------------------------------------------------------------
    def _call(self, layer, args, kwargs, outs, consumed) -> list:
        new, facts = self._layer(layer)
        name = layer.name
        if facts.get("recurrent"):
            mask = getattr(args[0], "_keras_mask", None) if args else None
            if mask is not None or kwargs.get("mask") is not None:
                raise _refuse(name, "it receives a mask; " + _MASK_REASON)
            if len(args) > 1 or any(kwargs.get(k) is not None for k in ("initial_state", "constants")):
                raise _refuse(name, "it is called with an initial state; the fused LSTM op always starts from "
                                    "zero state (the converter's calibrator fails on such graphs)")
            kwargs = {}
        y = new(*args, **kwargs)
        results = self._flat(y)
        if facts.get("return_state"):
            states = outs[1:]
            used = [t for t in states if id(t) in consumed]
            if used:
                if facts.get("bidirectional"):
                    raise _refuse(name, "its states (return_state=True) are used; the fused LSTM ops do not "
                                        "expose them (and the converter crashes on such graphs)")
                if any(id(t) in consumed for t in states[1::2]):
                    raise _refuse(name, "its cell state (return_state=True) is used; the fused LSTM op does not "
                                        "expose the cell state (and the converter crashes on such graphs)")
                h = self._last_step(y, facts, name)
                self.rewrites.append(Rewrite(name, "return_state=True -> False; h taken from the output",
                                             "the converter crashes when an LSTM's states are used; h equals "
                                             "the output at the last step"))
                return [y, h, None]
            self.rewrites.append(Rewrite(name, "return_state=True -> False", "the returned states are unused"))
            return [y] + [None] * len(states)
        return results

    def _last_step(self, y, facts: dict, name: str):
        L = self.K2.layers
        if not facts["return_sequences"]:
            return y
        steps, units = y.shape[1], y.shape[2]
        if facts.get("time_major") or steps is None:
            raise _refuse(name, "its hidden state (return_state=True) is used with return_sequences on a "
                                "dynamic or time-major sequence; the fused op does not expose the state")
        crop = L.Cropping1D((steps - 1, 0), name=f"{name}__edgelstm_last_step")
        return L.Reshape((units,), name=f"{name}__edgelstm_h")(crop(y))

    # -- one layer ---------------------------------------------------------------------------------
    def _layer(self, layer) -> tuple[Any, dict]:
        key = id(layer)
        if key in self._made:
            return self._made[key]
        kind = type(layer).__name__
        if _is_model(layer):
            inner = self.rebuild(layer, None)
            info = LayerInfo(layer.name, kind, "nested model")
            made = (inner, {})
        elif kind == "Bidirectional":
            fwd, ffacts, fw = self._recurrent(layer.forward_layer, layer.name + " (forward)")
            bwd, bfacts, bw = self._recurrent(layer.backward_layer, layer.name + " (backward)")
            new = self.K2.layers.Bidirectional(fwd, merge_mode=layer.merge_mode, backward_layer=bwd, name=layer.name)
            self._weights.append((new, fw + bw))
            info = LayerInfo(layer.name, kind, f"{ffacts['detail']}, merge_mode={layer.merge_mode}", lstm_ops=2)
            made = (new, {"recurrent": True, "bidirectional": True, "return_state": ffacts["return_state"],
                          "return_sequences": ffacts["return_sequences"]})
        elif kind in _REFUSED_RNNS or kind in _LSTM_NAMES or kind == "RNN" or hasattr(layer, "cell"):
            new, facts, weights = self._recurrent(layer, layer.name)
            self._weights.append((new, weights))
            info = LayerInfo(layer.name, "LSTM", facts["detail"], lstm_ops=1)
            made = (new, facts)
        elif kind == "TimeDistributed":
            inner_src = layer.layer
            if hasattr(inner_src, "cell") or type(inner_src).__name__ in _LSTM_NAMES:
                raise _refuse(layer.name, "a recurrent layer inside TimeDistributed has no fused TFLite form")
            inner, _ = self._plain(inner_src)
            new = self.K2.layers.TimeDistributed(inner, name=layer.name)
            self._weights.append((new, layer.get_weights()))
            info = LayerInfo(layer.name, kind, type(inner_src).__name__)
            made = (new, {})
        else:
            new, detail = self._plain(layer)
            self._weights.append((new, layer.get_weights()))
            info = LayerInfo(layer.name, kind, detail)
            made = (new, {})
        self.layers.append(info)
        self._made[key] = made
        return made

    def _plain(self, layer) -> tuple[Any, str]:
        """A layer with no conversion hazards, carried over unchanged."""
        kind = type(layer).__name__
        if self.source == "tf_keras":
            new = type(layer).from_config(layer.get_config())
        else:
            if not hasattr(layer, "get_config") or not hasattr(layer, "get_weights"):
                raise _refuse(getattr(layer, "name", kind), f"{kind} is a Keras 3 operation, not a layer; it has "
                                                            "no tf_keras counterpart")
            cls = tf_keras_class(layer, self.K2)
            try:
                new = cls(**tf_keras_kwargs(cls, layer.get_config()))
            except (TypeError, ValueError) as exc:
                raise _refuse(layer.name, f"its Keras 3 configuration does not carry over to tf_keras {kind} "
                                          f"({exc})") from None
        cfg = layer.get_config()
        detail = ", ".join(f"{k}={cfg[k]}" for k in ("units", "filters", "rate", "activation") if k in cfg)
        return new, detail

    def _recurrent(self, layer, name: str) -> tuple[Any, dict, list[np.ndarray]]:
        """A recurrent layer as a tf_keras LSTM the converter fuses, with its weights, or a refusal."""
        kind = type(layer).__name__
        cfg = dict(layer.get_config())
        weights = list(layer.get_weights())
        if kind in _REFUSED_RNNS:
            raise _refuse(name, f"{kind}: {_REFUSED_RNNS[kind]}")
        if kind not in _LSTM_NAMES:
            cell = getattr(layer, "cell", None)
            cell_kind = type(cell).__name__
            if cell_kind not in ("LSTMCell", "LSTMCellV1", "LSTMCellV2"):
                raise _refuse(name, f"{kind} around a {cell_kind}: only LSTM has a fused integer TFLite op, and the "
                                    "converter crashes on generic RNN layers")
            cell_cfg = dict(cell.get_config())
            cfg = {**cell_cfg, **{k: cfg[k] for k in ("return_sequences", "return_state", "go_backwards",
                                                        "stateful", "unroll", "time_major") if k in cfg},
                   "name": layer.name}
            self.rewrites.append(Rewrite(name, f"{kind}({cell_kind}) -> LSTM",
                                         "the converter crashes on the generic RNN wrapper; an LSTM layer with "
                                         "the cell's configuration computes the same"))
        act, rec = _act_name(cfg.get("activation", "tanh")), _act_name(cfg.get("recurrent_activation", "sigmoid"))
        if act != "tanh":
            raise _refuse(name, f"activation='{act}': the fused integer LSTM op always applies tanh (the converter "
                                "crashes on other activations). Retrain with activation='tanh'")
        if rec != "sigmoid":
            raise _refuse(name, f"recurrent_activation='{rec}': the fused integer LSTM op always applies the "
                                "logistic sigmoid (the converter crashes on others, e.g. 'hard_sigmoid', the old "
                                "Keras default). Retrain with recurrent_activation='sigmoid'")
        if cfg.get("stateful"):
            cfg["stateful"] = False
            self.rewrites.append(Rewrite(name, "stateful=True -> False",
                                         "the converter crashes on stateful LSTMs; the .tflite keeps h and c "
                                         "across invocations anyway (reset them between independent sequences)"))
        if not cfg.get("use_bias", True):
            cfg["use_bias"] = True
            units = int(cfg["units"])
            weights = weights[:2] + [np.zeros(4 * units, dtype=np.float32)] + weights[2:]
            self.rewrites.append(Rewrite(name, "use_bias=False -> zero biases",
                                         "the converter crashes on bias-free LSTMs; zero biases compute the same"))
        if cfg.get("recurrent_dropout", 0):
            self.rewrites.append(Rewrite(name, f"recurrent_dropout={cfg['recurrent_dropout']} -> 0",
                                         "the converter crashes on it; dropout does nothing at inference"))
            cfg["recurrent_dropout"] = 0.0
        if cfg.get("unroll"):
            cfg["unroll"] = False
            self.rewrites.append(Rewrite(name, "unroll=True -> False",
                                         "an unrolled LSTM converts to ~20 unfused ops per time step instead of "
                                         "one fused op; the math is the same"))
        return_state = bool(cfg.get("return_state"))
        cfg["return_state"] = False
        cls = self.K2.layers.LSTM
        if self.source == "tf_keras" and kind in _LSTM_NAMES:
            new = type(layer).from_config(cfg)
        else:
            new = cls(**tf_keras_kwargs(cls, cfg))
        flags = [f"units={cfg['units']}"] + [k for k in ("return_sequences", "go_backwards", "time_major")
                                             if cfg.get(k)]
        facts = {"recurrent": True, "return_state": return_state, "detail": ", ".join(flags),
                 "return_sequences": bool(cfg.get("return_sequences")), "time_major": bool(cfg.get("time_major"))}
        return new, facts, weights

    def set_weights(self) -> None:
        for layer, weights in self._weights:
            try:
                layer.set_weights(weights)
            except ValueError as exc:
                raise _refuse(layer.name, f"its weights do not fit the rebuilt tf_keras layer ({exc})") from None


MIN_CALIBRATION_SAMPLES = 8


def calibration_batches(calibration: np.ndarray, input_shape: tuple, batch: int) -> np.ndarray:
    """The user's samples [N, *input_shape[1:]] grouped into converter samples [M, batch, ...]."""
    x = np.asarray(calibration)
    if x.dtype.kind not in "fiu":
        raise ConversionError(f"calibration data must be numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    want = tuple(input_shape[1:])
    if x.ndim != len(want) + 1 or any(w is not None and w != d for w, d in zip(want, x.shape[1:])):
        shown = ", ".join("T" if w is None else str(w) for w in want)
        raise ConversionError(f"calibration data has shape {list(x.shape)}; the model takes samples of shape "
                              f"[{shown}], so the file must hold an array [N, {shown}]")
    if not np.all(np.isfinite(x)):
        raise ConversionError("calibration data contains NaN or infinite values")
    if len(x) < MIN_CALIBRATION_SAMPLES:
        # the converter sets every activation range from these samples; a handful gives ranges that
        # clip real data (a few hundred sequences are typical)
        raise ConversionError(f"calibration data holds {len(x)} samples; at least {MIN_CALIBRATION_SAMPLES} are "
                              "needed for representative activation ranges (a few hundred are typical)")
    n = (len(x) // batch) * batch
    if n == 0:
        raise ConversionError(f"calibration data holds {len(x)} samples; the model's fixed batch size is {batch}")
    return x[:n].reshape((n // batch, batch) + x.shape[1:])


def _predict(model, batches: np.ndarray, source: str, stateful: bool) -> list[np.ndarray]:
    if stateful:
        outs = []
        for xb in batches:
            for layer in model._flatten_layers() if hasattr(model, "_flatten_layers") else model.layers:
                if getattr(layer, "stateful", False):
                    (getattr(layer, "reset_states", None) or layer.reset_state)()
            y = model(xb, training=False)
            outs.append([np.asarray(t) for t in (y if isinstance(y, (list, tuple)) else [y])])
        return [np.concatenate(parts) for parts in zip(*outs)]
    flat = batches.reshape((-1,) + batches.shape[2:])
    y = model.predict(flat, batch_size=batches.shape[1], verbose=0)
    return [np.asarray(t) for t in (y if isinstance(y, (list, tuple)) else [y])]


def _stateful(model) -> bool:
    layers = model._flatten_layers() if hasattr(model, "_flatten_layers") else model.layers
    return any(getattr(layer, "stateful", False) for layer in layers)


def preflight(model, source: str, calibration: np.ndarray,
              progress: Callable[[str], None] = lambda msg: None) -> Prepared:
    """Check and rewrite `model` (tf_keras or Keras 3) into a tf_keras model the converter fuses."""
    from .stock import keras_module

    K2 = keras_module()
    inputs = model.inputs if isinstance(model.inputs, (list, tuple)) else [model.inputs]
    if not inputs:
        raise ConversionError(f"model '{model.name}' has no defined input shape")
    shape = tuple(inputs[0].shape)
    batch = shape[0]
    rb = _Rebuilder(K2, source)
    if batch is None:
        rb.rewrites.append(Rewrite("input", "batch size None -> 1",
                                   "the converter cannot fuse an LSTM with a dynamic batch ('Lowering tensor "
                                   "list ops is failed'); the .tflite runs one sequence per invocation"))
        batch = 1
    batches = calibration_batches(calibration, shape, int(batch))
    K2.backend.clear_session()
    new = rb.rebuild(model, int(batch))
    rb.set_weights()
    progress(f"comparing the rebuilt tf_keras model with the original on {len(batches)} calibration samples")
    want = _predict(model, batches, source, _stateful(model))
    got = _predict(new, batches, "tf_keras", False)
    diff = 0.0
    for w, g in zip(want, got):
        if w.shape != g.shape:
            raise ConversionError(f"the rebuilt model's output has shape {list(g.shape)}, the original's "
                                  f"{list(w.shape)}")
        scale = max(1.0, float(np.max(np.abs(w))) if w.size else 1.0)
        diff = max(diff, float(np.max(np.abs(w.astype(np.float64) - g))) / scale if w.size else 0.0)
    if not diff <= EQUIVALENCE_TOL:
        what = "the tf_keras rebuild of the Keras 3 model" if source == "keras3" else "the rewritten model"
        first = _first_divergence(model, new, batches[0], source)
        where = (f"; it first differs at layer '{first}' ({type(model.get_layer(first)).__name__}), whose "
                 "configuration tf_keras does not reproduce" if first else "")
        raise ConversionError(f"{what} does not compute the same as the original: max abs difference {diff:.3g} "
                              f"on the calibration data (tolerance {EQUIVALENCE_TOL:g}){where}",
                              layer=first, reason="the rebuilt layer computes differently" if first else None)
    progress("measuring the float hidden-state range of every LSTM")
    return Prepared(model=new, source=source, batch_size=int(batch), calibration=batches, layers=rb.layers,
                    rewrites=rb.rewrites, max_abs_diff=diff, float_outputs=got,
                    hidden=hidden_ranges(new, batches))


def _first_divergence(original, rebuilt, xb: np.ndarray, source: str) -> Optional[str]:
    """The first layer (in graph order) whose output differs between the two models, by name; None
    if that cannot be told (layers called more than once, renamed or rewritten)."""
    try:
        from .stock import keras_module

        K2 = keras_module()
        if source == "keras3":
            import keras

            make = keras.Model
        else:
            make = K2.Model
        for layer in original.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            twin = rebuilt.get_layer(layer.name)
            a = np.asarray(make(original.inputs, layer.output)(xb, training=False))
            b = np.asarray(K2.Model(rebuilt.inputs, twin.output)(xb, training=False))
            if a.shape != b.shape or np.max(np.abs(a - b)) > EQUIVALENCE_TOL * max(1.0, float(np.max(np.abs(a)))):
                return layer.name
    except Exception:  # noqa: BLE001 - a diagnosis only; the error is raised either way
        return None
    return None


def hidden_ranges(model, batches: np.ndarray) -> list[HiddenRange]:
    """Every LSTM's hidden state over all time steps, from copies returning the whole sequence.

    The converter calibrates input 18 (the state) on the last step only; these ranges are what
    the repair needs instead. LSTMs inside nested models are left out (the repair then keeps what
    the converter calibrated for them)."""
    flat = batches.reshape((-1,) + batches.shape[2:])
    return [HiddenRange(n, k, float(np.min(y)), float(np.max(y)))
            for n, k, y in hidden_sequences(model, flat, batch_size=batches.shape[1])]


def hidden_sequences(model, x: np.ndarray, batch_size: int = 64) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, input->forget weights [units, features], float hidden states [N, T, units]) of every
    top-level LSTM (both directions of a Bidirectional, each in its own processing order, as the
    converted ops compute them). The weights identify the LSTM among a converted model's ops."""
    from .stock import keras_module

    K2 = keras_module()
    probes, names, kernels, copies = [], [], [], []
    for layer in model.layers:
        kind = type(layer).__name__
        subs = ([layer.forward_layer, layer.backward_layer] if kind == "Bidirectional"
                else [layer] if kind in _LSTM_NAMES else [])
        for sub in subs:
            cfg = dict(sub.get_config(), return_sequences=True, return_state=False, stateful=False,
                       name=f"{sub.name}__edgelstm_hidden")
            copy = type(sub).from_config(cfg)
            probes.append(copy(layer.input))
            copies.append((copy, sub.get_weights()))
            units = int(cfg["units"])
            kernels.append(np.asarray(sub.get_weights()[0])[:, units:2 * units].T.copy())
            names.append(f"{layer.name} ({sub.name})" if sub is not layer else layer.name)
    if not probes:
        return []
    probe = K2.Model(model.inputs, probes)
    for copy, weights in copies:
        copy.set_weights(weights)
    seqs = probe.predict(x, batch_size=batch_size, verbose=0)
    seqs = seqs if isinstance(seqs, list) else [seqs]
    return list(zip(names, kernels, seqs))
