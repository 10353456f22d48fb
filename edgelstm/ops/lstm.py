"""UNIDIRECTIONAL_SEQUENCE_LSTM, full-integer 8x8_16 path (int8 activations and weights, int16 cell).

Bit-exact with LiteRT's `EvalInteger8x8_16` (shared/reference/tflite_int8_lstm_spec.md, section 2),
with flavor="tflm" TFLite Micro's kernel instead (ops/lstm_tflm.py). The LiteRT path reproduces
two behaviours of LiteRT that are arguably bugs but are what the interpreter computes
(shared/reference/litert_vs_tflm.md, sections 2 and 3):
- the hidden state is requantized with the scale/zero point of intermediate 4, not of the output
  state tensor (input 18), while the recurrent matmul reads it back with input 18's parameters;
- for cell-state scales outside 2^-15..2^-9, gemmlowp's tanh is not dispatched and the buffer it
  should have written still holds the input gate, so h = o * sigmoid(i) instead of o * tanh(c).

Prepare (Python) folds zero points into biases and turns float scales into multipliers once; eval
(Numba) is integer arithmetic over flat arrays: the input contributions of all timesteps are done
as one matrix product up front, since they do not depend on the recurrence.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from numba import njit

from .. import fixedpoint as fp
from ..errors import InputError
from ..fixedpoint import mbqm, rdbp, sat16, wrap16
from .base import OpKernel, register

# Input tensor indices of the op (lstm_shared.h)
X, WXI, WXF, WXC, WXO, WHI, WHF, WHC, WHO = 0, 1, 2, 3, 4, 5, 6, 7, 8
PEEP_I, PEEP_F, PEEP_O = 9, 10, 11
BI, BF, BC, BO = 12, 13, 14, 15
PROJ_W, PROJ_B = 16, 17
H_STATE, C_STATE = 18, 19
LN_I, LN_F, LN_C, LN_O = 20, 21, 22, 23

GATES = "ifco"  # storage order of the fused gate rows: input, forget, cell, output
_F32_2_M12 = np.float32(2.0 ** -12)  # gate pre-activation scale without layer norm (Q3.12)
_F32_2_M15 = np.float32(2.0 ** -15)


@njit(cache=True, nogil=True, inline="always")
def _accumulate(w_t, v, acc):
    """acc += w_t.T @ v with int32 wrap-around; w_t is [len(v), rows], rows contiguous.

    Four input elements per pass over `acc` keep the loads and stores of the accumulator off the
    critical path; the inner loop over rows is what LLVM vectorizes.
    """
    n, n_rows = w_t.shape
    k = 0
    while k + 4 <= n:
        v0 = np.int32(v[k])
        v1 = np.int32(v[k + 1])
        v2 = np.int32(v[k + 2])
        v3 = np.int32(v[k + 3])
        for r in range(n_rows):
            acc[r] += w_t[k, r] * v0 + w_t[k + 1, r] * v1 + w_t[k + 2, r] * v2 + w_t[k + 3, r] * v3
        k += 4
    _accumulate_from(w_t, v, acc, k)


@njit(cache=True, nogil=True, inline="always")
def _accumulate_from(w_t, v, acc, k):
    """acc += w_t[k:].T @ v[k:], one input element at a time (the tail of the blocked loops)."""
    n_rows = w_t.shape[1]
    for kk in range(k, w_t.shape[0]):
        vk = np.int32(v[kk])
        for r in range(n_rows):
            acc[r] += w_t[kk, r] * vk


@njit(cache=True, nogil=True, inline="always")
def _accumulate_pairs16(w_t, v, acc):
    """Same result as `_accumulate`, for weights in [-127, 127] only (what the converter emits).

    Then |w * v| <= 127 * 128 and two products add up without leaving int16, so the products and
    their pairwise sums stay 16-bit (vpmullw instead of the much slower 32-bit vpmulld) and only
    the pair sums are widened into the int32 accumulator.
    """
    n, n_rows = w_t.shape
    k = 0
    while k + 4 <= n:
        v0 = np.int16(v[k])
        v1 = np.int16(v[k + 1])
        v2 = np.int16(v[k + 2])
        v3 = np.int16(v[k + 3])
        for r in range(n_rows):
            p01 = np.int16(np.int16(w_t[k, r] * v0) + np.int16(w_t[k + 1, r] * v1))
            p23 = np.int16(np.int16(w_t[k + 2, r] * v2) + np.int16(w_t[k + 3, r] * v3))
            acc[r] += np.int32(p01) + np.int32(p23)
        k += 4
    _accumulate_from(w_t, v, acc, k)


@njit(cache=True, nogil=True, inline="always")
def _matvec_acc(w_t, v, acc, narrow):
    if narrow:
        _accumulate_pairs16(w_t, v, acc)
    else:
        _accumulate(w_t, v, acc)


@njit(cache=True, nogil=True)
def _input_gates(x, wx_t, bx, mult, shift, n_cell, narrow, acc, zx):
    """zx[t, r] = sat16(MBQM(bx[r] + sum_k wx[r, k] * x[t, k])) for every timestep at once."""
    n_t = x.shape[0]
    for t in range(n_t):
        acc[:] = bx
        _matvec_acc(wx_t, x[t], acc, narrow)
        for g in range(4):
            m = mult[g]
            s = shift[g]
            for j in range(n_cell):
                zx[t, g * n_cell + j] = sat16(mbqm(acc[g * n_cell + j], m, s))


@njit(cache=True, nogil=True)
def _sequence(zx, h, c, wh_t, bh, mult_h, shift_h, sig_table, tanh_g_table, tanh_c_table,
              tanh_c_valid, cell_shift, cell_clip, hid_mult, hid_shift, hid_zp, narrow, acc, gates, out):
    """Run the recurrence for one batch row: zx are the input-gate terms, h/c are updated in place.

    Each step is split into simple loops (matvec, requantize, table look-ups, cell update, hidden
    update) so that the arithmetic ones vectorize.
    """
    n_t = zx.shape[0]
    n_cell = c.shape[0]
    ig = gates[0]
    fg = gates[1]
    gg = gates[2]
    og = gates[3]
    tc = gates[4]
    for t in range(n_t):
        acc[:] = bh
        _matvec_acc(wh_t, h, acc, narrow)
        for g in range(4):
            m = mult_h[g]
            s = shift_h[g]
            row = gates[g]
            for j in range(n_cell):
                # saturate once, after adding the recurrent term to the (already saturated) input term
                row[j] = sat16(mbqm(acc[g * n_cell + j], m, s) + zx[t, g * n_cell + j])
        for j in range(n_cell):
            ig[j] = sig_table[ig[j] + 32768]
            fg[j] = sig_table[fg[j] + 32768]
            gg[j] = tanh_g_table[gg[j] + 32768]
            og[j] = sig_table[og[j] + 32768]
        for j in range(n_cell):
            c1 = wrap16(rdbp(fg[j] * np.int32(c[j]), 15))
            c2 = wrap16(rdbp(ig[j] * gg[j], cell_shift))
            c_new = sat16(c1 + c2)
            if cell_clip > 0:
                c_new = min(max(c_new, -cell_clip), cell_clip)
            c[j] = c_new
        if tanh_c_valid:
            for j in range(n_cell):
                tc[j] = tanh_c_table[c[j] + 32768]
        else:
            # LiteRT leaves its tanh buffer (holding the input gate) untouched for unsupported scales
            tc[:] = ig
        for j in range(n_cell):
            hv = mbqm(og[j] * tc[j], hid_mult, hid_shift) + hid_zp
            h[j] = min(max(hv, -128), 127)
        out[t, :] = h


@njit(cache=True, nogil=True)
def _lstm_eval(xb, h, c, wx_t, wh_t, bx, bh, mult, tables, params, out):
    """The whole op for batch-major input xb [B, T, n_in]: one compiled entry point, so a call
    pays Numba's argument dispatch once rather than twice per batch row.

    mult rows: input-gate multipliers, their shifts, recurrent multipliers, their shifts.
    tables rows: sigmoid (Q3.12), tanh (Q3.12), tanh of the cell state.
    params: cell shift, cell clip, hidden multiplier, shift, zero point, tanh(c) valid, 16-bit matvec.
    """
    n_b, n_t = xb.shape[0], xb.shape[1]
    n_cell = c.shape[1]
    rows = 4 * n_cell
    narrow = params[6] != 0
    zx = np.empty((n_t, rows), dtype=np.int16)
    acc = np.empty(rows, dtype=np.int32)
    gates = np.empty((5, n_cell), dtype=np.int32)
    for b in range(n_b):
        _input_gates(xb[b], wx_t, bx, mult[0], mult[1], n_cell, narrow, acc, zx)
        _sequence(zx, h[b], c[b], wh_t, bh, mult[2], mult[3], tables[0], tables[1], tables[2],
                  params[5] != 0, params[0], params[1], params[2], params[3], params[4], narrow,
                  acc, gates, out[b])


@register("UNIDIRECTIONAL_SEQUENCE_LSTM")
class UnidirectionalSequenceLSTM(OpKernel):
    def prepare(self) -> None:
        op = self.op
        if len(op.inputs) not in (20, 24):
            raise self.fail(f"expects 20 or 24 inputs, has {len(op.inputs)}")
        if len(op.outputs) != 1:
            raise self.fail(f"expects 1 output, has {len(op.outputs)}")
        x = self.input(X)
        if x.dtype != np.int8:
            raise self.fail(f"only the full-integer (int8 input) LSTM is supported; input is {x.type_name}"
                            " (float or hybrid models: convert with a representative dataset and int8 ops)")
        self._refuse_variants()
        opts = op.options
        if opts.get("diagonal_recurrent_tensors"):
            raise self.fail("diagonal recurrent weights (IndyLSTM) are not supported")
        self.time_major = bool(opts.get("time_major", False))
        if len(x.shape) != 3:
            raise self.fail(f"input must be 3-D, is {list(x.shape)}")
        self.n_in = x.shape[2]

        wx = [self.input(i) for i in (WXI, WXF, WXC, WXO)]
        wh = [self.input(i) for i in (WHI, WHF, WHC, WHO)]
        bias = [self.input(i) for i in (BI, BF, BC, BO)]
        h_t, c_t = self.input(H_STATE), self.input(C_STATE)
        for t in wx + wh:
            self.expect_dtype(t, np.int8)
            self.constant(t)
            self.per_tensor_quant(t)
        self.n_cell = wx[0].shape[0] if len(wx[0].shape) == 2 else -1
        self.n_out = wh[0].shape[1] if len(wh[0].shape) == 2 else -1
        for g, t in zip(GATES, wx):
            if t.shape != (self.n_cell, self.n_in):
                raise self.fail(f"input weights of gate {g} must be [{self.n_cell}, {self.n_in}], are {list(t.shape)}")
        for g, t in zip(GATES, wh):
            if t.shape != (self.n_cell, self.n_out):
                raise self.fail(f"recurrent weights of gate {g} must be [{self.n_cell}, {self.n_out}], "
                                f"are {list(t.shape)}")
        if self.n_out != self.n_cell:
            raise self.fail("without projection the output size must equal the cell count")
        for g, t in zip(GATES, bias):
            self.expect_dtype(t, np.int32)
            self.constant(t)
            if t.shape != (self.n_cell,):
                raise self.fail(f"bias of gate {g} must be [{self.n_cell}], is {list(t.shape)}")

        for t, dt in ((h_t, np.int8), (c_t, np.int16)):
            self.expect_dtype(t, dt)
            if not t.is_variable:
                raise self.fail(f"{t.describe()} must be a variable (state) tensor")
            if len(t.shape) != 2:
                raise self.fail(f"state {t.describe()} must be 2-D [batch, units]")
        self.n_batch = h_t.shape[0]
        if h_t.shape != (self.n_batch, self.n_out) or c_t.shape != (self.n_batch, self.n_cell):
            raise self.fail(f"state shapes {list(h_t.shape)} / {list(c_t.shape)} do not match "
                            f"[batch, {self.n_out}] / [batch, {self.n_cell}]")
        batch_dim = 1 if self.time_major else 0
        if x.shape_signature[batch_dim] not in (-1, self.n_batch):
            raise self.fail(f"input batch {x.shape[batch_dim]} does not match state batch {self.n_batch}")
        out_t = self.output(0)
        self.expect_dtype(out_t, np.int8)
        if self.flavor == "tflm":
            from . import lstm_tflm  # imports this module's Numba helpers, hence not at the top

            self._tflm = lstm_tflm.prepare(self, x, wx, wh, bias, h_t, c_t)
            self._tflm_eval = lstm_tflm.run
            return
        if len(op.intermediates) != 5:
            raise self.fail(f"the integer LSTM needs 5 intermediate tensors, has {len(op.intermediates)}")

        s_in, z_in = self.per_tensor_quant(x)
        s_h, z_h = self.per_tensor_quant(h_t)
        s_c, _ = self.per_tensor_quant(c_t)
        hidden = self.graph.tensors[op.intermediates[4]]
        s4, z4 = self.per_tensor_quant(hidden)
        if not -128 <= z4 <= 127:
            raise self.fail(f"intermediate 4 zero point {z4} is outside int8")

        log2_c = math.log2(s_c)
        self.cell_scale_log2 = int(round(log2_c))
        if abs(log2_c - self.cell_scale_log2) > 1e-3:
            raise self.fail(f"cell state scale {s_c} is not a power of two (TFLite requires one)")
        cell_shift = 30 + self.cell_scale_log2
        if not 0 <= cell_shift <= 31:
            raise self.fail(f"cell state scale 2^{self.cell_scale_log2} is outside what the integer kernel "
                            "can represent (2^-30 .. 2^1)")
        self.cell_shift = cell_shift
        tanh_bits = 15 + self.cell_scale_log2
        self.tanh_c_valid = 0 <= tanh_bits <= 6
        self.tanh_c_table = fp.tanh_table(tanh_bits) if self.tanh_c_valid else fp.tanh_table(0)
        self.sig_table = fp.logistic_table(3)
        self.tanh_g_table = fp.tanh_table(3)

        cell_clip = float(opts.get("cell_clip", 0.0))
        if not math.isfinite(cell_clip) or cell_clip < 0:
            raise self.fail(f"cell_clip must be finite and >= 0, is {cell_clip}")
        if cell_clip > 0:
            q = np.float32(np.float32(cell_clip) / np.float32(s_c))
            self.cell_clip = int(np.trunc(np.clip(q, -32768.0, 32767.0)))
        else:
            self.cell_clip = 0

        # Effective scales, in float32 exactly as LiteRT's Prepare computes them.
        mx, sx, mh, sh = [], [], [], []
        for wxt, wht in zip(wx, wh):
            ex = np.float32(np.float32(np.float32(wxt.quant.s) * np.float32(s_in)) / _F32_2_M12)
            eh = np.float32(np.float32(np.float32(wht.quant.s) * np.float32(s_h)) / _F32_2_M12)
            m, s = fp.quantize_multiplier(float(ex)); mx.append(m); sx.append(s)
            m, s = fp.quantize_multiplier(float(eh)); mh.append(m); sh.append(s)
        self.mx, self.sx = np.array(mx, np.int64), np.array(sx, np.int64)
        self.mh, self.sh = np.array(mh, np.int64), np.array(sh, np.int64)
        e_hid = np.float32(np.float32(_F32_2_M15 / np.float32(s4)) * _F32_2_M15)
        self.hid_mult, self.hid_shift = fp.quantize_multiplier(float(e_hid))
        self.hid_zp = z4

        # Fused gate matrices (rows i, f, c, o) and zero-point-folded biases, int32 wrap-around.
        wx_all = np.concatenate([self.constant(t) for t in wx], axis=0).astype(np.int64)
        wh_all = np.concatenate([self.constant(t) for t in wh], axis=0).astype(np.int64)
        # transposed, widened copies: the eval loops stream over contiguous gate rows
        self.wx_t = np.ascontiguousarray(wx_all.T.astype(np.int16))
        self.wh_t = np.ascontiguousarray(wh_all.T.astype(np.int16))
        self.narrow = bool(wx_all.min() >= -127 and wh_all.min() >= -127)
        self._pack()
        b = np.concatenate([self.constant(t).astype(np.int64) for t in bias])
        bx = b - z_in * wx_all.sum(axis=1)
        bh = -z_h * wh_all.sum(axis=1)
        self.bx = ((bx + 2**31) % 2**32 - 2**31).astype(np.int32)
        self.bh = ((bh + 2**31) % 2**32 - 2**31).astype(np.int32)

    def _pack(self) -> None:
        """The flat parameter record `_lstm_eval` takes (few arguments keep the call cheap)."""
        self._mult = np.stack([self.mx, self.sx, self.mh, self.sh]).astype(np.int64)
        self._tables = np.stack([self.sig_table, self.tanh_g_table, self.tanh_c_table])
        self._params = np.array([self.cell_shift, self.cell_clip, self.hid_mult, self.hid_shift, self.hid_zp,
                                 int(self.tanh_c_valid), int(self.narrow)], dtype=np.int64)

    def _refuse_variants(self) -> None:
        """CIFG, peephole, projection and layer norm change the arithmetic; we only run what we test."""
        present = lambda i: i < len(self.op.inputs) and self.op.inputs[i] != -1  # noqa: E731
        variants = []
        if not present(WXI):
            variants.append("CIFG (coupled input-forget gate)")
        if present(PEEP_I) or present(PEEP_F) or present(PEEP_O):
            variants.append("peephole connections")
        if present(PROJ_W) or present(PROJ_B):
            variants.append("projection")
        if any(present(i) for i in (LN_I, LN_F, LN_C, LN_O)):
            variants.append("layer normalization")
        for i in (WXF, WXC, WXO, WHI, WHF, WHC, WHO, BI, BF, BC, BO, H_STATE, C_STATE):
            if not present(i):
                raise self.fail(f"required input {i} is absent")
        if variants:
            raise self.fail("LSTM variant not supported by edgelstm: " + ", ".join(variants)
                            + " (Keras LSTMs convert without any of these)")

    def _shape_checks(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> None:
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise InputError(f"{self.op.describe()}: input must be [.., .., {self.n_in}], got {list(x.shape)}")
        batch = x.shape[1] if self.time_major else x.shape[0]
        if batch != h.shape[0] or h.shape != (self.n_batch, self.n_out) or c.shape != (self.n_batch, self.n_cell):
            raise InputError(f"{self.op.describe()}: input batch {batch} does not match the state batch "
                             f"{self.n_batch}")

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x, h, c = inputs[X], inputs[H_STATE], inputs[C_STATE]
        self._shape_checks(x, h, c)
        xb = np.ascontiguousarray(x.transpose(1, 0, 2)) if self.time_major else x
        out = np.empty((xb.shape[0], xb.shape[1], self.n_out), dtype=np.int8)
        if self.flavor == "tflm":
            self._tflm_eval(self._tflm, xb, h, c, out)
        else:
            _lstm_eval(xb, h, c, self.wx_t, self.wh_t, self.bx, self.bh, self._mult, self._tables, self._params, out)
        if self.time_major:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        return [out]

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        x = inputs[X]
        steps = x.shape[0] * x.shape[1]
        return steps * 4 * self.n_cell * (self.n_in + self.n_out)
