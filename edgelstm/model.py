"""`Model`: a loaded .tflite graph with prepared kernels, its state, and the ways to run it."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .errors import InputError, ModelError
from .ops.base import OpKernel
from .ops.flavor import Flavor, get_flavor
from .tflite_reader import Graph, Quantization, read_model

ArrayOrList = Union[np.ndarray, list]


@dataclass(frozen=True)
class TensorInfo:
    """What a model input or output looks like (`shape` has -1 where the size is dynamic)."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    quantization: Optional[Quantization]


class Model:
    """A .tflite model prepared for edgelstm's integer kernels.

    Use `edgelstm.load()` to make one. `run` follows the TFLite interpreter exactly, including the
    LSTM state that persists between invocations (h and c live in variable tensors).
    """

    def __init__(self, graph: Graph, flavor: Union[str, Flavor] = "tflite", memory_budget: Optional[int] = None):
        fl = get_flavor(flavor)
        _check_memory_budget(graph, memory_budget)
        graph = fl.prepare_graph(graph)
        self.graph = graph
        #: the flavour's name, and what it decides for the whole graph
        self.flavor = fl.name
        self.policy = fl.policy
        self._kernels: list[OpKernel] = [fl.build(op, graph) for op in graph.operators]
        self._variables = [t.index for t in graph.tensors if t.is_variable]
        for i in self._variables:
            t = graph.tensors[i]
            if t.dtype is None or any(d < 0 for d in t.shape_signature):
                raise ModelError(f"variable {t.describe()} must have a static numeric shape")
        for i in graph.inputs:
            t = graph.tensors[i]
            if t.dtype is None:
                raise ModelError(f"model input {t.describe()} has unsupported type {t.type_name}")
        written = {o for op in graph.operators for o in op.outputs}
        # What every run starts from, indexed by tensor: constants, plus zero-size tensors nobody
        # writes (legal, empty). One extra None at the end, so that index -1 (an absent optional
        # input) reads as None without a test per argument.
        self._static: list[Optional[np.ndarray]] = [None] * (len(graph.tensors) + 1)
        for t in graph.tensors:
            if t.data is not None:
                self._static[t.index] = t.data
            elif t.shape and 0 in t.shape and t.dtype is not None and t.index not in written \
                    and not t.is_variable:
                self._static[t.index] = np.zeros(t.shape, t.dtype)
        self._fills = {}
        for i in self._variables:
            t = graph.tensors[i]
            self._fills[i] = t.quant.zp if (t.quant is not None and t.dtype == np.int8) else 0
        self._in_specs = [self._info(i) for i in graph.inputs]
        self._state = self.fresh_state()

    # -- description --------------------------------------------------------------------------
    def _info(self, idx: int) -> TensorInfo:
        t = self.graph.tensors[idx]
        return TensorInfo(t.name, idx, t.shape_signature, t.dtype, t.quant)

    @property
    def inputs(self) -> list[TensorInfo]:
        return [self._info(i) for i in self.graph.inputs]

    @property
    def outputs(self) -> list[TensorInfo]:
        return [self._info(i) for i in self.graph.outputs]

    @property
    def kernels(self) -> list[OpKernel]:
        """The prepared kernel of every operator, in graph order (what the firmware generator lowers
        to C; each kernel's parameters are its public record)."""
        return list(self._kernels)

    @property
    def ops(self) -> list[str]:
        return [op.opcode for op in self.graph.operators]

    def __repr__(self) -> str:
        ins = ", ".join(f"{i.dtype.name}{list(i.shape)}" for i in self.inputs)
        outs = ", ".join(f"{o.dtype.name}{list(o.shape)}" for o in self.outputs)
        return f"<edgelstm.Model flavor={self.flavor} ops={len(self._kernels)} in=({ins}) out=({outs})>"

    # -- state ----------------------------------------------------------------------------------
    def fresh_state(self) -> dict[int, np.ndarray]:
        """Variable tensors as after the interpreter's reset: int8 at their zero point, others 0."""
        return {i: np.full(self.graph.tensors[i].shape, fill, dtype=self.graph.tensors[i].dtype)
                for i, fill in self._fills.items()}

    def reset(self) -> None:
        """Reset every variable tensor (LSTM h to its zero point, c to 0), as reset_all_variables()."""
        for i, fill in self._fills.items():
            self._state[i].fill(fill)

    # -- running --------------------------------------------------------------------------------
    def check_inputs(self, x: ArrayOrList) -> list[np.ndarray]:
        """The inputs as a list of contiguous arrays; raises InputError naming what does not fit."""
        specs = self._in_specs
        if isinstance(x, np.ndarray):
            xs = [x]
        elif isinstance(x, (list, tuple)) and all(isinstance(a, np.ndarray) for a in x):
            xs = list(x)
        else:
            raise InputError(f"expected a numpy array (or a list of {len(specs)} arrays), got {type(x).__name__}")
        if len(xs) != len(specs):
            raise InputError(f"the model has {len(specs)} inputs, got {len(xs)} arrays")
        out = []
        for a, spec in zip(xs, specs):
            if a.dtype != spec.dtype:
                raise InputError(f"input '{spec.name}' must be {spec.dtype.name}, got {a.dtype.name}")
            if a.ndim != len(spec.shape) or any(s != -1 and s != d for s, d in zip(spec.shape, a.shape)):
                raise InputError(f"input '{spec.name}' must have shape {list(spec.shape)} (-1 = any), "
                                 f"got {list(a.shape)}")
            if a.size == 0:
                raise InputError(f"input '{spec.name}' is empty (shape {list(a.shape)})")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise InputError(f"input '{spec.name}' contains NaN or infinity")
            out.append(np.ascontiguousarray(a))
        return out

    def _execute(self, xs: list[np.ndarray], state: dict[int, np.ndarray], keep_all: bool = False,
                 op_seconds: Optional[np.ndarray] = None) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
        values = self._static.copy()
        for i, a in state.items():
            values[i] = a
        for i, a in zip(self.graph.inputs, xs):
            values[i] = a
        if op_seconds is None:
            for k in self._kernels:
                results = k.run([values[i] for i in k.op.inputs])
                for i, r in zip(k.op.outputs, results):
                    values[i] = r
        else:
            # a separate loop, so that the timer calls cost nothing when nobody profiles
            clock = time.perf_counter
            for j, k in enumerate(self._kernels):
                t0 = clock()
                results = k.run([values[i] for i in k.op.inputs])
                op_seconds[j] += clock() - t0
                for i, r in zip(k.op.outputs, results):
                    values[i] = r
        outs = [values[i].copy() for i in self.graph.outputs]
        if not keep_all:
            return outs, {}
        return outs, {i: v for i, v in enumerate(values[:-1]) if v is not None}

    def run(self, x: ArrayOrList, reset: bool = True) -> Union[np.ndarray, list[np.ndarray]]:
        """Run the model on `x` (the model's input dtype and shape; a list for several inputs).

        State is reset first unless `reset=False`, which continues from the previous call (in a
        flavour whose interpreter keeps no state between invokes, every call starts fresh).
        Returns the output array, or a list of arrays for a multi-output model.
        """
        xs = self.check_inputs(x)
        if reset or not self.policy.state_persists:
            self.reset()
        outs, _ = self._execute(xs, self._state)
        return outs[0] if len(outs) == 1 else outs

    def run_all_tensors(self, x: ArrayOrList, reset: bool = True) -> dict[int, np.ndarray]:
        """Run like `run` and return every tensor's value by index (for locating mismatches)."""
        xs = self.check_inputs(x)
        if reset or not self.policy.state_persists:
            self.reset()
        _, values = self._execute(xs, self._state, keep_all=True)
        return {i: np.array(v) for i, v in values.items()}

    def run_batch(self, xs: Union[np.ndarray, Sequence[ArrayOrList]], workers: Optional[int] = None) -> list:
        """Run many independent sequences (state reset for each), spread over the CPU cores.

        `xs` is a sequence of inputs, each exactly what `run` accepts (a stacked array works:
        its first axis indexes the sequences). Returns a list of outputs in order.
        """
        items = list(xs)
        if not items:
            return []
        checked = [self.check_inputs(x) for x in items]
        n_workers = workers or min(len(items), os.cpu_count() or 1)

        def work(chunk: list[list[np.ndarray]]) -> list:
            res = []
            for x in chunk:
                outs, _ = self._execute(x, self.fresh_state())
                res.append(outs[0] if len(outs) == 1 else outs)
            return res

        if n_workers <= 1:
            return work(checked)
        bounds = np.linspace(0, len(checked), n_workers + 1).astype(int)
        chunks = [checked[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
            parts = list(pool.map(work, chunks))
        return [r for part in parts for r in part]

    def op_times(self, x: ArrayOrList, runs: int = 1) -> np.ndarray:
        """Seconds spent in each operator (graph order), summed over `runs` fresh-state runs of `x`."""
        xs = self.check_inputs(x)
        seconds = np.zeros(len(self._kernels))
        for _ in range(runs):
            self.reset()
            self._execute(xs, self._state, op_seconds=seconds)
        return seconds

    def op_macs(self, x: ArrayOrList) -> list[int]:
        """Exact multiply-accumulate count of each operator (graph order) for one `run(x)`."""
        xs = self.check_inputs(x)
        values = self._static.copy()
        for i, a in list(self.fresh_state().items()) + list(zip(self.graph.inputs, xs)):
            values[i] = a
        counts = []
        for k in self._kernels:
            args = [values[i] for i in k.op.inputs]
            counts.append(int(k.macs(args)))
            for i, r in zip(k.op.outputs, k.run(args)):
                values[i] = r
        return counts

    def macs(self, x: ArrayOrList) -> int:
        """Exact count of the multiply-accumulates one `run(x)` performs."""
        return sum(self.op_macs(x))

DEFAULT_MEMORY_BUDGET = 1 << 30


def _check_memory_budget(graph: Graph, budget: Optional[int]) -> None:
    """Refuse, before anything is allocated, a model whose tensors would need more than `budget`
    bytes (default: EDGELSTM_MEMORY_BUDGET or 1 GiB). The reader caps each tensor at 2^28
    elements, but a hostile file can declare many such tensors; a real LSTM needs kilobytes."""
    if budget is None:
        env = os.environ.get("EDGELSTM_MEMORY_BUDGET")
        try:
            budget = int(float(env)) if env else DEFAULT_MEMORY_BUDGET
        except ValueError:
            raise ModelError(f"EDGELSTM_MEMORY_BUDGET must be a number of bytes, got {env!r}") from None
    planned = 0
    for t in graph.tensors:
        if t.data is None and t.dtype is not None:
            # dynamic dimensions count as 1 here; run-time sizes follow the caller's inputs
            planned += int(np.prod([max(d, 1) for d in t.shape], dtype=np.int64)) * np.dtype(t.dtype).itemsize
    if planned > budget:
        raise ModelError(f"the model's tensors need {planned / 2**20:,.0f} MiB, above the memory budget of "
                         f"{budget / 2**20:,.0f} MiB; if that is intended, raise it with "
                         "edgelstm.load(..., memory_budget=BYTES) or EDGELSTM_MEMORY_BUDGET")


def load(source: Union[str, Path, bytes], flavor: Union[str, Flavor] = "tflite",
         memory_budget: Optional[int] = None) -> Model:
    """Load a .tflite model (path or bytes) and prepare it for edgelstm's kernels.

    flavor="tflite" matches the TFLite/LiteRT interpreter's builtin kernels bit for bit;
    flavor="tflm" matches TFLite Micro's (which runs every tensor at its stored, static size).
    `edgelstm.flavors()` lists every flavour; a `Flavor` object (e.g. one made with
    `Flavor.derive`) is accepted too.
    memory_budget: most bytes the model's tensors may plan (default 1 GiB, or EDGELSTM_MEMORY_BUDGET).
    Raises `edgelstm.ModelError` if the file is malformed, uses something unsupported, or needs
    more memory than the budget.
    """
    fl = get_flavor(flavor)  # an unknown name fails before the file is read
    return Model(read_model(source), fl, memory_budget)
