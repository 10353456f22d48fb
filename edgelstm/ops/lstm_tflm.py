"""UNIDIRECTIONAL_SEQUENCE_LSTM as TFLite Micro computes it (flavor="tflm"): the 8x8_16 integer path
of TFLM's kernel rewritten in 2023 (micro/kernels/lstm_eval.h, lstm_eval.cc, lstm_eval_common.cc).

Where it differs from LiteRT's kernel (ops/lstm.py; shared/reference/litert_vs_tflm.md, sections 2-5):
- sigmoid and tanh are TFLM's interpolated 256-entry table (fixedpoint.lut_logistic16 / lut_tanh16),
  not gemmlowp's polynomials;
- tanh(c) works for every cell scale 2^cs: the cell state is brought to the table's Q3.12 input by
  a left shift of 12 + cs, or a rounding right shift when that is negative (LiteRT skips tanh
  below 2^-15);
- the hidden state is requantized with the scale and zero point of the state tensor (input 18),
  the same ones the recurrent matmul reads it back with; the intermediates are not read at all;
- each of the two gate matmuls saturates to int16 before their sum saturates again;
- the cell update rounds twice: f*c and i*g are each a MultiplyByQuantizedMultiplier saturated to
  int16 (with f*c's multiplier (2^30, -14)), then their sum saturates;
- multipliers come from double arithmetic on the float32 scales (LiteRT: float32);
- nonzero weight zero points are subtracted (TFLM's fully-connected weights_offset);
- the cell-state scale need not be a power of two: TFLM rounds its log2 and does not complain.

Prepare builds a plain parameter record (`TFLMParams`); eval is one small Numba function per stage
of a step (recurrent matmul, activations, cell update, hidden update), driven by `_sequence`. The
input-side matmul of every timestep is done up front, as in ops/lstm.py, whose Numba helpers it
shares.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import fixedpoint as fp
from ..fixedpoint import mbqm, sat16
from .base import OpKernel
from .lstm import _input_gates, _matvec_acc

_jit = njit(cache=True, nogil=True)

_F32_2_M12 = np.float32(2.0 ** -12)  # scale of the gate matmul outputs (Q3.12)
_F32_2_M15 = np.float32(2.0 ** -15)  # scale of the gate activations (Q0.15)
# Cell-state scale exponents whose integer arithmetic stays inside int32 in TFLM's tanh input
# scaling (x * (3 << (12 + cs)) for cs >= -12) and keeps its right shift well below 32.
_CS_MIN, _CS_MAX = -40, 2


@dataclass
class TFLMParams:
    """Everything the TFLM eval needs, computed once from the model."""

    wx_t: np.ndarray  # int16 [n_in, 4 * n_cell], weight zero points subtracted, gate rows i, f, c, o
    wh_t: np.ndarray  # int16 [n_out, 4 * n_cell]
    bx: np.ndarray  # int32 [4 * n_cell]: bias - zp_in * rowsum(wx), wrapped like the C++ int32 sums
    bh: np.ndarray  # int32 [4 * n_cell]: -zp_h * rowsum(wh)
    mult: np.ndarray  # int64 [4, 4]: input multipliers, their shifts, recurrent multipliers, shifts
    tables: np.ndarray  # int16 [3, 65536]: gate sigmoid, cell-gate tanh (Q3.12), tanh of the cell state
    params: np.ndarray  # int64 [9]: see `_lstm_eval`
    narrow: bool


def fc_multiplier(s_in: float, s_w: float, s_out: float) -> tuple[int, int]:
    """TFLM's per-tensor fully-connected multiplier, double(s_in) * double(s_w) / double(s_out).
    (The August 2026 source multiplies the float32 scales before widening; the installed
    tflite-micro demonstrably does not: tests/test_tflm.py pins the double product.)"""
    m, s = fp.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
    return int(m), int(s)


def mul_multiplier(s1: float, s2: float, s_out: float) -> tuple[int, int]:
    """CreateInterGateMulParams: double(s1) * double(s2) / double(s_out)."""
    m, s = fp.quantize_multiplier(float(s1) * float(s2) / float(s_out))
    return int(m), int(s)


def prepare(kernel: OpKernel, x, wx, wh, bias, h_t, c_t) -> TFLMParams:
    """The TFLM parameter record for an LSTM whose structure `kernel` has already validated
    (x: input tensor; wx, wh, bias: per-gate tensors in order i, f, c, o; h_t, c_t: states)."""
    op = kernel.op
    if len(op.inputs) != 24:
        raise kernel.fail(f"TFLite Micro's LSTM needs all 24 inputs (absent ones as -1), has {len(op.inputs)}")
    act = kernel.activation()
    if act != "TANH":  # the flatbuffer cannot say SIGMOID, the kernel's only other choice
        raise kernel.fail(f"TFLite Micro's LSTM needs the TANH cell activation, not {act}")

    s_in, z_in = kernel.per_tensor_quant(x)
    s_h, z_h = kernel.per_tensor_quant(h_t)
    s_c, _ = kernel.per_tensor_quant(c_t)
    if not (math.isfinite(s_c) and s_c > 0):
        raise kernel.fail(f"cell state scale {s_c} must be positive")
    # CheckedLog2's rounding; TFLM ignores whether the scale really is a power of two
    cs = int(round(math.log2(s_c)))
    if not _CS_MIN <= cs <= _CS_MAX:
        raise kernel.fail(f"cell state scale 2^{cs} is outside what the integer kernel can represent "
                          f"(2^{_CS_MIN} .. 2^{_CS_MAX})")

    cell_clip = float(op.options.get("cell_clip", 0.0))
    if not math.isfinite(cell_clip) or cell_clip < 0:
        raise kernel.fail(f"cell_clip must be finite and >= 0, is {cell_clip}")
    # static_cast<int16_t>(min(max(double(clip) / double(scale), -32768), 32767)): truncation
    clip_q = int(min(max(float(np.float32(cell_clip)) / float(s_c), -32768.0), 32767.0)) if cell_clip > 0 else 0

    mult = np.zeros((4, 4), np.int64)
    for g, (wxt, wht) in enumerate(zip(wx, wh)):
        mult[0, g], mult[1, g] = fc_multiplier(s_in, wxt.quant.s, _F32_2_M12)
        mult[2, g], mult[3, g] = fc_multiplier(s_h, wht.quant.s, _F32_2_M12)
    fc_m, fc_s = mul_multiplier(_F32_2_M15, s_c, s_c)
    ig_m, ig_s = mul_multiplier(_F32_2_M15, _F32_2_M15, s_c)
    hid_m, hid_s = mul_multiplier(_F32_2_M15, _F32_2_M15, s_h)

    # tanh(c): 15 + cs integer bits down to the table's 3, by a left shift or a rounding right shift
    tanh_shift = 12 + cs
    tanh_c = fp.lut_table("tanh", 0, tanh_shift) if tanh_shift >= 0 else fp.lut_table("tanh", 3, -tanh_shift)
    tables = np.stack([fp.lut_table("logistic"), fp.lut_table("tanh"), tanh_c])

    wx_all = np.concatenate([kernel.constant(t).astype(np.int64) - t.quant.zp for t in wx], axis=0)
    wh_all = np.concatenate([kernel.constant(t).astype(np.int64) - t.quant.zp for t in wh], axis=0)
    b = np.concatenate([kernel.constant(t).astype(np.int64) for t in bias])
    bx = b - z_in * wx_all.sum(axis=1)
    bh = -z_h * wh_all.sum(axis=1)
    wrap = lambda v: ((v + 2**31) % 2**32 - 2**31).astype(np.int32)  # noqa: E731
    narrow = bool(np.abs(wx_all).max(initial=0) <= 127 and np.abs(wh_all).max(initial=0) <= 127)
    params = np.array([fc_m, fc_s, ig_m, ig_s, clip_q, hid_m, hid_s, z_h, int(narrow)], np.int64)
    return TFLMParams(np.ascontiguousarray(wx_all.T.astype(np.int16)), np.ascontiguousarray(wh_all.T.astype(np.int16)),
                      wrap(bx), wrap(bh), mult, tables, params, narrow)


# -- eval: one function per stage of a step -----------------------------------------------------------
@_jit
def _gate_preactivations(zx_t, h, wh_t, bh, mult_h, shift_h, narrow, acc, gates):
    """gates[g] = sat16(sat16(MBQM(recurrent matmul)) + input term): TFLM saturates each of the
    two fully-connected outputs to int16 before AddElementWise saturates their sum."""
    n_cell = gates.shape[1]
    acc[:] = bh
    _matvec_acc(wh_t, h, acc, narrow)
    for g in range(4):
        m = mult_h[g]
        s = shift_h[g]
        for j in range(n_cell):
            gates[g, j] = sat16(sat16(mbqm(acc[g * n_cell + j], m, s)) + zx_t[g * n_cell + j])


@_jit
def _activate(gates, sig_table, cell_table):
    """Sigmoid on the input, forget and output gates, tanh on the cell gate."""
    n_cell = gates.shape[1]
    for j in range(n_cell):
        gates[0, j] = sig_table[gates[0, j] + 32768]
        gates[1, j] = sig_table[gates[1, j] + 32768]
        gates[2, j] = cell_table[gates[2, j] + 32768]
        gates[3, j] = sig_table[gates[3, j] + 32768]


@_jit
def _update_cell(c, gates, fc_m, fc_s, ig_m, ig_s, clip):
    """c = sat16(sat16(MBQM(f * c)) + sat16(MBQM(i * g))), then the optional clip."""
    for j in range(c.shape[0]):
        fc = sat16(mbqm(gates[1, j] * np.int64(c[j]), fc_m, fc_s))
        ig = sat16(mbqm(gates[0, j] * gates[2, j], ig_m, ig_s))
        v = sat16(fc + ig)
        if clip > 0:
            v = max(min(clip, v), -clip)
        c[j] = v


@_jit
def _update_hidden(c, gates, tanh_c_table, hid_m, hid_s, hid_zp, h):
    """h = clamp8(MBQM(tanh(c) * o) + zp of the state tensor)."""
    for j in range(c.shape[0]):
        t = np.int64(tanh_c_table[c[j] + 32768])
        v = mbqm(t * gates[3, j], hid_m, hid_s) + hid_zp
        h[j] = min(max(v, -128), 127)


@_jit
def _sequence(zx, h, c, wh_t, bh, mult, tables, params, acc, gates, out):
    """The recurrence of one batch row over all timesteps; h and c are updated in place."""
    narrow = params[8] != 0
    for t in range(zx.shape[0]):
        _gate_preactivations(zx[t], h, wh_t, bh, mult[2], mult[3], narrow, acc, gates)
        _activate(gates, tables[0], tables[1])
        _update_cell(c, gates, params[0], params[1], params[2], params[3], params[4])
        _update_hidden(c, gates, tables[2], params[5], params[6], params[7], h)
        out[t, :] = h


@_jit
def _lstm_eval(xb, h, c, wx_t, wh_t, bx, bh, mult, tables, params, out):
    """The whole op for batch-major input xb [B, T, n_in] (one compiled entry point per call).

    params: f*c multiplier and shift, i*g multiplier and shift, quantized cell clip (0 = none),
    hidden multiplier, shift and zero point, 16-bit matvec flag.
    """
    n_b, n_t = xb.shape[0], xb.shape[1]
    n_cell = c.shape[1]
    zx = np.empty((n_t, 4 * n_cell), dtype=np.int16)
    acc = np.empty(4 * n_cell, dtype=np.int32)
    gates = np.empty((4, n_cell), dtype=np.int64)
    narrow = params[8] != 0
    for b in range(n_b):
        _input_gates(xb[b], wx_t, bx, mult[0], mult[1], n_cell, narrow, acc, zx)
        _sequence(zx, h[b], c[b], wh_t, bh, mult, tables, params, acc, gates, out[b])


def run(p: TFLMParams, xb: np.ndarray, h: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """Evaluate on batch-major input xb [B, T, n_in] into out [B, T, n_out]; h and c in place."""
    _lstm_eval(xb, h, c, p.wx_t, p.wh_t, p.bx, p.bh, p.mult, p.tables, p.params, out)
