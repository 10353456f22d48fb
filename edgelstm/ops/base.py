"""What every op kernel looks like, and the registry that maps opcodes to kernels.

A kernel is built once per operator (`__init__` is the *prepare* step: it reads the graph, checks
every shape, dtype and quantization parameter it relies on, and precomputes multipliers and
biases). `run` then does only arithmetic on the arrays it is handed.
"""
from __future__ import annotations

from typing import Callable, ClassVar, Optional, Sequence

import numpy as np

from ..errors import ModelError
from ..tflite_reader import ACTIVATION_NAMES, Graph, Operator, Tensor

FLAVORS = ("tflite",)

_REGISTRY: dict[str, type["OpKernel"]] = {}


def register(*opcodes: str) -> Callable[[type["OpKernel"]], type["OpKernel"]]:
    def deco(cls: type["OpKernel"]) -> type["OpKernel"]:
        for code in opcodes:
            _REGISTRY[code] = cls
        return cls
    return deco


def supported_opcodes() -> list[str]:
    return sorted(_REGISTRY)


def build_kernel(op: Operator, graph: Graph, flavor: str) -> "OpKernel":
    cls = _REGISTRY.get(op.opcode)
    if cls is None:
        raise ModelError(f"{op.describe()}: edgelstm has no kernel for {op.opcode}; supported ops are "
                         + ", ".join(supported_opcodes()))
    return cls(op, graph, flavor)


class OpKernel:
    """Base class of one prepared operator.

    Subclasses implement `prepare()` (validation and precomputation, may raise ModelError) and
    `run(inputs)`, which receives one array per op input (None for an absent optional input) and
    returns one array per op output. Variable tensors (the LSTM's h and c) arrive as the live state
    arrays and are updated in place, as the TFLite interpreter does.
    """

    opcode: ClassVar[str] = ""
    #: inputs that may be absent (-1); any other -1 is a ModelError
    optional_inputs: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, op: Operator, graph: Graph, flavor: str):
        self.op = op
        self.graph = graph
        self.flavor = flavor
        self.prepare()

    # -- helpers for prepare() -------------------------------------------------------------
    def fail(self, msg: str) -> ModelError:
        return ModelError(f"{self.op.describe()}: {msg}")

    def input(self, i: int, required: bool = True) -> Optional[Tensor]:
        if i >= len(self.op.inputs):
            if required:
                raise self.fail(f"needs at least {i + 1} inputs, has {len(self.op.inputs)}")
            return None
        idx = self.op.inputs[i]
        if idx == -1:
            if required:
                raise self.fail(f"input {i} is required but absent")
            return None
        return self.graph.tensors[idx]

    def output(self, i: int = 0) -> Tensor:
        if i >= len(self.op.outputs):
            raise self.fail(f"needs at least {i + 1} outputs, has {len(self.op.outputs)}")
        return self.graph.tensors[self.op.outputs[i]]

    def expect_counts(self, n_in: Sequence[int] | int, n_out: int = 1) -> None:
        allowed = (n_in,) if isinstance(n_in, int) else tuple(n_in)
        if len(self.op.inputs) not in allowed:
            raise self.fail(f"expects {' or '.join(map(str, allowed))} inputs, has {len(self.op.inputs)}")
        if len(self.op.outputs) != n_out:
            raise self.fail(f"expects {n_out} outputs, has {len(self.op.outputs)}")

    def expect_dtype(self, t: Tensor, *dtypes) -> None:
        if t.dtype is None or t.dtype not in [np.dtype(d) for d in dtypes]:
            names = "/".join(np.dtype(d).name for d in dtypes)
            raise self.fail(f"{t.describe()} must be {names}, is {t.type_name}")

    def per_tensor_quant(self, t: Tensor) -> tuple[float, int]:
        """(scale, zero_point) of a per-tensor quantized tensor; the scale is the stored float32."""
        if t.quant is None:
            raise self.fail(f"{t.describe()} has no quantization parameters")
        if not t.quant.per_tensor:
            raise self.fail(f"{t.describe()} must be quantized per tensor, has {t.quant.scale.size} scales")
        return t.quant.s, t.quant.zp

    def constant(self, t: Tensor) -> np.ndarray:
        if t.data is None:
            raise self.fail(f"{t.describe()} must be a constant tensor")
        return t.data

    def activation(self) -> str:
        code = int(self.op.options.get("fused_activation_function", 0))
        return ACTIVATION_NAMES.get(code, f"UNKNOWN_{code}")

    # -- to implement ----------------------------------------------------------------------
    def prepare(self) -> None:  # pragma: no cover - every kernel overrides it
        raise NotImplementedError

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        """Multiply-accumulates one run performs for these inputs (0 for data movement ops)."""
        return 0
