"""The LSTM's integer matrix work, shared by every flavour: the fused gate weights with their zero
points folded into the biases (prepare, Python), and the int32 matrix-vector products (eval, Numba).

int32 accumulation is exact in any order (wrap-around included), so how the products are grouped
is free; the requantization after it is what flavours differ in, and that is not here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ...fixedpoint import mbqm, sat16

_jit = njit(cache=True, nogil=True)


@dataclass(frozen=True)
class GateParams:
    """The four gates' two fully-connected layers, fused into one matrix each (rows i, f, c, o)
    and requantized per gate to the Q3.12 gate pre-activation."""

    wx_t: np.ndarray  # int16 [n_input, 4 * n_cell]: input weights, transposed (zero points subtracted)
    wh_t: np.ndarray  # int16 [n_output, 4 * n_cell]: recurrent weights, transposed
    bx: np.ndarray  # int32 [4 * n_cell]: bias - zp_input * rowsum(wx), wrapped like the C++ int32 sums
    bh: np.ndarray  # int32 [4 * n_cell]: -zp_hidden * rowsum(wh)
    x_mult: np.ndarray  # int64 [4]: per gate, input matmul multiplier ...
    x_shift: np.ndarray  # ... and shift
    h_mult: np.ndarray  # int64 [4]: per gate, recurrent matmul multiplier ...
    h_shift: np.ndarray  # ... and shift
    narrow: bool  # every weight in [-127, 127]: the 16-bit pair-sum matvec is exact

    def args(self) -> tuple:
        """The fields in the order the eval functions take them."""
        return (self.wx_t, self.wh_t, self.bx, self.bh, self.x_mult, self.x_shift, self.h_mult, self.h_shift,
                self.narrow)


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((v + 2**31) % 2**32 - 2**31).astype(np.int32)


def fuse_gates(wx: list[np.ndarray], wh: list[np.ndarray], biases: list[np.ndarray], zp_input: int,
               zp_hidden: int, multipliers: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> GateParams:
    """GateParams from per-gate weights (int64, weight zero points already subtracted where the
    flavour subtracts them), biases and the four multiplier/shift rows.

    The input zero point times each weight row is folded into the bias once, so that the eval
    multiplies raw int8 activations: sum w * (x - zp) = sum w * x - zp * sum w.
    """
    wx_all = np.concatenate(wx, axis=0).astype(np.int64)
    wh_all = np.concatenate(wh, axis=0).astype(np.int64)
    b = np.concatenate([np.asarray(v, dtype=np.int64) for v in biases])
    narrow = bool(np.abs(wx_all).max(initial=0) <= 127 and np.abs(wh_all).max(initial=0) <= 127)
    x_mult, x_shift, h_mult, h_shift = (np.asarray(m, dtype=np.int64) for m in multipliers)
    return GateParams(
        wx_t=np.ascontiguousarray(wx_all.T.astype(np.int16)), wh_t=np.ascontiguousarray(wh_all.T.astype(np.int16)),
        bx=_wrap32(b - zp_input * wx_all.sum(axis=1)), bh=_wrap32(-zp_hidden * wh_all.sum(axis=1)),
        x_mult=x_mult, x_shift=x_shift, h_mult=h_mult, h_shift=h_shift, narrow=narrow)


# -- eval -------------------------------------------------------------------------------------------
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
def matvec_acc(w_t, v, acc, narrow):
    """acc += w_t.T @ v (int32, wrapping); `narrow` picks the 16-bit form where it is exact."""
    if narrow:
        _accumulate_pairs16(w_t, v, acc)
    else:
        _accumulate(w_t, v, acc)


@njit(cache=True, nogil=True, inline="always")
def biased_matvec(bias, w_t, v, acc, narrow):
    """acc = bias + w_t.T @ v. The copy is an explicit loop: with a slice assignment (acc[:] = bias)
    the H=16 eval measured 30-40% slower."""
    for r in range(acc.shape[0]):
        acc[r] = bias[r]
    matvec_acc(w_t, v, acc, narrow)


@_jit
def input_gates(x, wx_t, bx, mult, shift, n_cell, narrow, acc, zx):
    """zx[t, r] = sat16(MBQM(bx[r] + sum_k wx[r, k] * x[t, k])) for every timestep at once: the
    input side of the gates does not depend on the recurrence (both interpreters saturate it to
    int16 on its own before adding the recurrent side)."""
    n_t = x.shape[0]
    for t in range(n_t):
        biased_matvec(bx, wx_t, x[t], acc, narrow)
        for g in range(4):
            m = mult[g]
            s = shift[g]
            for j in range(n_cell):
                zx[t, g * n_cell + j] = sat16(mbqm(acc[g * n_cell + j], m, s))
