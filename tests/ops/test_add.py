"""ADD int8: Keras models through the stock converter, plus single-op models built here.

The converter only makes ADDs whose inputs come from LSTMs (or constants), so the values it feeds
are whatever the LSTM produces. To cover every int8 pair, every fused activation and arbitrary
scales, this file also builds one-op .tflite flatbuffers directly (the `tflite` schema bindings'
builder functions) and compares them with LiteRT in the same way. The builder and the patching
helpers are imported by the other tests/ops/test_{mul,concatenation,quantize}.py files.
"""
from __future__ import annotations

import importlib
import math
import struct
from dataclasses import dataclass
from typing import Optional, Sequence

import flatbuffers
import numpy as np
import pytest
import tflite as fb

import oracle
import zoo
from edgelstm.errors import ModelError
from edgelstm.ops import build_kernel
from edgelstm.tflite_reader import Graph, Operator, Quantization, Tensor, read_model

# -- helpers shared with the other op tests ----------------------------------------------------------
_TYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.int8): 9, np.dtype(np.int16): 7}
ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}


@dataclass
class T:
    """A tensor of a hand-built model: dtype, shape, optional (scale, zero point), constant data."""

    dtype: type
    shape: Sequence[int]
    quant: Optional[tuple[float, int]] = None
    data: Optional[np.ndarray] = None
    signature: Optional[Sequence[int]] = None


def _fbmod(name: str):
    # `tflite.X` is the generated class; the module next to it holds the builder functions
    return importlib.import_module(f"tflite.{name}")


def single_op_model(opcode: str, inputs: list[T], outputs: list[T],
                    options: Optional[tuple[str, dict]] = None) -> bytes:
    """A .tflite model with one builtin op; non-constant inputs become the model inputs in order.

    options: (options table name, e.g. "AddOptions", {field name: value}).
    """
    b = flatbuffers.Builder(4096)
    tensors = inputs + outputs
    buf_ids, buf_datas = [], [None]
    for t in tensors:
        if t.data is not None:
            buf_ids.append(len(buf_datas))
            buf_datas.append(np.ascontiguousarray(t.data, dtype=t.dtype).tobytes())
        else:
            buf_ids.append(0)

    buffers = []
    for data in buf_datas:
        vec = b.CreateNumpyVector(np.frombuffer(data, np.uint8)) if data else None
        m = _fbmod("Buffer")
        m.BufferStart(b)
        if vec is not None:
            m.BufferAddData(b, vec)
        buffers.append(m.BufferEnd(b))

    tensor_offs = []
    for i, t in enumerate(tensors):
        name = b.CreateString(f"t{i}")
        shape = b.CreateNumpyVector(np.asarray(t.shape, np.int32))
        sig = b.CreateNumpyVector(np.asarray(t.signature, np.int32)) if t.signature is not None else None
        q = None
        if t.quant is not None:
            scale = b.CreateNumpyVector(np.asarray([t.quant[0]], np.float32))
            zp = b.CreateNumpyVector(np.asarray([t.quant[1]], np.int64))
            qm = _fbmod("QuantizationParameters")
            qm.QuantizationParametersStart(b)
            qm.QuantizationParametersAddScale(b, scale)
            qm.QuantizationParametersAddZeroPoint(b, zp)
            q = qm.QuantizationParametersEnd(b)
        tm = _fbmod("Tensor")
        tm.TensorStart(b)
        tm.TensorAddShape(b, shape)
        if sig is not None:
            tm.TensorAddShapeSignature(b, sig)
        tm.TensorAddType(b, _TYPE_CODES[np.dtype(t.dtype)])
        tm.TensorAddBuffer(b, buf_ids[i])
        tm.TensorAddName(b, name)
        if q is not None:
            tm.TensorAddQuantization(b, q)
        tensor_offs.append(tm.TensorEnd(b))

    opts = None
    if options is not None:
        om = _fbmod(options[0])
        getattr(om, f"{options[0]}Start")(b)
        for field, value in options[1].items():
            getattr(om, f"{options[0]}Add{field}")(b, value)
        opts = getattr(om, f"{options[0]}End")(b)

    n_in = len(inputs)
    op_in = b.CreateNumpyVector(np.arange(n_in, dtype=np.int32))
    op_out = b.CreateNumpyVector(np.arange(n_in, len(tensors), dtype=np.int32))
    om = _fbmod("Operator")
    om.OperatorStart(b)
    om.OperatorAddOpcodeIndex(b, 0)
    om.OperatorAddInputs(b, op_in)
    om.OperatorAddOutputs(b, op_out)
    if opts is not None:
        om.OperatorAddBuiltinOptionsType(b, getattr(fb.BuiltinOptions, options[0]))
        om.OperatorAddBuiltinOptions(b, opts)
    op = om.OperatorEnd(b)

    def vector(start_fn, offsets):
        start_fn(b, len(offsets))
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    sgm = _fbmod("SubGraph")
    t_vec = vector(sgm.SubGraphStartTensorsVector, tensor_offs)
    o_vec = vector(sgm.SubGraphStartOperatorsVector, [op])
    g_in = b.CreateNumpyVector(np.asarray([i for i, t in enumerate(inputs) if t.data is None], np.int32))
    g_out = b.CreateNumpyVector(np.arange(n_in, len(tensors), dtype=np.int32))
    sgm.SubGraphStart(b)
    sgm.SubGraphAddTensors(b, t_vec)
    sgm.SubGraphAddInputs(b, g_in)
    sgm.SubGraphAddOutputs(b, g_out)
    sgm.SubGraphAddOperators(b, o_vec)
    sg = sgm.SubGraphEnd(b)

    code = getattr(fb.BuiltinOperator, opcode)
    ocm = _fbmod("OperatorCode")
    ocm.OperatorCodeStart(b)
    ocm.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
    ocm.OperatorCodeAddBuiltinCode(b, code)
    ocm.OperatorCodeAddVersion(b, 1)
    occ = ocm.OperatorCodeEnd(b)

    mm = _fbmod("Model")
    oc_vec = vector(mm.ModelStartOperatorCodesVector, [occ])
    sg_vec = vector(mm.ModelStartSubgraphsVector, [sg])
    bu_vec = vector(mm.ModelStartBuffersVector, buffers)
    desc = b.CreateString("edgelstm test")
    mm.ModelStart(b)
    mm.ModelAddVersion(b, 3)
    mm.ModelAddOperatorCodes(b, oc_vec)
    mm.ModelAddSubgraphs(b, sg_vec)
    mm.ModelAddDescription(b, desc)
    mm.ModelAddBuffers(b, bu_vec)
    b.Finish(mm.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def patched(model: bytes, quant: Optional[dict[int, tuple[Optional[float], Optional[int]]]] = None,
            options: Optional[list[tuple[int, int, str, int]]] = None) -> bytes:
    """Overwrite scalars of a converted model in place.

    quant: {tensor index: (new scale or None, new zero point or None)} for per-tensor tensors.
    options: [(op index, vtable slot, struct format, value)]; the field must already be stored
    (flatbuffers omit fields equal to their default, and those cannot be patched in place).
    """
    buf = bytearray(model)
    sg = fb.Model.GetRootAsModel(buf, 0).Subgraphs(0)
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


def ops_of(model: bytes, opcode: str) -> list[Operator]:
    return [op for op in read_model(model).operators if op.opcode == opcode]


def synthetic_kernel(opcode: str, tensors: list[Tensor], n_inputs: int, options: Optional[dict] = None):
    """build_kernel on an in-memory graph (for validation tests that no converter would produce)."""
    op = Operator(index=0, opcode=opcode, version=1, inputs=tuple(range(n_inputs)),
                  outputs=tuple(range(n_inputs, len(tensors))), intermediates=(), options=options or {})
    graph = Graph(tensors=tensors, operators=[op], inputs=tuple(range(n_inputs)),
                  outputs=tuple(range(n_inputs, len(tensors))))
    return build_kernel(op, graph, "tflite")


def tensor(index: int, dtype, shape, quant=None, signature=None, data=None, per_channel=None) -> Tensor:
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


def all_int8_pairs() -> tuple[np.ndarray, np.ndarray]:
    """[256, 1] and [1, 256] arrays that broadcast to every (a, b) int8 pair."""
    v = np.arange(-128, 128, dtype=np.int8)
    return v.reshape(256, 1), v.reshape(1, 256)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.float32(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


# -- models from the stock converter -----------------------------------------------------------------
@zoo.zoo_model("ops_add_branches")
def _add_branches():
    """Two LSTM(8) branches joined by Add (plain, and with a ReLU the converter fuses) and Concatenate.
    The ReLU branch feeds only a Dense, so its output quantization can be patched freely."""
    K = zoo._keras(); L = K.layers; zoo._seed(21)
    x = K.Input((12, 5), batch_size=1)
    a = L.LSTM(8)(x)
    b = L.LSTM(8)(x)
    s = L.Add()([a, b])
    r = L.ReLU()(L.Add()([b, L.Dense(8)(a)]))
    y = L.Concatenate()([s, a, b])
    m = K.Model(x, [L.Dense(3)(y), L.Dense(2)(r)])
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


@zoo.zoo_model("ops_add_bn_dynamic")
def _add_bn_dynamic():
    """LSTM(return_sequences) + BatchNormalization with a dynamic time axis: MUL and ADD by constant
    [C] vectors broadcast over [1, T, C] with T = -1 in the shape signature."""
    K = zoo._keras(); L = K.layers; zoo._seed(22)
    x = K.Input((None, 4), batch_size=1)
    bn = L.BatchNormalization()
    m = K.Model(x, bn(L.LSTM(8, return_sequences=True)(x)))
    m = zoo._randomize_biases(m)
    rng = np.random.default_rng(22)
    bn.set_weights([rng.uniform(0.4, 1.6, 8).astype(np.float32), rng.normal(0, 0.4, 8).astype(np.float32),
                    rng.normal(0, 0.2, 8).astype(np.float32), rng.uniform(0.3, 2.5, 8).astype(np.float32)])
    return m, zoo._calib((1, 10, 4))


def test_add_two_lstm_branches():
    model = zoo.build("ops_add_branches")
    adds = ops_of(model, "ADD")
    assert {op.options["fused_activation_function"] for op in adds} == {ACT["NONE"], ACT["RELU"]}
    checked = sum(oracle.check_ops(model, x, "ADD") for x in zoo.sample_inputs(model, n_random=4))
    assert checked == 7 * len(adds)


def test_add_broadcast_constant_with_dynamic_time():
    model = zoo.build("ops_add_bn_dynamic")
    (add,) = ops_of(model, "ADD")
    g = read_model(model)
    assert g.tensors[add.inputs[0]].shape_signature == (1, -1, 8) and g.tensors[add.inputs[1]].shape == (8,)
    checked = 0
    for steps in (1, 7, 23):
        for x in zoo.sample_inputs(model, n_random=2, seed=steps, time_steps=steps):
            checked += oracle.check_ops(model, x, "ADD")
    assert checked == 15


def test_add_patched_activations_and_zero_points():
    """The converter's RELU-fused ADD, re-patched to RELU6 / RELU_N1_TO_1 and to an output scale and
    zero point at which the clamp bounds fall inside the int8 range."""
    model = zoo.build("ops_add_branches")
    op = next(o for o in ops_of(model, "ADD") if o.options["fused_activation_function"] == ACT["RELU"])
    y = op.outputs[0]
    inputs = zoo.sample_inputs(model, n_random=2)
    for act, scale, zp in (("RELU", 0.004, 17), ("RELU6", 0.03, -100), ("RELU_N1_TO_1", 0.02, 3),
                           ("RELU_N1_TO_1", 0.012, -128), ("NONE", 0.002, -9)):
        m = patched(model, quant={y: (scale, zp)}, options=[(op.index, 4, "<b", ACT[act])])
        g = read_model(m)
        k = build_kernel(g.operators[op.index], g, "tflite")
        if act != "NONE":
            assert (k.act_min, k.act_max) != (-128, 127)
        assert sum(oracle.check_ops(m, x, "ADD") for x in inputs) == 2 * len(inputs)


# -- hand-built single ADD ops: every int8 pair ---------------------------------------------------------
def _add_model(sa, za, sb, zb, sy, zy, act="NONE", shape_a=(256, 1), shape_b=(1, 256)):
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    return single_op_model("ADD", [T(np.int8, shape_a, (sa, za)), T(np.int8, shape_b, (sb, zb))],
                           [T(np.int8, out_shape, (sy, zy))],
                           ("AddOptions", {"FusedActivationFunction": ACT[act]}))


def test_add_every_int8_pair_random_quantization():
    rng = np.random.default_rng(5)
    a, b = all_int8_pairs()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    for i in range(12):
        sa, sb = log_uniform(rng, 1e-3, 0.5), log_uniform(rng, 1e-3, 0.5)
        if i % 3 == 0:
            sb = sa  # equal scales: multipliers of exactly 1/2
        sy = log_uniform(rng, 0.3, 3.0) * max(sa, sb)
        za, zb, zy = (int(v) for v in rng.integers(-128, 128, 3))
        model = _add_model(sa, za, sb, zb, sy, zy, acts[i % 4])
        assert oracle.check_ops(model, [a, b], "ADD") == 1


def test_add_broadcast_shapes():
    rng = np.random.default_rng(6)
    for sa_shape, sb_shape in (((2, 3, 1, 5), (3, 4, 1)), ((1, 7, 6), (6,)), ((6,), (1, 7, 6)),
                               ((4, 5), (4, 5)), ((1,), (3, 1, 2, 1, 2)), ((2, 1, 3), (1, 1))):
        model = _add_model(0.02, 5, 0.013, -7, 0.03, 1, "RELU", sa_shape, sb_shape)
        x = [rng.integers(-128, 128, s, dtype=np.int8) for s in (sa_shape, sb_shape)]
        assert oracle.check_ops(model, x, "ADD") == 1


def test_add_multiplier_arithmetic_is_double():
    """At these scales (found by search) float32 instead of double arithmetic for the three
    multipliers changes an output: LiteRT must agree with the kernel and disagree with that variant."""
    from edgelstm.fixedpoint import quantize_multiplier
    from edgelstm.ops.add import ADD_LEFT_SHIFT, _add_int8

    sa, sb, sy, za, zb, zy = 0.0013557043857872486, 0.04815424233675003, 0.030499935150146484, 38, -40, -71
    a, b = all_int8_pairs()
    model = _add_model(sa, za, sb, zb, sy, zy)
    assert oracle.check_ops(model, [a, b], "ADD") == 1

    f32 = np.float32
    twice = f32(2) * max(f32(sa), f32(sb))
    (ma, sha), (mb, shb), (my, shy) = (
        (int(m), int(s)) for m, s in (quantize_multiplier(float(v)) for v in (
            f32(sa) / twice, f32(sb) / twice, twice / (f32(1 << ADD_LEFT_SHIFT) * f32(sy)))))
    fa = np.ascontiguousarray(np.broadcast_to(a, (256, 256))).ravel()
    fb_ = np.ascontiguousarray(np.broadcast_to(b, (256, 256))).ravel()
    float_way = np.empty(fa.size, np.int8)
    _add_int8(fa, fb_, float_way, -za, -zb, ma, sha, mb, shb, my, shy, zy, -128, 127, ADD_LEFT_SHIFT)
    graph = read_model(model)
    ours = build_kernel(graph.operators[0], graph, "tflite").run([a, b])[0].ravel()
    assert np.count_nonzero(ours != float_way) >= 1


# -- what is refused -----------------------------------------------------------------------------------
def test_add_rejects_bad_models():
    q = (0.01, 0)
    cases = [
        ([tensor(0, np.float32, (1, 8)), tensor(1, np.float32, (1, 8)), tensor(2, np.float32, (1, 8))], {}, "must be int8"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 5), q), tensor(2, np.int8, (1, 8), q)], {}, "broadcast"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (8,), q), tensor(2, np.int8, (1, 9), q)], {}, "declared"),
        ([tensor(0, np.int8, (1, 8)), tensor(1, np.int8, (1, 8), q), tensor(2, np.int8, (1, 8), q)], {}, "no quantization"),
        ([tensor(0, np.int8, (1, 8), per_channel=[0.1] * 8), tensor(1, np.int8, (1, 8), q),
          tensor(2, np.int8, (1, 8), q)], {}, "per tensor"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q), tensor(2, np.int8, (1, 8), q)],
         {"fused_activation_function": ACT["TANH"]}, "TANH"),
        # output multiplier 2 * 0.01 / (2^20 * 1e-9) >= 1: LiteRT aborts in Prepare
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q), tensor(2, np.int8, (1, 8), (1e-9, 0))],
         {}, "multiplier"),
    ]
    for tensors, options, message in cases:
        with pytest.raises(ModelError, match=message):
            synthetic_kernel("ADD", tensors, 2, options)
    with pytest.raises(ModelError, match="expects 2 inputs"):
        synthetic_kernel("ADD", [tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q)], 1)


def test_add_rejects_bad_run_time_inputs():
    q = (0.01, 0)
    k = synthetic_kernel("ADD", [tensor(0, np.int8, (1, 4, 8), q, signature=(1, -1, 8)),
                                 tensor(1, np.int8, (8,), q), tensor(2, np.int8, (1, 4, 8), q, signature=(1, -1, 8))], 2)
    ok = k.run([np.zeros((1, 9, 8), np.int8), np.zeros(8, np.int8)])[0]
    assert ok.shape == (1, 9, 8)
    for bad in ([np.zeros((1, 9, 7), np.int8), np.zeros(8, np.int8)],
                [np.zeros((1, 9, 8), np.int16), np.zeros(8, np.int8)],
                [np.zeros((9, 8), np.int8), np.zeros(8, np.int8)]):
        with pytest.raises(ModelError):
            k.run(bad)
