"""SHAPE, GATHER, REDUCE_PROD, PACK and UNPACK against LiteRT.

The converter emits the first four when a Dense layer follows an LSTM over a dynamic time axis (it
computes the RESHAPE target at run time); those graphs are checked op by op and end to end at
several sequence lengths. Hand-built single-op models cover the axes, types and refusals the
converter never produces.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S

import zoo
from oracle import check_ops, find_op, kernel_for, litert_run
from tflite_build import edit, one_input_model, options, random_input

from edgelstm import InputError, ModelError
from edgelstm.ops import build_kernel
from edgelstm.tflite_reader import read_model
from edgelstm.verify import verify


# -- the converter's graphs -------------------------------------------------------------------------
# Dense after an LSTM over a dynamic time axis is the zoo's dynamic_time_dense (LSTM(8) + Dense(3)),
# also used by tests/ops/test_reshape.py: one conversion for both.
@zoo.zoo_model("ops_shape_td_dynamic")
def _td_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(62)
    x = K.Input((None, 6), batch_size=1)
    m = K.Model(x, L.TimeDistributed(L.Dense(3))(L.LSTM(8, return_sequences=True)(x)))
    return zoo._randomize_biases(m), zoo._calib((1, 16, 6))


# op -> how many the converter emits, per model (pinned so a converter change is noticed)
CONVERTER_OPS = {
    "dynamic_time_dense": {"SHAPE": 1, "GATHER": 2, "REDUCE_PROD": 2, "PACK": 1},
    "ops_shape_td_dynamic": {"SHAPE": 1, "PACK": 1},
}
TIME_STEPS = (1, 5, 20)


@pytest.mark.parametrize("name", list(CONVERTER_OPS))
def test_converter_graph_ops(name):
    model = zoo.build(name)
    g = read_model(model)
    assert -1 in g.tensors[g.inputs[0]].shape_signature
    for t in TIME_STEPS:
        for xs in zoo.sample_inputs(model, n_random=2, time_steps=t, seed=t):
            for opcode, n in CONVERTER_OPS[name].items():
                assert check_ops(model, xs, opcode) == n, opcode


@pytest.mark.parametrize("name", list(CONVERTER_OPS))
def test_converter_graph_end_to_end(name):
    """The whole model, bit-exact, at each sequence length. Lengths are not mixed within one
    verify() call: LiteRT re-allocating for a new input shape resets the LSTM state, which the
    state-carrying pass of verify() would then see as a difference unrelated to these ops."""
    model = zoo.build(name)
    for t in TIME_STEPS:
        res = verify(model, inputs=zoo.sample_inputs(model, n_random=3, time_steps=t, seed=10 + t))
        assert res.bit_exact, (t, res.mismatched_elements, res.first_mismatch)
        assert sum(o.elements for o in res.outputs) == 2 * 6 * t * 3


# -- model surgery for single-op models ---------------------------------------------------------------
def edit_model(model: bytes, fn) -> bytes:
    """`tflite_build.edit` with `fn` applied to the (only) subgraph."""
    return edit(model, lambda m: fn(m.subgraphs[0]))


def as_model_inputs(model: bytes, tensors, sig=None) -> bytes:
    """Turn constant tensors into extra model inputs (computed values, as far as the op can tell)."""
    def fn(sg):
        for i in tensors:
            sg.tensors[i].buffer = 0
            if sig is not None:
                sg.tensors[i].shapeSignature = list(sig)
            sg.inputs = list(sg.inputs) + [i]
    return edit_model(model, fn)


def with_outputs(model: bytes, n: int) -> bytes:
    """Give the single op n copies of its output tensor (UNPACK has one output per slice)."""
    def fn(sg):
        y = sg.operators[0].outputs[0]
        outs = [y]
        for k in range(1, n):
            t = copy.deepcopy(sg.tensors[y])
            t.name = f"y{k}"
            sg.tensors.append(t)
            outs.append(len(sg.tensors) - 1)
        sg.operators[0].outputs = outs
        sg.outputs = outs
    return edit_model(model, fn)


# -- SHAPE -------------------------------------------------------------------------------------------
def shape_opts(out_type):
    return options("ShapeOptions", outType=out_type)


@pytest.mark.parametrize("out_type,dtype", [(2, np.int32), (4, np.int64)])
@pytest.mark.parametrize("x_dtype", [np.int8, np.float32])
def test_shape_vs_litert(out_type, dtype, x_dtype):
    model = one_input_model("SHAPE", (1, 1, 4), x_dtype, [], (3,), shape_opts(out_type),
                            x_sig=(1, -1, 4), out_dtype=dtype)
    for t in (1, 7):
        xs = [random_input((1, t, 4), x_dtype, t)]
        assert check_ops(model, xs, "SHAPE") == 1
        (y,) = kernel_for(model, "SHAPE")[0].run(xs)
        assert y.dtype == dtype and y.tolist() == [1, t, 4]


def test_shape_of_scalar():
    # LiteRT's Python API cannot hand back a zero-size tensor, so this one is checked by hand
    model = one_input_model("SHAPE", (), np.int32, [], (0,), shape_opts(2))
    (y,) = kernel_for(model, "SHAPE")[0].run([np.array(5, np.int32)])
    assert y.dtype == np.int32 and y.shape == (0,)


def test_shape_refusals():
    x = np.zeros((2, 3), np.float32)
    for opts, out_dtype, out_shape, match in [
        (None, np.int32, (2,), "no ShapeOptions"),
        (shape_opts(0), np.int32, (2,), "out_type 0"),
        (shape_opts(2), np.int64, (2,), "declared INT64"),
        (shape_opts(4), np.int64, (3,), r"\[2\] shape"),
    ]:
        model = one_input_model("SHAPE", (2, 3), np.float32, [], out_shape, opts, out_dtype=out_dtype)
        with pytest.raises(ModelError, match=match):
            kernel_for(model, "SHAPE")[0]
    assert litert_run(one_input_model("SHAPE", (2, 3), np.float32, [], (2,), None, out_dtype=np.int32), [x]) is None
    k = kernel_for(one_input_model("SHAPE", (1, 2, 3), np.float32, [], (3,), shape_opts(2),
                                   x_sig=(1, -1, 3), out_dtype=np.int32), "SHAPE")[0]
    with pytest.raises(ModelError, match="shape"):
        k.run([np.zeros((1, 2, 4), np.float32)])


# -- GATHER ------------------------------------------------------------------------------------------
def gather_opts(axis, batch_dims=0):
    return options("GatherOptions", axis=axis, batchDims=batch_dims)


def gather_shape(x_shape, idx_shape, axis, batch_dims=0):
    axis %= len(x_shape)
    return tuple(x_shape[:axis]) + tuple(idx_shape[batch_dims:]) + tuple(x_shape[axis + 1:])


GATHER_CASES = [  # (params shape, params dtype, indices, axis, batch_dims)
    ((2, 3, 4), np.int8, np.int32([2, 0, 0, 1]), 1, 0),
    ((2, 3, 4), np.int8, np.int32([1]), 0, 0),
    ((2, 3, 4), np.int8, np.int32([[3, 0], [1, 3], [2, 2]]), 2, 0),
    ((2, 3, 4), np.int8, np.int64([3, 1]), -1, 0),
    ((2, 3, 4), np.int8, np.int16([2, 1, 0]), -2, 0),
    ((2, 3, 4), np.int8, np.int32(1), 1, 0),                      # scalar index drops the axis
    ((2, 3, 4), np.int8, np.int32([[0, 2], [1, 1]]), 1, 1),       # batch_dims
    ((2, 3, 4), np.int8, np.int32([[3, 0, 1], [0, 0, 2]]), 2, -1),  # negative batch_dims
    ((5,), np.int32, np.int32([4, 0, 1]), 0, 0),
    ((3,), np.int32, np.int64([2, 2]), 0, 0),
    ((4, 2), np.float32, np.int32([3, 0]), 0, 0),
]


@pytest.mark.parametrize("case", range(len(GATHER_CASES)))
def test_gather_constant_indices_vs_litert(case):
    shape, dtype, idx, axis, bd = GATHER_CASES[case]
    out = gather_shape(shape, idx.shape, axis, bd % max(idx.ndim, 1) if bd < 0 else bd)
    model = one_input_model("GATHER", shape, dtype, [idx], out, gather_opts(axis, bd), out_q=(0.7, -9))
    for seed in range(2):
        assert check_ops(model, [random_input(shape, dtype, seed)], "GATHER") == 1


@pytest.mark.parametrize("case", [0, 2, 3, 6, 9])
def test_gather_computed_indices_vs_litert(case):
    shape, dtype, idx, axis, bd = GATHER_CASES[case]
    out = gather_shape(shape, idx.shape, axis, bd)
    model = as_model_inputs(one_input_model("GATHER", shape, dtype, [idx], out, gather_opts(axis, bd)), [1])
    assert read_model(model).tensors[1].data is None
    rng = np.random.default_rng(case)
    size = shape[axis]
    for seed in range(3):
        j = rng.integers(0, size, size=idx.shape).astype(idx.dtype)
        assert check_ops(model, [random_input(shape, dtype, seed), j], "GATHER") == 1


def test_gather_dynamic_params_vs_litert():
    """Along the dynamic time axis, and across it, with the output resizing with T."""
    idx = np.int32([0, 0])
    model = one_input_model("GATHER", (1, 1, 4), np.int8, [idx], (1, 2, 4), gather_opts(1),
                            x_sig=(1, -1, 4), out_sig=(1, 2, 4))
    model2 = one_input_model("GATHER", (1, 1, 4), np.int8, [np.int32([3, 1])], (1, 1, 2), gather_opts(2),
                             x_sig=(1, -1, 4), out_sig=(1, -1, 2))
    for t in (1, 6):
        x = random_input((1, t, 4), np.int8, t)
        assert check_ops(model, [x], "GATHER") == 1
        assert check_ops(model2, [x], "GATHER") == 1


def test_gather_out_of_range_index():
    x = random_input((2, 3, 4), np.int8)
    for bad in (np.int32([0, 3]), np.int32([-1, 0]), np.int64([0, 1 << 40])):
        const = one_input_model("GATHER", (2, 3, 4), np.int8, [bad], (2, 2, 4), gather_opts(1))
        assert litert_run(const, [x]) is None  # LiteRT refuses the index too
        with pytest.raises(ModelError, match="out of range"):
            kernel_for(const, "GATHER")[0]
        computed = as_model_inputs(const, [1])
        assert litert_run(computed, [x, bad]) is None
        k = kernel_for(computed, "GATHER")[0]
        with pytest.raises(InputError, match="out of range"):
            k.run([x, bad])
    # a constant index past a dynamic axis is only known to be wrong at run time
    model = one_input_model("GATHER", (1, 5, 2), np.int8, [np.int32([4])], (1, 1, 2), gather_opts(1),
                            x_sig=(1, -1, 2))
    k = kernel_for(model, "GATHER")[0]
    assert check_ops(model, [random_input((1, 5, 2), np.int8)], "GATHER") == 1
    assert litert_run(model, [random_input((1, 3, 2), np.int8)]) is None
    with pytest.raises(ModelError, match="index 4 is out of range"):
        k.run([random_input((1, 3, 2), np.int8), np.int32([4])])
    # computed from the graph (not a model input): a ModelError
    g, op = find_op(one_input_model("GATHER", (3,), np.int32, [np.int32([0])], (1,), gather_opts(0)), "GATHER")
    g.tensors[op.inputs[1]].data = None
    with pytest.raises(ModelError, match="out of range"):
        build_kernel(op, g, "tflite").run([np.int32([1, 2, 3]), np.int32([3])])


def test_gather_refusals():
    cases = [
        (gather_opts(3), np.int32([0]), (2, 3, 1), np.int8, "axis 3"),
        (gather_opts(-4), np.int32([0]), (2, 3, 1), np.int8, "axis -4"),
        (gather_opts(1, 2), np.int32([[0]]), (2, 1, 4), np.int8, "batch_dims"),
        (gather_opts(0, 1), np.int32([[0, 1]]), (2, 3, 4), np.int8, "batch_dims"),
        (gather_opts(1, 1), np.int32([[0], [1], [2]]), (2, 1, 4), np.int8, "batch dimension 0"),
        (gather_opts(1), np.int32([0, 1]), (2, 3, 4), np.int8, "declared"),
        (gather_opts(1), np.float32([0]), (2, 1, 4), np.int8, "int16/int32/int64"),
        (gather_opts(1), np.int32([0]), (2, 1, 4), np.int16, "type"),
    ]
    for opts, idx, out, out_dtype, match in cases:
        model = one_input_model("GATHER", (2, 3, 4), np.int8, [idx], out, opts, out_dtype=out_dtype)
        with pytest.raises(ModelError, match=match):
            kernel_for(model, "GATHER")[0]


# -- REDUCE_PROD -------------------------------------------------------------------------------------
def reducer_opts(keep_dims):
    return options("ReducerOptions", keepDims=keep_dims)


def prod_shape(shape, axes, keep):
    axes = {a % len(shape) for a in axes}
    if keep:
        return tuple(1 if d in axes else n for d, n in enumerate(shape))
    return tuple(n for d, n in enumerate(shape) if d not in axes)


@pytest.mark.parametrize("axes", [[0], [1], [-1], [0, 2], [2, -1, 0], [0, 1, 2]])
@pytest.mark.parametrize("keep", [False, True])
def test_reduce_prod_vs_litert(axes, keep):
    shape = (2, 3, 4)
    model = one_input_model("REDUCE_PROD", shape, np.int32, [np.int32(axes)], prod_shape(shape, axes, keep),
                            reducer_opts(keep))
    rng = np.random.default_rng(len(axes))
    small = rng.integers(-9, 10, size=shape).astype(np.int32)
    huge = rng.integers(-(1 << 31), 1 << 31, size=shape, dtype=np.int64).astype(np.int32)  # wraps
    for x in (small, huge, np.full(shape, 65536, np.int32)):
        assert check_ops(model, [x], "REDUCE_PROD") == 1


def test_reduce_prod_scalar_and_dynamic_vs_litert():
    scalar = one_input_model("REDUCE_PROD", (), np.int32, [np.int32([0])], (), reducer_opts(False))
    assert check_ops(scalar, [np.array(-7, np.int32)], "REDUCE_PROD") == 1  # axes ignored on a scalar
    dyn = one_input_model("REDUCE_PROD", (1, 1, 3), np.int32, [np.int32([1])], (1, 3), reducer_opts(False),
                          x_sig=(1, -1, 3))
    for t in (1, 4, 9):
        assert check_ops(dyn, [random_input((1, t, 3), np.int32, t)], "REDUCE_PROD") == 1


def test_reduce_prod_refusals():
    int8 = one_input_model("REDUCE_PROD", (2, 3), np.int8, [np.int32([1])], (2,), reducer_opts(False))
    with pytest.raises(ModelError, match="int8 REDUCE_PROD is not supported"):
        kernel_for(int8, "REDUCE_PROD")[0]
    for axes, out, match in [([2], (2,), "out of range"), ([-3], (2,), "out of range"),
                             ([1], (3,), "should have shape")]:
        model = one_input_model("REDUCE_PROD", (2, 3), np.int32, [np.int32(axes)], out, reducer_opts(False))
        with pytest.raises(ModelError, match=match):
            kernel_for(model, "REDUCE_PROD")[0]
    model = one_input_model("REDUCE_PROD", (2, 3), np.int32, [np.int64([1])], (2,), reducer_opts(False))
    with pytest.raises(ModelError, match="int32"):
        kernel_for(model, "REDUCE_PROD")[0]
    g, op = find_op(one_input_model("REDUCE_PROD", (2, 3), np.int32, [np.int32([1])], (2,),
                                    reducer_opts(False)), "REDUCE_PROD")
    g.tensors[op.inputs[1]].data = None
    with pytest.raises(ModelError, match="constant"):
        build_kernel(op, g, "tflite")

    def quantize_x(sg):
        qp = S.QuantizationParametersT()
        qp.scale, qp.zeroPoint = [0.5], [0]
        sg.tensors[0].quantization = qp
    quantized = edit_model(one_input_model("REDUCE_PROD", (2, 3), np.int32, [np.int32([1])], (2,),
                                           reducer_opts(False)), quantize_x)
    assert litert_run(quantized, [np.ones((2, 3), np.int32)]) is None
    with pytest.raises(ModelError, match="quantization"):
        kernel_for(quantized, "REDUCE_PROD")[0]


# -- PACK / UNPACK -----------------------------------------------------------------------------------
def pack_opts(n, axis):
    return options("PackOptions", valuesCount=n, axis=axis)


def unpack_opts(n, axis):
    return options("UnpackOptions", num=n, axis=axis)


def pack_model(shape, dtype, consts, out_shape, opts, **kw) -> bytes:
    """A PACK model whose constant inputs share the first input's quantization, as LiteRT requires."""
    def fn(sg):
        for i in sg.operators[0].inputs[1:]:
            sg.tensors[i].quantization = copy.deepcopy(sg.tensors[0].quantization)
    return edit_model(one_input_model("PACK", shape, dtype, consts, out_shape, opts, **kw), fn)


def stacked(shape, n, axis):
    axis = axis + len(shape) + 1 if axis < 0 else axis
    return tuple(shape[:axis]) + (n,) + tuple(shape[axis:])


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.float32])
def test_pack_vs_litert(axis, dtype):
    shape = (2, 3)
    consts = [random_input(shape, dtype, 10), random_input(shape, dtype, 11)]
    model = pack_model(shape, dtype, consts, stacked(shape, 3, axis), pack_opts(3, axis))
    for seed in range(2):
        assert check_ops(model, [random_input(shape, dtype, seed)], "PACK") == 1
    computed = as_model_inputs(model, [1, 2])
    xs = [random_input(shape, dtype, s) for s in (3, 4, 5)]
    assert check_ops(computed, xs, "PACK") == 1


def test_pack_scalars_and_dynamic_vs_litert():
    scalars = one_input_model("PACK", (), np.int32, [np.int32(7)], (2,), pack_opts(2, 0))
    assert check_ops(scalars, [np.array(-3, np.int32)], "PACK") == 1
    dyn = one_input_model("PACK", (1, 4), np.int8, [], (1, 1, 4), pack_opts(1, 1), x_sig=(-1, 4), out_sig=(-1, 1, 4))
    for t in (1, 5):
        assert check_ops(dyn, [random_input((t, 4), np.int8, t)], "PACK") == 1


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.bool_])
def test_unpack_vs_litert(axis, dtype):
    shape = (2, 3, 4)
    n = shape[axis]
    rest = tuple(d for i, d in enumerate(shape) if i != axis % 3)
    model = with_outputs(one_input_model("UNPACK", shape, dtype, [], rest, unpack_opts(n, axis)), n)
    for seed in range(2):
        assert check_ops(model, [random_input(shape, dtype, seed)], "UNPACK") == 1


def test_unpack_dynamic_vs_litert():
    model = with_outputs(one_input_model("UNPACK", (1, 1, 2), np.int8, [], (1, 1), unpack_opts(2, 2),
                                         x_sig=(1, -1, 2), out_sig=(1, -1)), 2)
    for t in (1, 6):
        x = random_input((1, t, 2), np.int8, t)
        assert check_ops(model, [x], "UNPACK") == 1
        ys = kernel_for(model, "UNPACK")[0].run([x])
        assert all(not np.shares_memory(x, y) for y in ys)


def test_pack_unpack_refusals():
    a = np.int8([[1, 2, 3]])
    for consts, out, opts, out_q, match in [
        ([a], (2, 1, 3), pack_opts(3, 0), None, "expects 3 inputs"),
        ([a], (2, 1, 3), pack_opts(2, 3), None, "axis 3"),
        ([a], (2, 1, 3), pack_opts(2, 0), (0.5, 0), "scale/zero point"),
        ([np.int8([1, 2, 3])], (2, 1, 3), pack_opts(2, 0), None, "shape"),
        ([np.int32([[1, 2, 3]])], (2, 1, 3), pack_opts(2, 0), None, "type"),
        ([a], (1, 3, 2), pack_opts(2, 0), None, "declared"),
        ([a], (2, 1, 3), pack_opts(0, 0), None, "values_count"),
    ]:
        model = pack_model((1, 3), np.int8, consts, out, opts, out_q=out_q)
        with pytest.raises(ModelError, match=match):
            kernel_for(model, "PACK")[0]
    assert litert_run(pack_model((1, 3), np.int8, [a], (2, 1, 3), pack_opts(2, 0), out_q=(0.5, 0)), [a]) is None
    assert litert_run(one_input_model("PACK", (1, 3), np.int8, [a], (2, 1, 3), pack_opts(2, 0)), [a]) is None
    bool_pack = one_input_model("PACK", (3,), np.bool_, [np.bool_([1, 0, 1])], (2, 3), pack_opts(2, 0))
    with pytest.raises(ModelError, match="is BOOL"):
        kernel_for(bool_pack, "PACK")[0]
    for n_out, opts, out, x_dtype, out_q, match in [
        (2, unpack_opts(2, 1), (2,), np.int8, None, "num is 2"),
        (3, unpack_opts(3, 2), (2,), np.int8, None, "axis 2"),
        (2, unpack_opts(3, 1), (2,), np.int8, None, "expects 3 outputs"),
        (3, unpack_opts(3, 1), (2,), np.int8, (0.5, 1), "scale/zero point"),
        (3, unpack_opts(3, 1), (3,), np.int8, None, "declared"),
        (3, unpack_opts(3, 1), (2,), np.int64, None, "is INT64"),
    ]:
        model = with_outputs(one_input_model("UNPACK", (2, 3), x_dtype, [], out, opts, out_q=out_q), n_out)
        with pytest.raises(ModelError, match=match):
            kernel_for(model, "UNPACK")[0]
    # a dynamic axis that turns out to have the wrong length
    model = with_outputs(one_input_model("UNPACK", (1, 2), np.int8, [], (1,), unpack_opts(2, 1),
                                         x_sig=(1, -1)), 2)
    k = kernel_for(model, "UNPACK")[0]
    with pytest.raises(ModelError, match="cannot be unpacked"):
        k.run([np.int8([[1, 2, 3]])])
