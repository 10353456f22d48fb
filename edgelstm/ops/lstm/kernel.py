"""What every flavour's UNIDIRECTIONAL_SEQUENCE_LSTM kernel shares: the structural checks of the op
(tensor indices from edgelstm/lstm_shared.py), the call into the flavour's Numba eval, time-major
handling and the MAC count.

A flavour's kernel subclasses `LSTMKernel` and supplies two things:
- `prepare_record()`: the model-dependent parameters as a named record (`LSTMRecord`: gates,
  activations, cell, hidden), computed once;
- `EVAL`: a Numba function `EVAL(xb, h, c, out, *record.args())` over batch-major input, built from
  small step functions (gate pre-activations, activations, cell update, hidden update).

`with_steps(EVAL, update_hidden=...)` rebuilds an eval with some step functions replaced, so a new
flavour can change one stage without copying the others.
"""
from __future__ import annotations

import types
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Optional

import numpy as np
from numba import njit

from ... import lstm_shared as ls
from ...errors import InputError
from ...tflite_reader import Tensor
from ..base import OpKernel
from .matmul import GateParams


@dataclass(frozen=True)
class ActivationTables:
    """Gate activations as 65,536-entry tables over the int16 Q3.12 pre-activation (index v + 32768)."""

    sigmoid: np.ndarray  # int16: input, forget and output gates, Q0.15
    tanh: np.ndarray  # int16: the cell gate, Q0.15

    def args(self) -> tuple:
        return (self.sigmoid, self.tanh)


#: decorator of an eval's step functions. Not inline="always": Numba's IR-level inlining made the
#: H=16 eval 25% slower than calling the compiled steps (measured), which costs next to nothing
#: as long as a step neither slices nor assigns slices (both cost reference counting per call).
step = njit(cache=True, nogil=True)


@step
def activate(i, f, g, o, sigmoid, tanh):
    """The gate activation step of every flavour (the tables differ), in place on the gate rows:
    sigmoid on the input, forget and output gates, tanh on the cell gate, Q3.12 -> Q0.15."""
    for j in range(i.shape[0]):
        i[j] = sigmoid[i[j] + 32768]
        f[j] = sigmoid[f[j] + 32768]
        g[j] = tanh[g[j] + 32768]
        o[j] = sigmoid[o[j] + 32768]


@dataclass(frozen=True)
class LSTMRecord:
    """Everything a flavour's eval needs, by part (as TFLite Micro's OpDataLSTM): the gate matmuls,
    the activations, the cell-state update and the hidden-state update. `cell` and `hidden` are the
    flavour's own records, since that is where the interpreters differ."""

    gates: GateParams
    activations: ActivationTables
    cell: Any
    hidden: Any

    def args(self) -> tuple:
        """Flat arrays and scalars, in the eval's argument order."""
        return self.gates.args() + self.activations.args() + self.cell.args() + self.hidden.args()


@dataclass(frozen=True)
class LSTMTensors:
    """The op's tensors, validated: per-gate lists in the order i, f, c, o."""

    x: Tensor
    wx: list[Tensor]
    wh: list[Tensor]
    bias: list[Tensor]
    h: Tensor
    c: Tensor
    out: Tensor


class LSTMKernel(OpKernel):
    """UNIDIRECTIONAL_SEQUENCE_LSTM, full-integer 8x8_16 path; subclasses are one flavour each.

    Public after prepare: `record` (the flavour's LSTMRecord), `tensors` (LSTMTensors), the sizes
    `n_in` (features per step), `n_cell` (units), `n_out` (= n_cell without projection), `n_batch`
    (the state's batch) and `time_major` (input is [T, B, F] rather than [B, T, F])."""

    opcode = ls.OPCODE
    #: the flavour's eval; a staticmethod, so that class access returns the Numba function itself
    EVAL: ClassVar[Callable]

    n_in: int
    n_cell: int
    n_out: int
    n_batch: int
    time_major: bool

    def prepare(self) -> None:
        self.tensors = self._validate()
        self.record = self.prepare_record(self.tensors)

    @abstractmethod
    def prepare_record(self, t: LSTMTensors) -> LSTMRecord:
        """The flavour's parameter record for a structurally valid op."""

    # -- structure, the same for every flavour ---------------------------------------------------
    def _validate(self) -> LSTMTensors:
        op = self.op
        if len(op.inputs) not in (ls.N_INPUTS_WITHOUT_LAYER_NORM, ls.N_INPUTS):
            raise self.fail(f"expects {ls.N_INPUTS_WITHOUT_LAYER_NORM} or {ls.N_INPUTS} inputs, has {len(op.inputs)}")
        if len(op.outputs) != 1:
            raise self.fail(f"expects 1 output, has {len(op.outputs)}")
        x = self.input(ls.INPUT)
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

        wx = [self.input(i) for i in ls.INPUT_WEIGHTS]
        wh = [self.input(i) for i in ls.RECURRENT_WEIGHTS]
        bias = [self.input(i) for i in ls.GATE_BIASES]
        h_t, c_t = self.input(ls.OUTPUT_STATE), self.input(ls.CELL_STATE)
        for t in wx + wh:
            self.expect_dtype(t, np.int8)
            self.constant(t)
            self.per_tensor_quant(t)
        self.n_cell = wx[0].shape[0] if len(wx[0].shape) == 2 else -1
        self.n_out = wh[0].shape[1] if len(wh[0].shape) == 2 else -1
        for g, t in zip(ls.GATES, wx):
            if t.shape != (self.n_cell, self.n_in):
                raise self.fail(f"input weights of gate {g} must be [{self.n_cell}, {self.n_in}], are {list(t.shape)}")
        for g, t in zip(ls.GATES, wh):
            if t.shape != (self.n_cell, self.n_out):
                raise self.fail(f"recurrent weights of gate {g} must be [{self.n_cell}, {self.n_out}], "
                                f"are {list(t.shape)}")
        if self.n_out != self.n_cell:
            raise self.fail("without projection the output size must equal the cell count")
        for g, t in zip(ls.GATES, bias):
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
        return LSTMTensors(x, wx, wh, bias, h_t, c_t, out_t)

    def _refuse_variants(self) -> None:
        """CIFG, peephole, projection and layer norm change the arithmetic; we only run what we test."""
        variants = ls.variants(self.op.inputs)
        if variants:  # named first: a CIFG op also lacks the input gate's other tensors
            raise self.fail("LSTM variant not supported by edgelstm: " + ", ".join(variants)
                            + " (Keras LSTMs convert without any of these)")
        for i in ls.INPUT_WEIGHTS + ls.RECURRENT_WEIGHTS + ls.GATE_BIASES + (ls.OUTPUT_STATE, ls.CELL_STATE):
            if not ls.present(self.op.inputs, i):
                raise self.fail(f"required input {i} is absent")

    # -- eval ----------------------------------------------------------------------------------
    def _shape_checks(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> None:
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise InputError(f"{self.op.describe()}: input must be [.., .., {self.n_in}], got {list(x.shape)}")
        batch = x.shape[1] if self.time_major else x.shape[0]
        if batch != h.shape[0] or h.shape != (self.n_batch, self.n_out) or c.shape != (self.n_batch, self.n_cell):
            raise InputError(f"{self.op.describe()}: input batch {batch} does not match the state batch "
                             f"{self.n_batch}")

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x, h, c = inputs[ls.INPUT], inputs[ls.OUTPUT_STATE], inputs[ls.CELL_STATE]
        self._shape_checks(x, h, c)
        xb = np.ascontiguousarray(x.transpose(1, 0, 2)) if self.time_major else x
        out = np.empty((xb.shape[0], xb.shape[1], self.n_out), dtype=np.int8)
        self.EVAL(xb, h, c, out, *self._args)
        if self.time_major:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        return [out]

    @property
    def record(self) -> LSTMRecord:
        return self._record

    @record.setter
    def record(self, value: LSTMRecord) -> None:
        # the flat arguments are built once: a call then costs Numba's dispatch and nothing more
        self._record = value
        self._args = value.args()

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        x = inputs[ls.INPUT]
        steps = x.shape[0] * x.shape[1]
        return steps * 4 * self.n_cell * (self.n_in + self.n_out)


def with_steps(eval_fn: Callable, **steps: Callable) -> Callable:
    """A copy of a flavour's Numba eval in which the named step functions (global names the eval
    calls, e.g. update_hidden) are replaced by others. Not cached on disk: the built-in evals are."""
    py = eval_fn.py_func
    unknown = sorted(set(steps) - set(py.__code__.co_names))
    if unknown:
        raise ValueError(f"{py.__name__} calls no step named {', '.join(unknown)}; its names are "
                         + ", ".join(n for n in py.__code__.co_names if n in py.__globals__
                                     and callable(py.__globals__[n])))
    namespace = dict(py.__globals__)
    namespace.update(steps)
    fn = types.FunctionType(py.__code__, namespace, py.__name__, py.__defaults__, py.__closure__)
    return njit(nogil=True)(fn)
