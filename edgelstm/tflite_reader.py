"""Read a .tflite flatbuffer into a small, validated, in-memory graph.

The bytes are decoded through the `tflite` package (generated bindings of the official schema), never
by hand. Everything a kernel will later index (tensor indices, shapes, buffer lengths, quantization
arrays) is checked here, so that the Numba kernels can trust what they are given.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .errors import ModelError

try:  # the bindings are a hard dependency; fail with a clear message if they are missing
    import tflite as _fb
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError("edgelstm needs the 'tflite' package (pip install tflite)") from exc

# Per-tensor limit on elements; a header claiming more is malformed or hostile (issue: hostile input).
MAX_TENSOR_ELEMENTS = 1 << 28

_TENSOR_TYPES = {
    0: ("FLOAT32", np.dtype(np.float32)),
    1: ("FLOAT16", np.dtype(np.float16)),
    2: ("INT32", np.dtype(np.int32)),
    3: ("UINT8", np.dtype(np.uint8)),
    4: ("INT64", np.dtype(np.int64)),
    5: ("STRING", None),
    6: ("BOOL", np.dtype(np.bool_)),
    7: ("INT16", np.dtype(np.int16)),
    8: ("COMPLEX64", np.dtype(np.complex64)),
    9: ("INT8", np.dtype(np.int8)),
    10: ("FLOAT64", np.dtype(np.float64)),
    11: ("COMPLEX128", np.dtype(np.complex128)),
    12: ("UINT64", np.dtype(np.uint64)),
    13: ("RESOURCE", None),
    14: ("VARIANT", None),
    15: ("UINT32", np.dtype(np.uint32)),
    16: ("UINT16", np.dtype(np.uint16)),
    17: ("INT4", None),
}


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


_OPCODE_NAMES = _enum_names(_fb.BuiltinOperator)
_OPTION_NAMES = _enum_names(_fb.BuiltinOptions)
ACTIVATION_NAMES = _enum_names(_fb.ActivationFunctionType)
PADDING_NAMES = _enum_names(_fb.Padding)


@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = scale * (q - zero_point), per tensor or along `axis`."""

    scale: np.ndarray  # float32, length 1 or shape[axis]
    zero_point: np.ndarray  # int64, same length as scale
    axis: int = 0

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    @property
    def s(self) -> float:
        """The per-tensor scale as a Python float (its float32 value, exactly)."""
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        return int(self.zero_point[0])


@dataclass
class Tensor:
    index: int
    name: str
    type_name: str
    dtype: Optional[np.dtype]
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    quant: Optional[Quantization]
    data: Optional[np.ndarray]  # constant contents, read-only, already in `shape`
    is_variable: bool

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    def describe(self) -> str:
        return f"tensor {self.index} '{self.name}' ({self.type_name}{list(self.shape_signature)})"


@dataclass
class Operator:
    index: int
    opcode: str
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    intermediates: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"op {self.index} ({self.opcode})"


@dataclass
class Graph:
    """The main subgraph of a .tflite model, with every tensor and operator validated."""

    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""
    schema_version: int = 0

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _read_options(op) -> tuple[Optional[str], dict[str, Any]]:
    """Decode an operator's builtin options table into a plain dict of snake_case fields."""
    opt_type = op.BuiltinOptionsType()
    if opt_type == 0:
        return None, {}
    name = _OPTION_NAMES.get(opt_type)
    cls = getattr(_fb, name, None) if name else None
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return name, {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    methods = {m for m in dir(cls) if not m.startswith("_") and callable(getattr(cls, m))}
    out: dict[str, Any] = {}
    for m in sorted(methods):
        if m in ("Init",) or m.startswith("GetRootAs") or m.endswith("BufferHasIdentifier"):
            continue
        if m.endswith(("Length", "IsNone", "AsNumpy")):
            continue
        if m + "AsNumpy" in methods:
            if getattr(obj, m + "IsNone")():
                val = np.zeros(0, dtype=np.int64)
            else:
                val = np.array(getattr(obj, m + "AsNumpy")())
        else:
            try:
                val = getattr(obj, m)()
            except TypeError:  # a vector-of-tables accessor that needs an index; no kernel uses one
                continue
        out[_snake(m)] = val
    return name, out


def model_bytes(source: Union[str, Path, bytes, bytearray, memoryview]) -> bytes:
    """The bytes of a model given as a path or as bytes; ModelError if the file cannot be read."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except IsADirectoryError:
        raise ModelError(f"model path is a directory, not a .tflite file: {path}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror}") from None


def read_model(source: Union[str, Path, bytes, bytearray, memoryview]) -> Graph:
    """Parse and validate a .tflite model (a path or the file's bytes)."""
    raw = model_bytes(source)
    if len(raw) < 8:
        raise ModelError(f"not a .tflite model: only {len(raw)} bytes")
    if raw[4:8] != b"TFL3":
        raise ModelError("not a .tflite model: the flatbuffer identifier is not 'TFL3'")
    try:
        return _parse(raw)
    except ModelError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError,
            AttributeError, RecursionError, MemoryError) as exc:
        # The generated bindings raise these when an offset points outside the file.
        raise ModelError(f"malformed .tflite flatbuffer ({type(exc).__name__}: {exc})") from None


def _parse(raw: bytes) -> Graph:
    fb = _fb.Model.GetRootAsModel(raw, 0)
    if fb.SubgraphsLength() < 1:
        raise ModelError("model has no subgraph")
    sg = fb.Subgraphs(0)
    n_buffers = fb.BuffersLength()
    n_tensors = sg.TensorsLength()

    tensors = []
    for i in range(n_tensors):
        tensors.append(_read_tensor(raw, fb, sg.Tensors(i), i, n_buffers))

    def check_index_list(what: str, arr, allow_optional: bool) -> tuple[int, ...]:
        vals = tuple(int(v) for v in arr)
        for v in vals:
            if v == -1 and allow_optional:
                continue
            if not 0 <= v < n_tensors:
                raise ModelError(f"{what} refers to tensor {v}, but the model has {n_tensors} tensors")
        return vals

    n_codes = fb.OperatorCodesLength()
    operators = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code_index = op.OpcodeIndex()
        if not 0 <= code_index < n_codes:
            raise ModelError(f"op {i} uses opcode index {code_index}, but the model lists {n_codes} opcodes")
        oc = fb.OperatorCodes(code_index)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == _fb.BuiltinOperator.CUSTOM:
            cc = oc.CustomCode()
            opcode = "CUSTOM:" + (cc.decode("utf-8", "replace") if cc else "?")
        else:
            opcode = _OPCODE_NAMES.get(code, f"UNKNOWN_BUILTIN_{code}")
        _, options = _read_options(op)
        operators.append(Operator(
            index=i,
            opcode=opcode,
            version=int(oc.Version()),
            inputs=check_index_list(f"op {i} ({opcode}) input", op.InputsAsNumpy() if op.InputsLength() else [], True),
            outputs=check_index_list(f"op {i} ({opcode}) output", op.OutputsAsNumpy() if op.OutputsLength() else [], False),
            intermediates=check_index_list(
                f"op {i} ({opcode}) intermediate", op.IntermediatesAsNumpy() if op.IntermediatesLength() else [], False),
            options=options,
        ))

    inputs = check_index_list("subgraph input", sg.InputsAsNumpy() if sg.InputsLength() else [], False)
    outputs = check_index_list("subgraph output", sg.OutputsAsNumpy() if sg.OutputsLength() else [], False)
    if not inputs:
        raise ModelError("model declares no inputs")
    if not outputs:
        raise ModelError("model declares no outputs")
    desc = fb.Description()
    graph = Graph(tensors=tensors, operators=operators, inputs=inputs, outputs=outputs,
                  description=desc.decode("utf-8", "replace") if desc else "", schema_version=int(fb.Version()))
    _check_dataflow(graph)
    return graph


def _read_tensor(raw: bytes, fb, t, index: int, n_buffers: int) -> Tensor:
    name_b = t.Name()
    name = name_b.decode("utf-8", "replace") if name_b else f"tensor_{index}"
    type_code = t.Type()
    type_name, dtype = _TENSOR_TYPES.get(type_code, (f"TYPE_{type_code}", None))
    shape = tuple(int(v) for v in (t.ShapeAsNumpy() if t.ShapeLength() else ()))
    sig = tuple(int(v) for v in (t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else ())) or shape
    where = f"tensor {index} '{name}'"
    if any(d < 0 for d in shape):
        raise ModelError(f"{where} has a negative dimension in its shape {list(shape)}")
    if len(sig) != len(shape) or any(s != d and s != -1 for s, d in zip(sig, shape)):
        raise ModelError(f"{where}: shape signature {list(sig)} does not match shape {list(shape)}")
    n_elem = 1
    for d in shape:
        n_elem *= d
        if n_elem > MAX_TENSOR_ELEMENTS:
            raise ModelError(f"{where} declares an absurd shape {list(shape)} (more than 2^28 elements)")

    quant = None
    q = t.Quantization()
    if q is not None and q.ScaleLength() > 0:
        scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32)
        zp = np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64) if q.ZeroPointLength() else np.zeros(0, np.int64)
        axis = int(q.QuantizedDimension())
        if zp.size != scale.size:
            raise ModelError(f"{where}: {scale.size} quantization scales but {zp.size} zero points")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ModelError(f"{where}: quantization scale must be finite and positive, got {scale[:4].tolist()}")
        if scale.size > 1:
            if not 0 <= axis < len(shape) or shape[axis] != scale.size:
                raise ModelError(f"{where}: {scale.size} per-channel scales do not fit quantized dimension "
                                 f"{axis} of shape {list(shape)}")
        if dtype is not None and dtype.kind in "iu" and dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            if np.any(zp < info.min) or np.any(zp > info.max):
                raise ModelError(f"{where}: zero point {zp[:4].tolist()} outside the {type_name} range")
        quant = Quantization(scale=scale, zero_point=zp, axis=axis)

    data = None
    b = t.Buffer()
    if not 0 <= b < n_buffers:
        raise ModelError(f"{where} refers to buffer {b}, but the model has {n_buffers} buffers")
    buf = fb.Buffers(b)
    content = None
    if buf is not None:
        off, size = int(buf.Offset()), int(buf.Size())
        if off > 1:  # large models keep buffers after the flatbuffer, addressed by offset/size
            if off + size > len(raw):
                raise ModelError(f"{where}: buffer {b} points past the end of the file")
            content = np.frombuffer(raw, dtype=np.uint8, count=size, offset=off)
        elif buf.DataLength() > 0:
            content = buf.DataAsNumpy()
    if content is not None and content.size > 0:
        if dtype is None:
            raise ModelError(f"{where} holds constant data of unsupported type {type_name}")
        expected = n_elem * dtype.itemsize
        if content.size != expected:
            raise ModelError(f"{where}: buffer {b} has {content.size} bytes, but shape {list(shape)} of "
                             f"{type_name} needs {expected}")
        data = np.frombuffer(content.tobytes(), dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
        data.setflags(write=False)
    return Tensor(index=index, name=name, type_name=type_name, dtype=dtype, shape=shape, shape_signature=sig,
                  quant=quant, data=data, is_variable=bool(t.IsVariable()))


def _check_dataflow(graph: Graph) -> None:
    """Every operator input must be produced before it is read: a constant, a variable, a model input,
    or the output of an earlier operator. Outputs must not overwrite constants or be written twice."""
    available = set(graph.inputs)
    for t in graph.tensors:
        # an empty tensor holds no bytes, so reading it before any write is harmless (and legal)
        if t.is_constant or t.is_variable or (t.shape and 0 in t.shape):
            available.add(t.index)
    written: set[int] = set()
    for op in graph.operators:
        for i in op.inputs:
            if i != -1 and i not in available:
                raise ModelError(f"{op.describe()} reads {graph.tensors[i].describe()} before anything writes it")
        for o in op.outputs:
            t = graph.tensors[o]
            if t.is_constant:
                raise ModelError(f"{op.describe()} writes to constant {t.describe()}")
            if o in written or o in graph.inputs:
                raise ModelError(f"{op.describe()} writes {t.describe()}, which is already written")
            written.add(o)
            available.add(o)
    for o in graph.outputs:
        if o not in available:
            raise ModelError(f"model output {graph.tensors[o].describe()} is never written")


def read_metadata(source: Union[str, Path, bytes, bytearray, memoryview]) -> dict[str, bytes]:
    """The model's metadata entries (Model.metadata: name -> contents of the buffer it points at),
    e.g. "edgelstm.preprocessing", the JSON normalisation record `edgelstm convert` embeds."""
    raw = model_bytes(source)
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ModelError("not a .tflite model: the flatbuffer identifier is not 'TFL3'")
    try:
        fb = _fb.Model.GetRootAsModel(raw, 0)
        out: dict[str, bytes] = {}
        for i in range(fb.MetadataLength()):
            entry = fb.Metadata(i)
            name = (entry.Name() or b"").decode("utf-8", "replace")
            b = entry.Buffer()
            if not 0 <= b < fb.BuffersLength():
                raise ModelError(f"metadata '{name}' refers to buffer {b}, but the model has {fb.BuffersLength()}")
            buf = fb.Buffers(b)
            off, size = int(buf.Offset()), int(buf.Size())
            if off > 1:
                if off + size > len(raw):
                    raise ModelError(f"metadata '{name}': buffer {b} points past the end of the file")
                out[name] = bytes(raw[off:off + size])
            else:
                out[name] = buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
        return out
    except ModelError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"malformed .tflite metadata ({type(exc).__name__}: {exc})") from None
