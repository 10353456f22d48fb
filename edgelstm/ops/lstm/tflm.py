"""UNIDIRECTIONAL_SEQUENCE_LSTM as TFLite Micro computes it (flavor="tflm"): the 8x8_16 integer path
of TFLM's kernel rewritten in 2023 (micro/kernels/lstm_eval.h, lstm_eval.cc, lstm_eval_common.cc).

Where it differs from LiteRT's kernel (litert.py; shared/reference/litert_vs_tflm.md, sections 2-5):
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
- the cell-state scale need not be a power of two: TFLM rounds its log2 and does not complain;
  that log2 is CheckedLog2's, in float32 and rounded half away from zero (fixedpoint.checked_log2),
  which differs from round(math.log2(scale)) next to 2^(k + 1/2);
- the cell clip is on whenever the float cell_clip is > 0, even when its quantized bound
  truncates to 0 (then every cell state is clipped to 0); LiteRT tests the quantized bound.

Prepare builds an `LSTMRecord` with this flavour's cell and hidden parts; the eval is one small
Numba function per stage of a step (recurrent matmul, activations, cell update, hidden update).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ... import fixedpoint as fp
from ... import lstm_shared as ls
from ...fixedpoint import mbqm, sat16
from ..base import register
from ..flavor import TFLM
from .kernel import ActivationTables, LSTMKernel, LSTMRecord, LSTMTensors, activate, step
from .matmul import biased_matvec, fuse_gates, input_gates

_jit = njit(cache=True, nogil=True)

_F32_2_M12 = np.float32(2.0 ** -12)  # scale of the gate matmul outputs (Q3.12)
_F32_2_M15 = np.float32(2.0 ** -15)  # scale of the gate activations (Q0.15)
# Cell-state scale exponents whose integer arithmetic stays inside int32 in TFLM's tanh input
# scaling (x * (3 << (12 + cs)) for cs >= -12) and keeps its right shift well below 32.
_CS_MIN, _CS_MAX = -40, 2


@dataclass(frozen=True)
class CellParams:
    """c = sat16(sat16(MBQM(f * c, fc_mult, fc_shift)) + sat16(MBQM(i * g, ig_mult, ig_shift))), then
    the clip (TFLM's cell-state inter-gate parameters)."""

    fc_mult: int
    fc_shift: int
    ig_mult: int
    ig_shift: int
    clipping: bool  # TFLM's test, on the float option: cell_clip > 0
    clip: int  # the bound, int16(cell_clip / scale) truncated: 0 when the clip is below one step

    def args(self) -> tuple:
        return (self.fc_mult, self.fc_shift, self.ig_mult, self.ig_shift, self.clipping, self.clip)


@dataclass(frozen=True)
class HiddenParams:
    """h = clamp8(MBQM(tanh(c) * o, mult, shift) + zp), with the state tensor's (input 18's) zero point."""

    tanh_c: np.ndarray  # int16 [65536]: TFLM's interpolated tanh after scaling c to Q3.12
    tanh_c_mult: int  # how c was scaled: multiplied by this (0 = shifted left only) ...
    tanh_c_shift: int  # ... and shifted (left if tanh_c_mult is 0, else right with rounding)
    mult: int
    shift: int
    zp: int

    def args(self) -> tuple:
        return (self.tanh_c, self.mult, self.shift, self.zp)


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


def hidden_params(cell_power: int, s_h: float, z_h: int) -> HiddenParams:
    """The hidden-state update for a cell-state scale of 2^cell_power (TFLM's
    cell_state_scale_power) and the state tensor's scale and zero point."""
    # tanh(c): 15 + cell_power integer bits down to the table's 3, by a left shift or a rounding
    # right shift
    shift = 12 + cell_power
    tanh_mult, tanh_shift = (0, shift) if shift >= 0 else (3, -shift)
    mult, mshift = mul_multiplier(_F32_2_M15, _F32_2_M15, s_h)
    return HiddenParams(tanh_c=fp.lut_table("tanh", tanh_mult, tanh_shift), tanh_c_mult=tanh_mult,
                        tanh_c_shift=tanh_shift, mult=mult, shift=mshift, zp=z_h)


# -- eval: one function per stage of a step -----------------------------------------------------------
@step
def gate_preactivations(zx, t, h, wh_t, bh, h_mult, h_shift, narrow, acc, gates):
    """gates[g] = sat16(sat16(MBQM(recurrent matmul)) + input term): TFLM saturates each of the
    two fully-connected outputs to int16 before AddElementWise saturates their sum."""
    n_cell = gates.shape[1]
    biased_matvec(bh, wh_t, h, acc, narrow)
    for g in range(4):
        m = h_mult[g]
        s = h_shift[g]
        for j in range(n_cell):
            gates[g, j] = sat16(sat16(mbqm(acc[g * n_cell + j], m, s)) + zx[t, g * n_cell + j])


@step
def update_cell(c, i, f, g, fc_mult, fc_shift, ig_mult, ig_shift, clipping, clip):
    """c = sat16(sat16(MBQM(f * c)) + sat16(MBQM(i * g))), then the clip."""
    for j in range(c.shape[0]):
        fc = sat16(mbqm(f[j] * np.int64(c[j]), fc_mult, fc_shift))
        ig = sat16(mbqm(i[j] * g[j], ig_mult, ig_shift))
        v = sat16(fc + ig)
        if clipping:  # not clip > 0: a bound of 0 still clips
            v = max(min(clip, v), -clip)
        c[j] = v


@step
def update_hidden(c, o, tanh_c, mult, shift, zp, h):
    """h = clamp8(MBQM(tanh(c) * o) + zp of the state tensor)."""
    for j in range(c.shape[0]):
        t = np.int64(tanh_c[c[j] + 32768])
        v = mbqm(t * o[j], mult, shift) + zp
        h[j] = min(max(v, -128), 127)


@_jit
def lstm_eval(xb, h, c, out,
              wx_t, wh_t, bx, bh, x_mult, x_shift, h_mult, h_shift, narrow,  # GateParams
              sigmoid, tanh,  # ActivationTables
              fc_mult, fc_shift, ig_mult, ig_shift, clipping, clip,  # CellParams
              tanh_c, hid_mult, hid_shift, hid_zp):  # HiddenParams
    """The whole op for batch-major input xb [B, T, n_in] into out [B, T, n_out]; h and c are
    updated in place."""
    n_b, n_t = xb.shape[0], xb.shape[1]
    n_cell = c.shape[1]
    zx = np.empty((n_t, 4 * n_cell), dtype=np.int16)
    acc = np.empty(4 * n_cell, dtype=np.int32)
    gates = np.empty((4, n_cell), dtype=np.int64)
    i, f, g, o = gates[0], gates[1], gates[2], gates[3]
    for b in range(n_b):
        input_gates(xb[b], wx_t, bx, x_mult, x_shift, n_cell, narrow, acc, zx)
        hb = h[b]
        cb = c[b]
        for t in range(n_t):
            gate_preactivations(zx, t, hb, wh_t, bh, h_mult, h_shift, narrow, acc, gates)
            activate(i, f, g, o, sigmoid, tanh)
            update_cell(cb, i, f, g, fc_mult, fc_shift, ig_mult, ig_shift, clipping, clip)
            update_hidden(cb, o, tanh_c, hid_mult, hid_shift, hid_zp, hb)
            for j in range(n_cell):  # not a slice assignment: that costs more per step here
                out[b, t, j] = hb[j]


# -- prepare ----------------------------------------------------------------------------------------
@register(ls.OPCODE, flavor=TFLM)
class TFLMLSTM(LSTMKernel):
    EVAL = staticmethod(lstm_eval)

    def prepare_record(self, t: LSTMTensors) -> LSTMRecord:
        op = self.op
        if len(op.inputs) != ls.N_INPUTS:
            raise self.fail(f"TFLite Micro's LSTM needs all {ls.N_INPUTS} inputs (absent ones as -1), "
                            f"has {len(op.inputs)}")
        act = self.activation()
        if act != "TANH":  # the flatbuffer cannot say SIGMOID, the kernel's only other choice
            raise self.fail(f"TFLite Micro's LSTM needs the TANH cell activation, not {act}")

        s_in, z_in = self.per_tensor_quant(t.x)
        s_h, z_h = self.per_tensor_quant(t.h)
        s_c, _ = self.per_tensor_quant(t.c)
        if not (math.isfinite(s_c) and s_c > 0):
            raise self.fail(f"cell state scale {s_c} must be positive")
        cs, _ = fp.checked_log2(s_c)  # TFLM ignores whether the scale really is a power of two
        if not _CS_MIN <= cs <= _CS_MAX:
            raise self.fail(f"cell state scale 2^{cs} is outside what the integer kernel can represent "
                            f"(2^{_CS_MIN} .. 2^{_CS_MAX})")

        # Clipping is on when the float cell_clip is > 0; a negative or NaN clip is no clip (the
        # tflite-micro build runs it: its Prepare has no cell_clip >= 0 check, tests/test_tflm.py).
        # The bound is static_cast<int16_t>(min(max(double(clip) / double(scale), -32768), 32767)):
        # truncated, so a clip below one step of the cell scale clips every cell state to 0.
        cell_clip = float(np.float32(op.options.get("cell_clip", 0.0)))
        clipping = cell_clip > 0
        clip_q = int(min(max(cell_clip / float(s_c), -32768.0), 32767.0)) if clipping else 0

        mults = np.zeros((4, 4), np.int64)
        for g, (wxt, wht) in enumerate(zip(t.wx, t.wh)):
            mults[0, g], mults[1, g] = fc_multiplier(s_in, wxt.quant.s, _F32_2_M12)
            mults[2, g], mults[3, g] = fc_multiplier(s_h, wht.quant.s, _F32_2_M12)
        fc_m, fc_s = mul_multiplier(_F32_2_M15, s_c, s_c)
        ig_m, ig_s = mul_multiplier(_F32_2_M15, _F32_2_M15, s_c)

        gates = fuse_gates([self.constant(w).astype(np.int64) - w.quant.zp for w in t.wx],
                           [self.constant(w).astype(np.int64) - w.quant.zp for w in t.wh],
                           [self.constant(b) for b in t.bias], z_in, z_h, tuple(mults))
        return LSTMRecord(
            gates=gates,
            activations=ActivationTables(sigmoid=fp.lut_table("logistic"), tanh=fp.lut_table("tanh")),
            cell=CellParams(fc_mult=fc_m, fc_shift=fc_s, ig_mult=ig_m, ig_shift=ig_s, clipping=clipping, clip=clip_q),
            hidden=hidden_params(cs, s_h, z_h))
