"""Making .tflite models for the op tests, and inputs for them: single-op flatbuffers built with the
schema's object API (ai_edge_litert.schema_py_generated), edits of converted models, in-memory graphs
for validation tests no converter would produce, and int8 input batches.

LiteRT runs every model built or edited here (tests/oracle.py), so what the schema allows but LiteRT
refuses shows up as a refusal, never as a silent disagreement.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as S

from edgelstm.ops import build_kernel
from edgelstm.tflite_reader import ACTIVATION_NAMES, Graph, Operator, Quantization, Tensor, read_model

#: fused activation codes by name (NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT)
ACT = {name: code for code, name in ACTIVATION_NAMES.items()}

TENSOR_TYPES = {np.dtype(np.float32): S.TensorType.FLOAT32, np.dtype(np.int32): S.TensorType.INT32,
                np.dtype(np.uint8): S.TensorType.UINT8, np.dtype(np.int64): S.TensorType.INT64,
                np.dtype(np.bool_): S.TensorType.BOOL, np.dtype(np.int16): S.TensorType.INT16,
                np.dtype(np.int8): S.TensorType.INT8}


# -- serializing and editing ------------------------------------------------------------------------
def pack(m: S.ModelT) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def edit(model_bytes: bytes, fn: Callable[[S.ModelT], None]) -> bytes:
    """Apply `fn` to the model's object tree and re-serialize it."""
    m = S.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    fn(m)
    return pack(m)


def ops_of(m: S.ModelT, opcode: str) -> list[S.OperatorT]:
    """The operators of `opcode` in the first subgraph of an object tree."""
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    want = getattr(S.BuiltinOperator, opcode)
    return [op for op in m.subgraphs[0].operators if codes[op.opcodeIndex] == want]


def graph_ops(model_bytes: bytes, opcode: str) -> list[Operator]:
    """The operators of `opcode` as edgelstm's reader sees them."""
    return [op for op in read_model(model_bytes).operators if op.opcode == opcode]


def tensor_values(m: S.ModelT, t: S.TensorT, dtype) -> np.ndarray:
    return np.frombuffer(bytes(bytearray(m.buffers[t.buffer].data)), dtype=dtype).reshape(t.shape).copy()


def set_tensor_values(m: S.ModelT, t: S.TensorT, a: np.ndarray) -> None:
    m.buffers[t.buffer].data = np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=np.uint8)


def set_activation(op: S.OperatorT, name: str) -> None:
    op.builtinOptions.fusedActivationFunction = ACT[name]


def per_tensor_weights(m: S.ModelT, op: S.OperatorT, zero_point: int = 0) -> None:
    """Requantize the op's per-channel weights (input 1) to one scale/zero point, and its bias to
    the matching per-tensor scale, keeping the real values as close as int8 allows."""
    g = m.subgraphs[0]
    wt, xt = g.tensors[op.inputs[1]], g.tensors[op.inputs[0]]
    q = wt.quantization
    w = tensor_values(m, wt, np.int8).astype(np.float64)
    bshape = [1] * w.ndim
    bshape[q.quantizedDimension] = -1
    w_scales = np.asarray(q.scale, np.float64).reshape(bshape)
    real = w * w_scales
    s = np.float32(np.abs(real).max() / (127 - abs(zero_point)))
    wq = np.clip(np.round(real / float(s)) + zero_point, -128, 127).astype(np.int8)
    set_tensor_values(m, wt, wq)
    q.scale, q.zeroPoint, q.quantizedDimension = [float(s)], [zero_point], 0
    if len(op.inputs) > 2 and op.inputs[2] != -1:
        bt = g.tensors[op.inputs[2]]
        b_real = tensor_values(m, bt, np.int32) * np.asarray(bt.quantization.scale, np.float64)
        s_b = np.float32(np.float32(xt.quantization.scale[0]) * s)
        set_tensor_values(m, bt, np.round(b_real / float(s_b)).astype(np.int32))
        bt.quantization.scale, bt.quantization.zeroPoint = [float(s_b)], [0]


def patched(model: bytes, quant: Optional[dict[int, tuple[Optional[float], Optional[int]]]] = None,
            options: Optional[list[tuple[int, int, str, int]]] = None) -> bytes:
    """Overwrite scalars of a converted model in place, leaving every other byte as it was.

    quant: {tensor index: (new scale or None, new zero point or None)} for per-tensor tensors.
    options: [(op index, vtable slot, struct format, value)]; the field must already be stored
    (flatbuffers omit fields equal to their default, and those cannot be patched in place).
    """
    buf = bytearray(model)
    sg = S.Model.GetRootAs(buf, 0).Subgraphs(0)
    for idx, (scale, zp) in (quant or {}).items():
        q = sg.Tensors(idx).Quantization()
        if scale is not None:
            struct.pack_into("<f", buf, q._tab.Vector(q._tab.Offset(8)), scale)
        if zp is not None:
            struct.pack_into("<q", buf, q._tab.Vector(q._tab.Offset(10)), zp)
    for op_index, slot, fmt, value in options or []:
        table = sg.Operators(op_index).BuiltinOptions()
        off = table.Offset(slot)
        assert off, f"option slot {slot} of op {op_index} is not stored"
        struct.pack_into(fmt, buf, table.Pos + off, value)
    out = bytes(buf)
    before, after = read_model(model), read_model(out)
    for t0, t1 in zip(before.tensors, after.tensors):  # nothing else moved (no shared vectors)
        if t0.index not in (quant or {}) and t0.quant is not None:
            assert t1.quant.s == t0.quant.s and t1.quant.zp == t0.quant.zp
    return out


# -- single-op models -------------------------------------------------------------------------------
@dataclass
class T:
    """A tensor of a hand-built model: dtype, shape, optional per-tensor (scale, zero point),
    constant data (None: a model input or an intermediate), shape signature and name."""

    dtype: Any
    shape: Sequence[int]
    quant: Optional[tuple[float, int]] = None
    data: Optional[np.ndarray] = None
    signature: Optional[Sequence[int]] = None
    name: Optional[str] = None


def options(table: str, **fields) -> Any:
    """A builtin options object, e.g. options("AddOptions", fusedActivationFunction=1); the field
    names are the object API's (lowerCamelCase)."""
    o = getattr(S, table + "T")()
    for k, v in fields.items():
        if not hasattr(o, k):
            raise AttributeError(f"{table} has no field {k!r}")
        setattr(o, k, v)
    return o


def single_op_model(opcode: str, inputs: Sequence[Optional[T]], outputs: Sequence[T],
                    builtin_options: Any = None, version: int = 1) -> bytes:
    """A .tflite model with one builtin op. Tensors are numbered in order (inputs, then outputs);
    an input given as None is an absent optional input (-1). Constant inputs (`data`) get a buffer
    each, the other inputs become the model inputs in order, and every output is a model output.
    `builtin_options` is an object made by `options()`."""
    m = S.ModelT()
    m.version, m.buffers, m.description = 3, [S.BufferT()], b"edgelstm test"
    code = getattr(S.BuiltinOperator, opcode)
    oc = S.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
    m.operatorCodes = [oc]
    sg = S.SubGraphT()
    sg.tensors = []

    def add(spec: T) -> int:
        t = S.TensorT()
        t.name = (spec.name or f"t{len(sg.tensors)}").encode()
        t.shape = np.array(spec.shape, np.int32)
        if spec.signature is not None:
            t.shapeSignature = np.array(spec.signature, np.int32)
        dtype = np.dtype(spec.dtype)
        t.type, t.buffer = TENSOR_TYPES[dtype], 0
        if spec.quant is not None:
            q = S.QuantizationParametersT()
            q.scale, q.zeroPoint = [float(spec.quant[0])], [int(spec.quant[1])]
            t.quantization = q
        if spec.data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(spec.data, dtype).tobytes(), np.uint8)
            m.buffers.append(b)
            t.buffer = len(m.buffers) - 1
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    ins = [-1 if s is None else add(s) for s in inputs]
    outs = [add(s) for s in outputs]
    op = S.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, ins, outs
    if builtin_options is not None:
        op.builtinOptionsType = getattr(S.BuiltinOptions, type(builtin_options).__name__[:-1])
        op.builtinOptions = builtin_options
    sg.operators = [op]
    sg.inputs = [i for i, s in zip(ins, inputs) if s is not None and s.data is None]
    sg.outputs = outs
    m.subgraphs = [sg]
    return pack(m)


def one_input_model(opcode: str, x_shape, x_dtype, consts, out_shape, builtin_options=None, x_sig=None,
                    out_sig=None, in_q=(0.05, 3), out_q=None, out_dtype=None) -> bytes:
    """A single-op model whose input 0, "x", is the model input and whose other inputs are constant
    tensors, one per entry of `consts` (None = an absent optional input); one output "y". Integer
    tensors of the quantized types (int8, uint8, int16) get per-tensor quantization, the output
    `out_q` (default: the input's)."""
    quantized = np.dtype(x_dtype) in (np.int8, np.uint8, np.int16)
    x = T(x_dtype, x_shape, in_q if quantized else None, signature=x_sig, name="x")
    cs = [None if c is None else T(np.asarray(c).dtype, np.asarray(c).shape, data=np.asarray(c), name=f"c{k}")
          for k, c in enumerate(consts)]
    y = T(out_dtype or x_dtype, out_shape, (out_q or in_q) if quantized else None, signature=out_sig, name="y")
    return single_op_model(opcode, [x, *cs], [y], builtin_options)


# -- in-memory graphs -------------------------------------------------------------------------------
def tensor(index: int, dtype, shape, quant=None, signature=None, data=None, per_channel=None) -> Tensor:
    """A reader Tensor, as read_model would make it."""
    q = None
    if quant is not None:
        q = Quantization(scale=np.asarray([quant[0]], np.float32), zero_point=np.asarray([quant[1]], np.int64))
    if per_channel is not None:
        q = Quantization(scale=np.asarray(per_channel, np.float32),
                         zero_point=np.zeros(len(per_channel), np.int64), axis=len(shape) - 1)
    dt = np.dtype(dtype)
    names = {np.dtype(np.int8): "INT8", np.dtype(np.float32): "FLOAT32", np.dtype(np.int32): "INT32",
             np.dtype(np.int16): "INT16"}
    shape = tuple(shape)
    return Tensor(index=index, name=f"t{index}", type_name=names[dt], dtype=dt, shape=shape,
                  shape_signature=tuple(signature) if signature is not None else shape, quant=q,
                  data=data, is_variable=False)


def synthetic_kernel(opcode: str, tensors: list[Tensor], n_inputs: int, options: Optional[dict] = None):
    """build_kernel on an in-memory graph (for validation tests that no converter would produce)."""
    op = Operator(index=0, opcode=opcode, version=1, inputs=tuple(range(n_inputs)),
                  outputs=tuple(range(n_inputs, len(tensors))), intermediates=(), options=options or {})
    graph = Graph(tensors=tensors, operators=[op], inputs=tuple(range(n_inputs)),
                  outputs=tuple(range(n_inputs, len(tensors))))
    return build_kernel(op, graph, "tflite")


# -- inputs -----------------------------------------------------------------------------------------
def int8_inputs(model_bytes: bytes, n_random: int = 3, seed: int = 0,
                time_steps: int = 20) -> list[list[np.ndarray]]:
    """Random int8 inputs plus the constant extremes (-128, 127, zero point), shaped from the graph
    alone (dynamic dimensions become `time_steps`), so no other kernel is needed."""
    g = read_model(model_bytes)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_random + 3):
        xs = []
        for i in g.inputs:
            t = g.tensors[i]
            assert t.dtype == np.int8, f"{t.describe()} is not int8"
            shape = tuple(time_steps if d == -1 else d for d in t.shape_signature)
            if k < n_random:
                xs.append(rng.integers(-128, 128, size=shape, dtype=np.int8))
            else:
                xs.append(np.full(shape, [-128, 127, t.quant.zp][k - n_random], dtype=np.int8))
        out.append(xs)
    return out


def random_input(shape, dtype, seed=0) -> np.ndarray:
    """Random values of any tensor type (integers within +-2^20)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if dt.kind == "f":
        return rng.normal(size=shape).astype(dt)
    info = np.iinfo(dt)
    return rng.integers(max(info.min, -1 << 20), min(info.max, 1 << 20), size=shape, endpoint=True).astype(dt)


def all_int8_pairs() -> tuple[np.ndarray, np.ndarray]:
    """[256, 1] and [1, 256] arrays that broadcast to every (a, b) int8 pair."""
    v = np.arange(-128, 128, dtype=np.int8)
    return v.reshape(256, 1), v.reshape(1, 256)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
