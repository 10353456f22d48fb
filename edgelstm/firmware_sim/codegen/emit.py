"""What every op emitter shares: the kernel call (`Call`), the `static const` definitions of
model.c (`Emitter`), the lowering context of one graph (`Lowering`, the `ctx` every
`lower_<family>(ctx, kernel)` receives), and the C-text and stride helpers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...errors import ModelError
from ...ops import OpKernel
from ...tflite_reader import Graph

MAX_DIMS = 6  # EL_MAX_DIMS in c/el_common.h

#: the C element type of an activation or state tensor
CTYPE = {np.dtype(np.int8): "int8_t", np.dtype(np.int16): "int16_t"}

_CTYPE_RANGE = {"int8_t": (-128, 127), "int16_t": (-32768, 32767), "int32_t": (-(1 << 31), (1 << 31) - 1),
                "uint16_t": (0, 65535)}


@dataclass
class Call:
    """One kernel call of a generated function."""

    code: str  # C statement; {tN} stands for the pointer to tensor N, {scratch} for the op's scratch
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    scratch_bytes: int = 0
    opcode: str = ""


class Emitter:
    """Collects the static const definitions of model.c, with unique names."""

    def __init__(self) -> None:
        self.defs: list[str] = []
        self._names: set[str] = set()
        self._shared: dict[str, str] = {}

    def shared(self, name: str, values: np.ndarray, ctype: str) -> str:
        """An array emitted once however many graphs use it (weights of the run and step graphs)."""
        if name not in self._shared:
            self._shared[name] = self.array(name, values, ctype)
        return self._shared[name]

    def name(self, base: str) -> str:
        n, k = base, 1
        while n in self._names:
            k += 1
            n = f"{base}_{k}"
        self._names.add(n)
        return n

    def array(self, base: str, values: np.ndarray, ctype: str) -> str:
        name = self.name(base)
        flat = np.asarray(values).reshape(-1)
        lo, hi = _CTYPE_RANGE[ctype]
        if flat.size and (int(flat.min()) < lo or int(flat.max()) > hi):
            raise ModelError(f"internal: {name} does not fit {ctype}")
        self.defs.append(f"static const {ctype} {name}[{max(flat.size, 1)}] = {{\n{c_ints(flat)}\n}};")
        return name

    def struct(self, base: str, ctype: str, fields: dict) -> str:
        name = self.name(base)
        body = ",\n".join(f"    .{k} = {c_value(v)}" for k, v in fields.items())
        self.defs.append(f"static const {ctype} {name} = {{\n{body}\n}};")
        return name


class Lowering:
    """The prepared kernels of one graph (the full one, or the one-timestep one) becoming calls:
    what an op emitter reads (shapes, folded constants) and where it puts its call."""

    def __init__(self, em: Emitter, graph: Graph, prefix: str, tag: str, folded: dict[int, np.ndarray]):
        self.em, self.graph, self.prefix, self.tag, self.folded = em, graph, prefix, tag, folded
        self.calls: list[Call] = []

    def shape(self, idx: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.tensors[idx].shape)

    def size(self, idx: int) -> int:
        return int(np.prod(self.shape(idx), dtype=np.int64))

    def check_int8(self, kernel: OpKernel, idxs: Sequence[int]) -> None:
        for i in idxs:
            t = self.graph.tensors[i]
            if t.dtype != np.int8:
                raise kernel.fail(f"{t.describe()} is {t.type_name}; the device library computes in int8 only")

    def add(self, kernel: OpKernel, code: str, reads: Sequence[int], writes: Sequence[int], scratch: int = 0) -> None:
        self.calls.append(Call(code, tuple(reads), tuple(writes), scratch, kernel.op.opcode))

    def base(self, kernel: OpKernel) -> str:
        """The name stem of the op's parameter struct in this graph."""
        return f"{self.tag}op{kernel.op.index}_{kernel.op.opcode.lower()}"

    def shared_array(self, key: str, values: np.ndarray, ctype: str) -> str:
        """Weights and tables: the same values under the same name in both graphs."""
        return self.em.shared(f"{self.prefix}_{key}", values, ctype)


# -- C text ---------------------------------------------------------------------------------------------
def c_ints(flat: np.ndarray, per_line: int = 24) -> str:
    if flat.size == 0:
        return "    0"
    vals = [str(int(v)) for v in flat.tolist()]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "    " + ",\n    ".join(lines)


def c_value(v) -> str:
    """A C initializer: a string as it is, a sequence as a brace list, a number as an integer."""
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, np.ndarray)):
        return "{" + ", ".join(c_value(x) for x in v) + "}"
    iv = int(v)
    if iv == -(1 << 31):
        return "INT32_MIN"
    return str(iv)


def int32_values(kernel: OpKernel, values, what: str) -> np.ndarray:
    """A prepared int64 parameter array, checked to fit the C kernel's int32."""
    a = np.asarray(values, dtype=np.int64).reshape(-1)
    if a.size and (a.min() < -(1 << 31) or a.max() >= 1 << 31):
        raise kernel.fail(f"{what} does not fit int32 (internal)")
    return a


# -- strides --------------------------------------------------------------------------------------------
def contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= int(d)
    return list(reversed(strides))


def compress_dims(shape: list[int], *strides: list[int]) -> tuple[list[int], list[list[int]]]:
    """Drops size-1 dimensions and merges neighbours that are contiguous in every operand."""
    keep = [d for d in range(len(shape)) if shape[d] != 1]
    shape = [shape[d] for d in keep]
    strides_l = [[s[d] for d in keep] for s in strides]
    if not shape:
        return [1], [[1] for _ in strides]
    d = len(shape) - 2
    while d >= 0:
        if all(s[d] == s[d + 1] * shape[d + 1] for s in strides_l):
            shape[d] *= shape[d + 1]
            del shape[d + 1]
            for s in strides_l:
                del s[d]  # the merged dimension steps like the inner one
        d -= 1
    return shape, strides_l


def padded(values: list[int], fill: int = 0) -> list[int]:
    """A per-dimension list filled up to the C struct's MAX_DIMS entries."""
    return values + [fill] * (MAX_DIMS - len(values))
