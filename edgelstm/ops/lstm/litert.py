"""UNIDIRECTIONAL_SEQUENCE_LSTM as LiteRT computes it (flavour "tflite"): the full-integer 8x8_16
path of `EvalInteger8x8_16` (shared/reference/tflite_int8_lstm_spec.md, section 2).

Two behaviours of LiteRT that are arguably bugs are reproduced, because they are what the
interpreter computes (shared/reference/litert_vs_tflm.md, sections 2 and 3):
- the hidden state is requantized with the scale/zero point of intermediate 4, not of the output
  state tensor (input 18), while the recurrent matmul reads it back with input 18's parameters;
- for cell-state scales outside 2^-15..2^-9, gemmlowp's tanh is not dispatched and the buffer it
  should have written still holds the input gate, so h = o * sigmoid(i) instead of o * tanh(c).

Prepare builds an `LSTMRecord` (multipliers from float32 scale arithmetic, as LiteRT's Prepare;
gemmlowp's sigmoid/tanh as tables); the eval is one small Numba function per stage of a step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ... import fixedpoint as fp
from ... import lstm_shared as ls
from ...fixedpoint import mbqm, rdbp, sat16, wrap16
from ..base import register
from .kernel import ActivationTables, LSTMKernel, LSTMRecord, LSTMTensors, activate, step
from .matmul import biased_matvec, fuse_gates, input_gates

_jit = njit(cache=True, nogil=True)

_F32_2_M12 = np.float32(2.0 ** -12)  # gate pre-activation scale without layer norm (Q3.12)
_F32_2_M15 = np.float32(2.0 ** -15)


@dataclass(frozen=True)
class CellParams:
    """c = sat16(wrap16(rdbp(f * c, 15)) + wrap16(rdbp(i * g, cell_shift))), then the clip."""

    cell_shift: int  # 30 + log2(cell scale): brings i * g (Q0.30) to the cell's scale
    cell_clip: int  # quantized cell clip, 0 = none

    def args(self) -> tuple:
        return (self.cell_shift, self.cell_clip)


@dataclass(frozen=True)
class HiddenParams:
    """h = clamp8(MBQM(o * tanh(c), mult, shift) + zp), with intermediate 4's scale and zero point."""

    tanh_c: np.ndarray  # int16 [65536]: gemmlowp tanh at the cell state's scale
    tanh_c_valid: bool  # False: LiteRT skips tanh(c) and uses the input gate (cell scale outside 2^-15..2^-9)
    mult: int
    shift: int
    zp: int

    def args(self) -> tuple:
        return (self.tanh_c, self.tanh_c_valid, self.mult, self.shift, self.zp)


# -- eval: one function per stage of a step -----------------------------------------------------------
@step
def gate_preactivations(zx, t, h, wh_t, bh, h_mult, h_shift, narrow, acc, gates):
    """gates[g] = sat16(MBQM(recurrent matmul) + input term): LiteRT saturates once, after adding
    the recurrent term to the (already saturated) input term."""
    n_cell = gates.shape[1]
    biased_matvec(bh, wh_t, h, acc, narrow)
    for g in range(4):
        m = h_mult[g]
        s = h_shift[g]
        row = gates[g]
        for j in range(n_cell):
            row[j] = sat16(mbqm(acc[g * n_cell + j], m, s) + zx[t, g * n_cell + j])


@step
def update_cell(c, i, f, g, cell_shift, cell_clip):
    """c = sat16(wrap16(rdbp(f * c, 15)) + wrap16(rdbp(i * g, cell_shift))), then the clip."""
    for j in range(c.shape[0]):
        c1 = wrap16(rdbp(f[j] * np.int32(c[j]), 15))
        c2 = wrap16(rdbp(i[j] * g[j], cell_shift))
        c_new = sat16(c1 + c2)
        if cell_clip > 0:
            c_new = min(max(c_new, -cell_clip), cell_clip)
        c[j] = c_new


@step
def tanh_cell(c, tanh_c, tc):
    """tc = tanh(c), for the cell scales LiteRT dispatches gemmlowp's tanh for."""
    for j in range(c.shape[0]):
        tc[j] = tanh_c[c[j] + 32768]


@step
def update_hidden(o, tc, mult, shift, zp, h):
    """h = clamp8(MBQM(o * tc) + zp), tc being tanh(c) or, where LiteRT skips tanh, the input gate
    its buffer still holds (the eval picks which)."""
    for j in range(h.shape[0]):
        v = mbqm(o[j] * tc[j], mult, shift) + zp
        h[j] = min(max(v, -128), 127)


@_jit
def lstm_eval(xb, h, c, out,
              wx_t, wh_t, bx, bh, x_mult, x_shift, h_mult, h_shift, narrow,  # GateParams
              sigmoid, tanh,  # ActivationTables
              cell_shift, cell_clip,  # CellParams
              tanh_c, tanh_c_valid, hid_mult, hid_shift, hid_zp):  # HiddenParams
    """The whole op for batch-major input xb [B, T, n_in] into out [B, T, n_out]; h and c are
    updated in place. One compiled entry point per call, so a call pays Numba's dispatch once."""
    n_b, n_t = xb.shape[0], xb.shape[1]
    n_cell = c.shape[1]
    zx = np.empty((n_t, 4 * n_cell), dtype=np.int16)
    acc = np.empty(4 * n_cell, dtype=np.int32)
    gates = np.empty((5, n_cell), dtype=np.int32)
    i, f, g, o, tc = gates[0], gates[1], gates[2], gates[3], gates[4]  # gate rows, then tanh(c)
    for b in range(n_b):
        input_gates(xb[b], wx_t, bx, x_mult, x_shift, n_cell, narrow, acc, zx)
        hb = h[b]
        cb = c[b]
        for t in range(n_t):
            gate_preactivations(zx, t, hb, wh_t, bh, h_mult, h_shift, narrow, acc, gates)
            activate(i, f, g, o, sigmoid, tanh)
            update_cell(cb, i, f, g, cell_shift, cell_clip)
            if tanh_c_valid:
                tanh_cell(cb, tanh_c, tc)
                update_hidden(o, tc, hid_mult, hid_shift, hid_zp, hb)
            else:  # LiteRT's tanh buffer still holds the input gate
                update_hidden(o, i, hid_mult, hid_shift, hid_zp, hb)
            for j in range(n_cell):  # not a slice assignment: that costs more per step here
                out[b, t, j] = hb[j]


# -- prepare ----------------------------------------------------------------------------------------
@register(ls.OPCODE)
class LiteRTLSTM(LSTMKernel):
    EVAL = staticmethod(lstm_eval)

    def prepare_record(self, t: LSTMTensors) -> LSTMRecord:
        if len(self.op.intermediates) != ls.N_INTERMEDIATES:
            raise self.fail(f"the integer LSTM needs {ls.N_INTERMEDIATES} intermediate tensors, has "
                            f"{len(self.op.intermediates)}")
        s_in, z_in = self.per_tensor_quant(t.x)
        s_h, z_h = self.per_tensor_quant(t.h)
        s_c, _ = self.per_tensor_quant(t.c)
        hidden = self.graph.tensors[self.op.intermediates[ls.HIDDEN_INTERMEDIATE]]
        s4, z4 = self.per_tensor_quant(hidden)
        if not -128 <= z4 <= 127:
            raise self.fail(f"intermediate 4 zero point {z4} is outside int8")

        if not (math.isfinite(s_c) and s_c > 0):
            raise self.fail(f"cell state scale {s_c} must be positive")
        # LiteRT's Prepare: CheckedLog2 (float32 log), and a fractional part below 1e-3f
        cell_scale_log2, frac = fp.checked_log2(s_c)
        if not abs(np.float32(frac)) < np.float32(1e-3):
            raise self.fail(f"cell state scale {s_c} is not a power of two (TFLite requires one)")
        cell_shift = 30 + cell_scale_log2
        if not 0 <= cell_shift <= 31:
            raise self.fail(f"cell state scale 2^{cell_scale_log2} is outside what the integer kernel "
                            "can represent (2^-30 .. 2^1)")
        tanh_bits = 15 + cell_scale_log2
        tanh_c_valid = 0 <= tanh_bits <= 6

        cell_clip = float(self.op.options.get("cell_clip", 0.0))
        if not math.isfinite(cell_clip) or cell_clip < 0:
            raise self.fail(f"cell_clip must be finite and >= 0, is {cell_clip}")
        clip_q = 0
        if cell_clip > 0:
            q = np.float32(np.float32(cell_clip) / np.float32(s_c))
            clip_q = int(np.trunc(np.clip(q, -32768.0, 32767.0)))

        # Effective scales, in float32 exactly as LiteRT's Prepare computes them.
        mx, sx, mh, sh = [], [], [], []
        for wxt, wht in zip(t.wx, t.wh):
            ex = np.float32(np.float32(np.float32(wxt.quant.s) * np.float32(s_in)) / _F32_2_M12)
            eh = np.float32(np.float32(np.float32(wht.quant.s) * np.float32(s_h)) / _F32_2_M12)
            m, s = fp.quantize_multiplier(float(ex)); mx.append(m); sx.append(s)
            m, s = fp.quantize_multiplier(float(eh)); mh.append(m); sh.append(s)
        e_hid = np.float32(np.float32(_F32_2_M15 / np.float32(s4)) * _F32_2_M15)
        hid_mult, hid_shift = fp.quantize_multiplier(float(e_hid))

        # LiteRT's integer LSTM takes the weights as symmetric: their zero points are not read.
        gates = fuse_gates([self.constant(w) for w in t.wx], [self.constant(w) for w in t.wh],
                           [self.constant(b) for b in t.bias], z_in, z_h, (mx, sx, mh, sh))
        return LSTMRecord(
            gates=gates,
            activations=ActivationTables(sigmoid=fp.logistic_table(3), tanh=fp.tanh_table(3)),
            cell=CellParams(cell_shift=cell_shift, cell_clip=clip_q),
            hidden=HiddenParams(tanh_c=fp.tanh_table(tanh_bits if tanh_c_valid else 0), tanh_c_valid=tanh_c_valid,
                                mult=int(hid_mult), shift=int(hid_shift), zp=z4))
