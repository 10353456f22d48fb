"""STRIDED_SLICE and SLICE against LiteRT (converter graphs and hand-built single-op models), and
the slice-spec logic against numpy's indexing semantics."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import zoo
from oracle import check_ops, find_op
from edgelstm import ModelError
from edgelstm.ops import build_kernel
from edgelstm.graph.shapes import SliceSpec
from edgelstm.ops.strided_slice import apply_plan
from edgelstm.tflite_reader import read_model
from tflite_build import one_input_model, options, random_input


# -- STRIDED_SLICE helpers --------------------------------------------------------------------------
def ss_model(x_shape, begin, end, strides, x_dtype=np.int8, x_sig=None, out_shape=None, out_sig=None,
             out_q=None, **masks) -> bytes:
    o = options("StridedSliceOptions", beginMask=masks.get("begin_mask", 0), endMask=masks.get("end_mask", 0),
                shrinkAxisMask=masks.get("shrink_axis_mask", 0), ellipsisMask=masks.get("ellipsis_mask", 0),
                newAxisMask=masks.get("new_axis_mask", 0), offset=masks.get("offset", False))
    if out_shape is None:  # the declared shape must be what the op computes; derive it from the spec
        spec = SliceSpec(tuple(begin), tuple(end), tuple(strides), **masks)
        out_shape = spec.plan(tuple(x_shape))[0]
    return one_input_model("STRIDED_SLICE", x_shape, x_dtype,
                           [np.int32(begin), np.int32(end), np.int32(strides)], out_shape,
                           o, x_sig=x_sig, out_sig=out_sig, out_q=out_q)


# Cases the converter never emits, each checked against LiteRT: (shape, begin, end, strides, masks).
LITERT_CASES = [
    ((2, 3, 4), [0, -1, 0], [0, 0, 0], [1, 1, 1], dict(begin_mask=5, end_mask=5, shrink_axis_mask=2)),
    ((2, 3, 4), [0, -5, 0], [0, 0, 0], [1, 1, 1], dict(begin_mask=5, end_mask=5, shrink_axis_mask=2)),  # clamps to 0
    ((2, 3, 4), [0, 2, 0], [0, 0, 0], [1, 1, 1], dict(begin_mask=7, end_mask=5, shrink_axis_mask=2)),  # masked shrink
    ((2, 3, 4), [1, 0, 0], [1, 2, 3], [1, 1, 1], dict(offset=True)),
    ((2, 3, 4), [0, 2, 3], [2, -2, -3], [1, -1, -2], dict(offset=True)),
    ((2, 3, 4), [0], [1], [1], dict(shrink_axis_mask=1)),
    ((2, 3, 4), [0, 0], [1, 2], [1, 1], dict(ellipsis_mask=1)),
    ((2, 3, 4), [0, 0, 0], [0, 0, 3], [1, 1, -1], dict(ellipsis_mask=1)),
    ((2, 3, 4), [0, 0, 1], [1, 2, 2], [1, 1, 1], dict(new_axis_mask=2, shrink_axis_mask=4)),
    ((2, 3, 4), [0, 0, 1], [1, 2, 2], [1, 1, 1], dict(new_axis_mask=2, ellipsis_mask=1)),
    ((2, 3, 4), [0, 0, 1], [1, 2, 2], [1, 1, 1], dict(new_axis_mask=3, ellipsis_mask=1)),  # ellipsis wins
    ((2, 3, 4), [0, 0], [0, 0], [1, 1], dict(new_axis_mask=3)),
    ((2, 3, 4), [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], dict(new_axis_mask=8, shrink_axis_mask=8)),
    ((2, 3, 4), [1, 0, 2], [2, 1, 3], [1, 1, 1], dict(shrink_axis_mask=7)),  # rank-0 output
    ((2, 3, 4), [-1, 10, -100], [-3, -10, 100], [-1, -2, 3], {}),
    ((2, 3, 4), [5, 2, 3], [-5, 0, 0], [-2, -1, -1], dict(end_mask=4)),
    ((2, 3, 4), [0, 1, 0], [0, 1, 0], [1, 1, 1], {}),  # empty result
    ((1, 7, 8), [0, 2, 0], [0, -1, 0], [1, 2, 1], dict(begin_mask=5, end_mask=5)),
    ((1, 7, 8), [0, 0, 1], [0, 0, 6], [1, -1, 1], dict(begin_mask=3, end_mask=3)),
    ((2, 1, 3, 2, 2, 3), [1, 0, -1, 0, 1, 0], [2, 1, -4, 2, 2, 3], [1, 1, -1, 1, 1, 2], {}),  # rank 6
]


@pytest.mark.parametrize("case", range(len(LITERT_CASES)))
def test_spec_cases_vs_litert(case):
    shape, b, e, s, masks = LITERT_CASES[case]
    model = ss_model(shape, b, e, s, **masks)
    for seed in range(2):
        assert check_ops(model, [random_input(shape, np.int8, seed)], "STRIDED_SLICE") == 1


def _random_accepted_spec(rng, shape):
    """A random spec (any masks, offset included) that edgelstm accepts for `shape`."""
    rank = len(shape)
    while True:
        n = int(rng.integers(1, rank + 3))  # the reader sees an empty buffer as non-constant
        offset = bool(rng.random() < 0.15)
        if offset:
            n = rank
        begin = rng.integers(-6, 7, n).tolist()
        end = rng.integers(-6, 7, n).tolist()
        strides = rng.choice([-3, -2, -1, 1, 1, 2, 3], n).tolist()
        bits = lambda p: int(sum(1 << i for i in range(n) if rng.random() < p))  # noqa: E731
        masks = dict(begin_mask=bits(0.3), end_mask=bits(0.3), shrink_axis_mask=bits(0.2))
        if not offset:
            masks["new_axis_mask"] = bits(0.15)
            if n and rng.random() < 0.3:
                masks["ellipsis_mask"] = 1 << int(rng.integers(0, n))
        else:
            masks["offset"] = True
        spec = SliceSpec(tuple(begin), tuple(end), tuple(strides), **masks)
        try:
            spec.plan(shape)
        except ValueError:
            continue
        return begin, end, strides, masks


def test_random_specs_vs_litert():
    rng = np.random.default_rng(7)
    checked = 0
    for k in range(60):
        shape = tuple(int(d) for d in rng.integers(1, 5, int(rng.integers(1, 5))))
        b, e, s, masks = _random_accepted_spec(rng, shape)
        checked += check_ops(ss_model(shape, b, e, s, **masks), [random_input(shape, np.int8, k)], "STRIDED_SLICE")
    assert checked == 60


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.float32, np.int64, np.uint8, np.bool_])
def test_other_dtypes_vs_litert(dtype):
    model = ss_model((2, 5, 3), [0, 4, 0], [0, 0, 0], [1, -2, 1], x_dtype=dtype, begin_mask=5, end_mask=5)
    assert check_ops(model, [random_input((2, 5, 3), dtype)], "STRIDED_SLICE") == 1


def test_raw_copy_when_quantization_differs():
    """LiteRT copies the integers even if the output declares another scale/zero point."""
    model = ss_model((1, 6, 4), [0, -1, 0], [0, 0, 0], [1, 1, 1], out_q=(0.37, -20),
                     begin_mask=5, end_mask=5, shrink_axis_mask=2)
    for seed in range(3):
        assert check_ops(model, [random_input((1, 6, 4), np.int8, seed)], "STRIDED_SLICE") == 1


def test_dynamic_time_handmade_vs_litert():
    for b, e, s, masks, out_sig in [
        ([0, -1, 0], [0, 0, 0], [1, 1, 1], dict(begin_mask=5, end_mask=5, shrink_axis_mask=2), (2, 4)),
        ([0, 1, 0], [0, -1, 0], [1, 2, 1], dict(begin_mask=5, end_mask=5), (2, -1, 4)),
        ([0, 0, 0], [0, 0, 0], [1, -1, 1], dict(begin_mask=7, end_mask=7), (2, -1, 4)),
    ]:
        model = ss_model((2, 1, 4), b, e, s, x_sig=(2, -1, 4), out_shape=tuple(abs(d) for d in out_sig),
                         out_sig=out_sig, **masks)
        for t in (1, 2, 5, 9):
            assert check_ops(model, [random_input((2, t, 4), np.int8, t)], "STRIDED_SLICE") == 1


# -- the slice-spec logic against numpy indexing ----------------------------------------------------
def numpy_index(spec: SliceSpec) -> tuple:
    idx = []
    for j in range(len(spec.begin)):
        bit = 1 << j
        if spec.ellipsis_mask & bit:
            idx.append(Ellipsis)
        elif spec.new_axis_mask & bit:
            idx.append(None)
        elif spec.shrink_axis_mask & bit:
            idx.append(spec.begin[j])
        else:
            idx.append(slice(None if spec.begin_mask & bit else spec.begin[j],
                             None if spec.end_mask & bit else spec.end[j], spec.strides[j]))
    return tuple(idx)


@st.composite
def numpy_comparable_specs(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    n = draw(st.integers(0, rank + 2))
    ints = st.integers(-7, 7)
    begin = draw(st.lists(ints, min_size=n, max_size=n))
    end = draw(st.lists(ints, min_size=n, max_size=n))
    strides = draw(st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=n, max_size=n))
    mask = st.integers(0, (1 << n) - 1) if n else st.just(0)
    bm, em, sm, na = draw(mask), draw(mask), draw(mask), draw(mask)
    el = 1 << draw(st.integers(0, n - 1)) if n and draw(st.booleans()) else 0
    for j in range(n):
        if sm >> j & 1:
            # numpy has no stride or mask for an integer index, and LiteRT clamps indices below
            # -size where numpy raises: keep shrink entries to what both define (-1 fits any axis).
            strides[j] = abs(strides[j])
            bm &= ~(1 << j)
            begin[j] = draw(st.sampled_from([-1, 0, 1, 2, 5]))
    return shape, SliceSpec(tuple(begin), tuple(end), tuple(strides), bm, em, sm, el, na)


@settings(max_examples=400, deadline=None)
@given(numpy_comparable_specs())
def test_spec_matches_numpy(case):
    shape, spec = case
    n_new = bin(spec.new_axis_mask & ~spec.ellipsis_mask).count("1")
    consuming = len(spec.begin) - n_new - (1 if spec.ellipsis_mask else 0)
    assume(not (spec.ellipsis_mask and consuming == len(shape)))  # LiteRT: ellipsis covers >= 1 axis
    x = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    try:
        want = x[numpy_index(spec)]
    except IndexError:
        with pytest.raises(ValueError):
            spec.plan(shape)
        return
    got = apply_plan(x, spec.plan(shape))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_ellipsis_covering_nothing_is_refused():
    with pytest.raises(ValueError, match="ellipsis"):
        SliceSpec((0, 1, 2), (0, 2, 3), (1, 1, 1), ellipsis_mask=1).plan((3, 4))


# -- the converter's graphs -------------------------------------------------------------------------
@zoo.zoo_model("ops_ss_last")
def _ss_last():
    K = zoo._keras(); L = K.layers; zoo._seed(31)
    x = K.Input((9, 5), batch_size=2)
    m = K.Model(x, L.Dense(3)(L.LSTM(8)(x)))
    return zoo._randomize_biases(m), zoo._calib((2, 9, 5))


@zoo.zoo_model("ops_ss_lambda")
def _ss_lambda():
    import tensorflow as tf

    K = zoo._keras(); L = K.layers; zoo._seed(32)
    x = K.Input((9, 5), batch_size=1)
    y = L.LSTM(8, return_sequences=True)(x)
    a = L.Lambda(lambda t: t[:, 2:-1:2, :])(y)
    b = L.Lambda(lambda t: t[:, ::-1, 1:6])(y)
    c = L.Lambda(lambda t: t[..., tf.newaxis, 3])(y)
    d = L.Lambda(lambda t: tf.strided_slice(t, [0, 7, 6], [1, 0, 1], [1, -3, -2]))(y)
    m = K.Model(x, [a, b, c, d])
    return zoo._randomize_biases(m), zoo._calib((1, 9, 5))


@zoo.zoo_model("ops_ss_dynamic")
def _ss_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(33)
    x = K.Input((None, 5), batch_size=1)
    a = L.Dense(3)(L.LSTM(8)(x))
    b = L.Lambda(lambda t: t[:, 1::2, ::-1])(L.LSTM(6, return_sequences=True)(x))
    m = K.Model(x, [a, b])
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


def _options_seen(model: bytes) -> set:
    g = read_model(model)
    return {(o.options["begin_mask"], o.options["end_mask"], o.options["shrink_axis_mask"])
            for o in g.operators if o.opcode == "STRIDED_SLICE"}


def test_last_output_slice():
    model = zoo.build("ops_ss_last")
    assert (5, 5, 2) in _options_seen(model)
    for xs in zoo.sample_inputs(model):
        assert check_ops(model, xs, "STRIDED_SLICE") == 1


def test_converter_masks():
    model = zoo.build("ops_ss_lambda")
    assert len(_options_seen(model)) >= 3  # several distinct mask combinations
    for xs in zoo.sample_inputs(model):
        assert check_ops(model, xs, "STRIDED_SLICE") >= 3


def test_dynamic_time():
    model = zoo.build("ops_ss_dynamic")
    g, op = find_op(model, "STRIDED_SLICE")
    assert -1 in g.tensors[op.inputs[0]].shape_signature
    for t in (1, 4, 13):
        for xs in zoo.sample_inputs(model, n_random=2, time_steps=t):
            assert check_ops(model, xs, "STRIDED_SLICE") == 2


# -- SLICE ------------------------------------------------------------------------------------------
def slice_model(x_shape, begin, size, out_shape, idx_dtype=np.int32, **kw) -> bytes:
    return one_input_model("SLICE", x_shape, kw.pop("x_dtype", np.int8),
                           [np.asarray(begin, idx_dtype), np.asarray(size, idx_dtype)], out_shape, **kw)


@pytest.mark.parametrize("begin,size,out,idx_dtype", [
    ([0, 1, 1], [-1, 2, 2], (2, 2, 2), np.int32),
    ([1, 0, 0], [1, 3, 4], (1, 3, 4), np.int64),
    ([1, 2, 3], [-1, -1, -1], (1, 1, 1), np.int32),
    ([0, 3, 0], [2, 0, 4], (2, 0, 4), np.int32),
])
def test_slice_vs_litert(begin, size, out, idx_dtype):
    model = slice_model((2, 3, 4), begin, size, out, idx_dtype, out_q=(0.3, 9))
    for seed in range(2):
        assert check_ops(model, [random_input((2, 3, 4), np.int8, seed)], "SLICE") == 1


def test_slice_dynamic_vs_litert():
    model = slice_model((1, 1, 4), [0, 1, 1], [-1, -1, 2], (1, 1, 2), x_sig=(1, -1, 4), out_sig=(1, -1, 2))
    for t in (2, 3, 8):
        assert check_ops(model, [random_input((1, t, 4), np.int8, t)], "SLICE") == 1


# -- refusals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("b,e,s,masks,match", [
    ([0, 3, 0], [0, 0, 0], [1, 1, 1], dict(begin_mask=5, end_mask=5, shrink_axis_mask=2), "out of range"),
    ([0, 1, 0], [0, 0, 0], [1, -1, 1], dict(begin_mask=5, end_mask=5, shrink_axis_mask=2), "negative stride"),
    ([1, 2, 0], [1, 2, 3], [1, 1, 1], dict(offset=True), "does not fit"),
    ([0, 0], [1, 1], [1, 1], dict(offset=True), "offset"),
    ([0, 0, 0], [1, 1, 1], [1, 0, 1], {}, "stride 0"),
    ([0, 0, 0], [1, 1, 1], [1, -2**31, 1], {}, "stride"),
    ([0, 0], [1, 1], [1, 1], dict(ellipsis_mask=3), "more than one ellipsis"),
    ([0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], {}, "rank 3"),
    ([0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], dict(ellipsis_mask=1), "ellipsis would cover no"),
    ([0], [1], [1], dict(new_axis_mask=2), "beyond"),
])
def test_bad_spec_is_refused(b, e, s, masks, match):
    model = ss_model((2, 3, 4), b, e, s, out_shape=(1,), **masks)
    g, op = find_op(model, "STRIDED_SLICE")
    with pytest.raises(ModelError, match=match):
        build_kernel(op, g, "tflite")


def test_bad_tensors_are_refused():
    good = ss_model((2, 3, 4), [0, -1, 0], [0, 0, 0], [1, 1, 1], begin_mask=5, end_mask=5, shrink_axis_mask=2)
    g, op = find_op(good, "STRIDED_SLICE")
    build_kernel(op, g, "tflite")
    g.tensors[op.inputs[1]].data = None  # begin computed at run time
    with pytest.raises(ModelError, match="constant"):
        build_kernel(op, g, "tflite")
    g, op = find_op(good, "STRIDED_SLICE")
    g.tensors[op.outputs[0]].shape_signature = (2, 3)  # declares something the op does not compute
    with pytest.raises(ModelError, match="declares"):
        build_kernel(op, g, "tflite")
    g, op = find_op(good, "STRIDED_SLICE")
    g.tensors[op.inputs[2]].data = np.int32([0, 0])  # end shorter than begin
    with pytest.raises(ModelError, match="same number"):
        build_kernel(op, g, "tflite")
    bad_dtype = ss_model((2, 3, 4), [0, 0, 0], [1, 1, 1], [1, 1, 1], out_shape=(1, 1, 1))
    g, op = find_op(bad_dtype, "STRIDED_SLICE")
    g.tensors[op.outputs[0]].dtype = np.dtype(np.int16)
    with pytest.raises(ModelError, match="type"):
        build_kernel(op, g, "tflite")
    single = one_input_model("STRIDED_SLICE", (2,), np.float32, [np.int32([0]), np.int32([1]), np.int32([1])], (1,))
    g, op = find_op(single, "STRIDED_SLICE")
    g.tensors[op.inputs[0]].dtype, g.tensors[op.inputs[0]].type_name = np.dtype(np.float16), "FLOAT16"
    with pytest.raises(ModelError, match="FLOAT16"):
        build_kernel(op, g, "tflite")


def test_runtime_shape_is_validated():
    """A dynamic time axis too short for a fixed shrink index fails with ModelError, never garbage."""
    model = ss_model((1, 1, 4), [0, 3, 0], [0, 0, 0], [1, 1, 1], x_sig=(1, -1, 4), out_shape=(1, 4),
                     out_sig=(1, 4), begin_mask=5, end_mask=5, shrink_axis_mask=2)
    g, op = find_op(model, "STRIDED_SLICE")
    k = build_kernel(op, g, "tflite")  # no error yet: the time length is unknown
    consts = [g.tensors[i].data for i in op.inputs[1:]]
    ok = k.run([random_input((1, 5, 4), np.int8)] + consts)[0]
    assert ok.shape == (1, 4)
    with pytest.raises(ModelError, match="out of range"):
        k.run([random_input((1, 3, 4), np.int8)] + consts)
    with pytest.raises(ModelError, match="input"):
        k.run([random_input((1, 5, 5), np.int8)] + consts)


def test_slice_refusals():
    for begin, size, match in [([0, 0, 3], [1, 1, 2], "does not fit"), ([0, 0, -1], [1, 1, 1], ">= 0"),
                               ([0, 0, 0], [1, 1, -2], ">= -1"), ([0, 0], [1, 1], "3 entries")]:
        g, op = find_op(slice_model((2, 3, 4), begin, size, (1, 1, 1)), "SLICE")
        with pytest.raises(ModelError, match=match):
            build_kernel(op, g, "tflite")
    # LiteRT keeps a fully specified declared output shape even when size says otherwise
    g, op = find_op(slice_model((2, 3, 4), [0, 0, 0], [1, 2, 2], (1, 2, 3)), "SLICE")
    with pytest.raises(ModelError, match="declares"):
        build_kernel(op, g, "tflite")
