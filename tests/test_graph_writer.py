"""The graph layer's .tflite writer (edgelstm.graph.writer / schema), built on the `tflite` package's
generated builder functions instead of ai-edge-litert's object API.

Read -> write -> read gives the same graph (every tensor, buffer, quantization, shape signature,
variable flag, intermediate, builtin option, metadata entry and signature), and the written model
computes bit for bit what the original computes, in LiteRT and in edgelstm. Every builtin options
table of the schema round-trips with non-default values, a model can be written from scratch (the
exporter's case), and what the bindings cannot represent is refused, never dropped.
"""
from __future__ import annotations

import dataclasses

import flatbuffers
import numpy as np
import pytest
import tflite

import edgelstm
import zoo
from edgelstm import lstm_shared
from edgelstm.errors import ModelError
from edgelstm.graph.schema import SCALAR, STRING, STRINGS, TABLE, TABLES, VECTOR, Table, enum_members, layout, \
    read_table, write_table
from edgelstm.graph.writer import add_constant, pack, unpack, with_metadata
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_metadata, read_model

MODELS = ["basic", "tiny", "odd_h7_f5", "wide_h300", "long_t500", "stacked3", "seq2seq_td", "bidirectional",
          "conv1d_lstm", "pool_heads", "concat_add_flatten", "batchnorm_relu", "batch4", "dynamic_time",
          "small_cell_scale", "time_major", "dynamic_time_dense", "float_io", "trained"]


def _plain(value):
    """A reader value in a form == compares (arrays as (dtype, shape, list))."""
    if isinstance(value, np.ndarray):
        return (str(value.dtype), value.shape, value.tolist())
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _outputs(runner, samples) -> list[list[np.ndarray]]:
    return [[np.asarray(y) for y in runner(xs)] for xs in samples]


def _edgelstm_runner(data: bytes):
    m = edgelstm.load(data)

    def run(xs):
        y = m.run(xs if len(xs) > 1 else xs[0])
        return list(y) if isinstance(y, (list, tuple)) else [y]
    return run


@pytest.mark.parametrize("name", MODELS)
def test_round_trip_keeps_the_graph(name):
    raw = zoo.build(name)
    tree = unpack(raw)
    out = pack(tree)
    assert unpack(out) == tree                     # every field of every table, buffers included
    assert _plain(read_model(out)) == _plain(read_model(raw))
    assert read_metadata(out) == read_metadata(raw)
    g = read_model(out)
    lstms = [op for op in g.operators if op.opcode == lstm_shared.OPCODE]
    if lstms:  # what the LSTM needs survives: state variables, 5 intermediates, shape signatures
        assert all(len(op.intermediates) == lstm_shared.N_INTERMEDIATES for op in lstms)
        assert all(g.tensors[op.inputs[k]].is_variable for op in lstms
                   for k in (lstm_shared.OUTPUT_STATE, lstm_shared.CELL_STATE))
    if name.startswith("dynamic"):
        assert -1 in g.tensors[g.inputs[0]].shape_signature
    assert tree.signature_defs and tree.metadata  # the converter's signature and runtime-version entry


@pytest.mark.parametrize("name", MODELS)
def test_written_model_computes_the_same(name):
    """Same outputs as the original in LiteRT and in edgelstm, and edgelstm bit-exact with LiteRT."""
    raw = zoo.build(name)
    out = pack(unpack(raw))
    samples = zoo.sample_inputs(raw, n_random=2, time_steps=7)
    lit_raw = _outputs(get_reference("litert", raw).run, samples)
    lit_out = _outputs(get_reference("litert", out).run, samples)
    edge_raw = _outputs(_edgelstm_runner(raw), samples)
    edge_out = _outputs(_edgelstm_runner(out), samples)
    for a, b, c, d in zip(lit_raw, lit_out, edge_raw, edge_out):
        for w, x, y, z in zip(a, b, c, d):
            assert w.dtype == x.dtype == y.dtype == z.dtype and w.shape == x.shape == y.shape == z.shape
            assert np.array_equal(w, x) and np.array_equal(y, z) and np.array_equal(x, z)


def test_buffers_are_16_byte_aligned():
    """schema.fbs asks for it (force_align: 16); the Python generator alone does not do it."""
    out = pack(unpack(zoo.build("stacked3")))
    fb = tflite.Model.GetRootAs(out, 0)
    base = np.frombuffer(out, np.uint8).ctypes.data
    offsets = [fb.Buffers(k).DataAsNumpy().ctypes.data - base for k in range(fb.BuffersLength())
               if fb.Buffers(k).DataLength()]
    assert len(offsets) > 10 and all(off % 16 == 0 for off in offsets), offsets


def _non_default(f, kind: str):
    """A value for field f of table `kind` that the builder must write out."""
    if f.kind == SCALAR:
        if f.flags.py_type is bool:
            return not f.default
        if f.flags.py_type is float:
            return f.default + 0.5
        info = np.iinfo(f.dtype)
        return f.default + 1 if f.default < info.max else f.default - 1
    if f.kind == VECTOR:
        return np.asarray([1, 0, 1], f.dtype)
    if f.kind == STRING:
        return f"{kind}.{f.name}"
    if f.kind == STRINGS:
        return ["a", "bc"]
    if f.kind == TABLE:
        return Table(f.table)
    if f.kind == TABLES:
        return [Table(f.table), Table(f.table)]
    return None


@pytest.mark.parametrize("union", ["BuiltinOptions", "BuiltinOptions2"])
def test_every_builtin_options_table_round_trips(union):
    """Every member of the options unions, every field set away from its default, inside an Operator:
    read back equal, and the generated accessors see the right union type and values."""
    field_name = "builtin_options" if union == "BuiltinOptions" else "builtin_options2"
    members = {code: kind for code, kind in enum_members(union).items() if code != 0}
    assert len(members) > (100 if union == "BuiltinOptions" else 10)
    for code, kind in members.items():
        options = Table(kind)
        for f in layout(kind).fields:
            setattr(options, f.name, _non_default(f, kind))
        op = Table("Operator", opcode_index=2, inputs=[0, -1, 1], outputs=[2], **{field_name: options})
        b = flatbuffers.Builder(256)
        b.Finish(write_table(b, op))
        buf = b.Output()
        back = read_table(buf, _root(buf), "Operator")
        assert back == op, kind
        gen = tflite.Operator.GetRootAs(buf, 0)
        got_type = gen.BuiltinOptionsType() if union == "BuiltinOptions" else gen.BuiltinOptions2Type()
        assert got_type == code, kind
        table = gen.BuiltinOptions() if union == "BuiltinOptions" else gen.BuiltinOptions2()
        typed = getattr(tflite, kind)()
        typed.Init(table.Bytes, table.Pos)
        for f in layout(kind).fields:
            if f.kind == SCALAR:
                assert getattr(typed, f.accessor)() == pytest.approx(getattr(options, f.name)), (kind, f.name)


def _root(buf: bytes) -> int:
    return int.from_bytes(buf[:4], "little")


def test_model_from_scratch_runs_in_litert_and_edgelstm():
    """The exporter's case: an int8 FULLY_CONNECTED model written from Tables alone."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, size=(3, 4), dtype=np.int8)
    bias = rng.integers(-500, 500, size=3, dtype=np.int32)

    def q(scale, zp):
        return Table("QuantizationParameters", scale=[scale], zero_point=[zp])

    fc = tflite.BuiltinOperator.FULLY_CONNECTED
    model = Table("Model", version=3, description="written by edgelstm.graph",
                  operator_codes=[Table("OperatorCode", builtin_code=fc, deprecated_builtin_code=fc, version=4)],
                  buffers=[Table("Buffer")],
                  subgraphs=[Table("SubGraph", name="main", inputs=[0], outputs=[1], tensors=[
                      Table("Tensor", name="x", shape=[1, 4], shape_signature=[-1, 4], type=tflite.TensorType.INT8,
                            quantization=q(0.5, -3)),
                      Table("Tensor", name="y", shape=[1, 3], type=tflite.TensorType.INT8, quantization=q(0.75, 5))])])
    sg = model.subgraphs[0]
    wi = add_constant(model, w, "w")
    sg.tensors[wi].quantization = q(0.25, 0)
    bi = add_constant(model, bias, "b")
    sg.tensors[bi].quantization = q(0.125, 0)
    sg.operators = [Table("Operator", opcode_index=0, inputs=[0, wi, bi], outputs=[1],
                          builtin_options=Table("FullyConnectedOptions", fused_activation_function=1))]  # RELU
    data = pack(model)
    g = read_model(data)
    assert [op.opcode for op in g.operators] == ["FULLY_CONNECTED"] and g.description == "written by edgelstm.graph"
    assert g.tensors[0].shape_signature == (-1, 4) and np.array_equal(g.tensors[wi].data, w)
    assert g.operators[0].options["fused_activation_function"] == 1
    x = rng.integers(-128, 128, size=(1, 4), dtype=np.int8)
    want = get_reference("litert", data).run([x])[0]
    got = edgelstm.load(data).run(x)
    acc = (x.astype(np.int64) + 3) @ w.T.astype(np.int64) + bias          # real = 0.125 * acc
    expect = np.clip(np.round(acc * 0.125 / 0.75) + 5, 5, 127)            # RELU: at least the zero point
    assert np.array_equal(got, want) and np.abs(want.astype(np.int64) - expect).max() <= 1


def test_metadata_added_and_replaced():
    raw = zoo.build("basic")
    before = read_metadata(raw)
    once = with_metadata(raw, "edgelstm.test", b"first")
    twice = with_metadata(once, "edgelstm.test", b"second, longer")
    assert read_metadata(twice) == {**before, "edgelstm.test": b"second, longer"}
    assert _plain(read_model(twice)) == _plain(read_model(raw))


def test_fields_the_bindings_do_not_know_are_refused():
    """A table from a newer schema (a slot past the last known field) cannot be read for rewriting;
    a deprecated field (a slot inside the schema without an accessor) is left out."""
    n = layout("Buffer").n_slots
    b = flatbuffers.Builder(64)
    b.StartObject(n + 1)
    b.PrependUint64Slot(n, 5, 0)
    b.Finish(b.EndObject())
    buf = b.Output()
    with pytest.raises(ModelError, match=rf"Buffer table sets field slot\(s\) \[{n}\].*upgrade the tflite"):
        read_table(buf, _root(buf), "Buffer")
    deprecated = [s for s in range(layout("SignatureDef").n_slots)
                  if s not in {f.slot for f in layout("SignatureDef").fields}]
    assert deprecated  # method_name
    b = flatbuffers.Builder(64)
    key = b.CreateString("serving_default")
    b.StartObject(layout("SignatureDef").n_slots)
    b.PrependUOffsetTRelativeSlot(deprecated[0], key, 0)
    b.PrependUOffsetTRelativeSlot(layout("SignatureDef").by_name["signature_key"].slot, key, 0)
    b.Finish(b.EndObject())
    buf = b.Output()
    assert read_table(buf, _root(buf), "SignatureDef") == Table("SignatureDef", signature_key="serving_default")


def test_what_cannot_be_written_is_refused():
    with pytest.raises(ModelError, match="no field 'shapeSignature'"):
        Table("Tensor", shapeSignature=[1, 2])
    with pytest.raises(ModelError, match="no table type 'TensorT'"):
        Table("TensorT")
    m = unpack(zoo.build("basic"))
    with pytest.raises(ModelError, match="Tensor.shape"):
        m.subgraphs[0].tensors[0].shape = [1, 2 ** 40]
    m.subgraphs[0].operators[0].builtin_options = Table("Tensor")
    with pytest.raises(ModelError, match="cannot hold a Tensor"):
        pack(m)
    m = unpack(zoo.build("basic"))
    m.subgraphs[0].tensors[0].type = 300
    with pytest.raises(ModelError, match="Tensor.type = 300"):
        pack(m)
    with pytest.raises(ModelError, match="not a .tflite model"):
        unpack(b"not a model at all")
