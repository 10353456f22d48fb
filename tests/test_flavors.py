"""Flavours are kernel tables: a new one is made here, in the test file, without editing anything
under edgelstm/. It overrides one op's kernel (FULLY_CONNECTED) and one step of the LSTM's eval
(the hidden-state update), and a zoo model runs through it.

Two versions of the override: one that recomputes the same arithmetic another way (so the model must
stay bit-exact with the tflm flavour and with the real TFLite Micro interpreter), and one that
changes it (so the output must change: proof that the override is what runs).
"""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import edgelstm
import zoo
from edgelstm import ModelError
from edgelstm.fixedpoint import mbqm
from edgelstm.lint import lint
from edgelstm.ops.fully_connected import TFLMFullyConnected
from edgelstm.ops.lstm import TFLMLSTM, with_steps
from edgelstm.references import get_reference


# -- the test's own kernels ----------------------------------------------------------------------------
@njit(cache=False)
def hidden_update_by_tanh_then_clip(c, o, tanh_c, mult, shift, zp, h):
    """TFLM's hidden update, written differently: the whole tanh(c) row first, then one clip via
    int8 saturation arithmetic."""
    n = c.shape[0]
    t = np.empty(n, np.int64)
    for j in range(n):
        t[j] = tanh_c[np.int64(c[j]) + 32768]
    for j in range(n):
        v = mbqm(o[j] * t[j], mult, shift) + zp
        h[j] = -128 if v < -128 else (127 if v > 127 else v)


@njit(cache=False)
def hidden_update_without_zero_point(c, o, tanh_c, mult, shift, zp, h):
    """A deliberately different hidden update: the state tensor's zero point is forgotten."""
    for j in range(c.shape[0]):
        v = mbqm(o[j] * np.int64(tanh_c[c[j] + 32768]), mult, shift)
        h[j] = min(max(v, -128), 127)


class CountingFullyConnected(TFLMFullyConnected):
    """TFLM's FULLY_CONNECTED through numpy instead of the Numba kernel, counting its calls."""

    calls = 0

    def run(self, inputs):
        type(self).calls += 1
        x = inputs[0]
        out_shape, rows = self.output_shape(x.shape)
        acc = x.reshape(rows, self.depth).astype(np.int64) @ self.w.astype(np.int64).T + self.bias
        acc = (acc + 2**31) % 2**32 - 2**31
        y = np.empty_like(acc)
        for u in range(self.units):
            y[:, u] = [mbqm(int(a), int(self.mult[u]), int(self.shift[u])) for a in acc[:, u]]
        y = np.clip(y + self.out_zp, self.act_min, self.act_max)
        return [y.astype(np.int8).reshape(out_shape)]


class SameArithmeticLSTM(TFLMLSTM):
    EVAL = staticmethod(with_steps(TFLMLSTM.EVAL, update_hidden=hidden_update_by_tanh_then_clip))


class ChangedLSTM(TFLMLSTM):
    EVAL = staticmethod(with_steps(TFLMLSTM.EVAL, update_hidden=hidden_update_without_zero_point))


def derived(name, lstm, **policy):
    base = edgelstm.flavor("tflm")
    pol = edgelstm.Policy(**{**base.policy.__dict__, **policy}) if policy else None
    return base.derive(name, kernels={"FULLY_CONNECTED": CountingFullyConnected,
                                      "UNIDIRECTIONAL_SEQUENCE_LSTM": lstm}, policy=pol)


# -- tests ---------------------------------------------------------------------------------------------
def test_builtin_flavors_are_listed():
    names = [f.name for f in edgelstm.flavors()]
    assert names[:2] == ["tflite", "tflm"]
    tflm = edgelstm.flavor("tflm")
    assert tflm.parent is edgelstm.flavor("tflite")
    assert tflm.policy.static_shapes and tflm.policy.reference == "tflm"
    assert "REDUCE_PROD" in edgelstm.flavor("tflite").opcodes() and "REDUCE_PROD" not in tflm.opcodes()
    with pytest.raises(ModelError, match="unknown flavor 'nope'"):
        edgelstm.load(zoo.build("basic"), flavor="nope")


@pytest.mark.parametrize("name", ["basic", "stacked3"])
def test_flavor_defined_in_a_test_runs_a_zoo_model_bit_exact(name):
    data = zoo.build(name)
    mine = derived("test-same-arithmetic", SameArithmeticLSTM)
    ours, tflm = edgelstm.load(data, flavor=mine), edgelstm.load(data, flavor="tflm")
    assert ours.flavor == "test-same-arithmetic"
    ref = get_reference("tflm", data)
    CountingFullyConnected.calls = 0
    compared = 0
    for xs in zoo.sample_inputs(data, n_random=3):
        y = ours.run(xs)
        assert np.array_equal(y, tflm.run(xs))
        assert np.array_equal(y, ref.run(xs, reset=True)[0])
        compared += y.size
    assert compared > 0 and CountingFullyConnected.calls == 6  # one Dense per run, 6 inputs


def test_overridden_step_is_what_runs():
    data = zoo.build("basic")
    changed = edgelstm.load(data, flavor=derived("test-changed", ChangedLSTM))
    tflm = edgelstm.load(data, flavor="tflm")
    zp = tflm.graph.tensors[next(op for op in tflm.graph.operators
                                 if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM").inputs[18]].quant.zp
    assert zp != 0, "the zoo model must have a nonzero hidden zero point for this test to discriminate"
    differing = sum(int(np.count_nonzero(changed.run(xs) != tflm.run(xs))) for xs in zoo.sample_inputs(data))
    assert differing > 0


def test_with_steps_names_unknown_steps():
    with pytest.raises(ValueError, match="no step named update_hiden"):
        with_steps(TFLMLSTM.EVAL, update_hiden=hidden_update_by_tanh_then_clip)


def test_derived_flavor_can_refuse_an_op_and_be_registered_by_name():
    no_fc = edgelstm.register_flavor(edgelstm.flavor("tflite").derive("test-no-fc", kernels={"FULLY_CONNECTED": None},
                                                                      policy=edgelstm.Policy(runtime="NoFC",
                                                                                             reference="litert")))
    try:
        assert edgelstm.flavor("test-no-fc") is no_fc and no_fc in edgelstm.flavors()
        with pytest.raises(ModelError, match="NoFC has no kernel for FULLY_CONNECTED"):
            edgelstm.load(zoo.build("basic"), flavor="test-no-fc")
        with pytest.raises(ValueError, match="already registered"):
            edgelstm.register_flavor(edgelstm.flavor("tflite").derive("test-no-fc"))
        # lint asks every registered flavour, so a new one's refusals show up there
        hazards = [h for h in lint(zoo.build("basic")) if h.code == "flavor_refuses"]
        assert [h.consequences for h in hazards] == [{"edgelstm flavor=test-no-fc": "refuses the model"}]
        assert "NoFC has no kernel for FULLY_CONNECTED" in hazards[0].message
    finally:
        edgelstm.unregister_flavor("test-no-fc")
    assert "test-no-fc" not in [f.name for f in edgelstm.flavors()]
    assert not [h for h in lint(zoo.build("basic")) if h.code == "flavor_refuses"]


def test_lint_reports_what_the_tflm_flavor_refuses():
    hazards = [h for h in lint(zoo.build("dynamic_time_dense")) if h.code == "flavor_refuses"]
    assert len(hazards) == 1 and "TFLite Micro has no kernel for REDUCE_PROD" in hazards[0].message


def test_stateless_policy_resets_every_invoke():
    """An interpreter that keeps no LSTM state between invokes (the policy TFLM built on CMSIS-NN
    needs): run(x, reset=False) starts fresh every time, unlike the tflm flavour."""
    data = zoo.build("basic")
    stateless = edgelstm.load(data, flavor=derived("test-stateless", SameArithmeticLSTM,
                                                   state_persists=False))
    stateful = edgelstm.load(data, flavor="tflm")
    x = zoo.sample_inputs(data, n_random=1)[0]
    first = stateful.run(x)
    assert not np.array_equal(stateful.run(x, reset=False), first)
    assert np.array_equal(stateless.run(x), first) and np.array_equal(stateless.run(x, reset=False), first)
