"""What every op kernel looks like, `register` (which puts a kernel class in a flavour's table,
ops/flavor.py), and the pieces several kernels share.

A kernel is built once per operator (`__init__` is the *prepare* step: it reads the graph, checks
every shape, dtype and quantization parameter it relies on, and precomputes multipliers and
biases). `run` then does only arithmetic on the arrays it is handed.

Shared here, so that no op module imports another: shape and array checks, TFLite's legacy
(scale, zero point) pair, the fused-activation clamp of the int8 kernels
(CalculateActivationRangeQuantized), and the two kernel families with more than one op:
`MovementKernel` (data movement) and `BinaryInt8Kernel` (element-wise int8 ADD / MUL).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from typing import Any, Callable, ClassVar, Optional, Sequence, Union

import numpy as np

from ..errors import ModelError
from ..fixedpoint import round_half_away, wrap32, x86_double_to_int32
from ..tflite_reader import ACTIVATION_NAMES, Graph, Operator, Tensor
from .flavor import TFLITE, Flavor, get_flavor


def register(*opcodes: str, flavor: Flavor = TFLITE) -> Callable[[type["OpKernel"]], type["OpKernel"]]:
    """Class decorator: the kernel of these opcodes in `flavor` (default: LiteRT's, which every
    other built-in flavour falls back to)."""
    return flavor.register(*opcodes)


def supported_opcodes(flavor: Union[str, Flavor] = TFLITE) -> list[str]:
    return get_flavor(flavor).opcodes()


def build_kernel(op: Operator, graph: Graph, flavor: Union[str, Flavor] = TFLITE) -> "OpKernel":
    """The prepared kernel of one operator in a flavour (ModelError naming the op if it cannot run)."""
    return get_flavor(flavor).build(op, graph)


class OpKernel(ABC):
    """Base class of one prepared operator.

    Subclasses implement `prepare()` (validation and precomputation, may raise ModelError) and
    `run(inputs)`, which receives one array per op input (None for an absent optional input) and
    returns one array per op output. Variable tensors (the LSTM's h and c) arrive as the live state
    arrays and are updated in place, as the TFLite interpreter does.
    """

    opcode: ClassVar[str] = ""
    #: inputs that may be absent (-1); any other -1 is a ModelError
    optional_inputs: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, op: Operator, graph: Graph):
        self.op = op
        self.graph = graph
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
    @abstractmethod
    def prepare(self) -> None:
        """Validate the op against the graph and precompute everything that depends on the model."""

    @abstractmethod
    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        """The op's arithmetic: one array per input (None if absent) in, one per output out."""

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        """Multiply-accumulates one run performs for these inputs (0 for data movement ops)."""
        return 0


# -- shapes and run-time arrays ------------------------------------------------------------------
def shape_fits(shape: Sequence[int], signature: Sequence[int]) -> bool:
    """Whether a concrete shape is allowed by a shape signature (-1 = any size)."""
    return len(shape) == len(signature) and all(s == -1 or s == d for s, d in zip(signature, shape))


def signatures_agree(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two shape signatures (-1 = dynamic) can describe the same shape."""
    return len(a) == len(b) and all(x == -1 or y == -1 or x == y for x, y in zip(a, b))


def check_array(kernel: OpKernel, arr: Optional[np.ndarray], t: Tensor) -> np.ndarray:
    """The run-time input `arr` for tensor `t`, after checking its dtype and shape against `t`."""
    if arr is None:
        raise kernel.fail(f"input {t.describe()} was not provided")
    if arr.dtype != t.dtype or not shape_fits(arr.shape, t.shape_signature):
        raise kernel.fail(f"got a {arr.dtype.name}{list(arr.shape)} array for {t.describe()}")
    return arr


def broadcast_signature(a: Sequence[int], b: Sequence[int]) -> Optional[tuple[int, ...]]:
    """numpy-style broadcast of two shape signatures (-1 = dynamic); None if they cannot broadcast.

    A dynamic dimension against 1 stays dynamic; against a fixed size n it can only be n at run time.
    """
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x == y:
            out.append(x)
        elif x == 1 or y == 1:
            out.append(y if x == 1 else x)
        elif x == -1 or y == -1:
            out.append(y if x == -1 else x)
        else:
            return None
    return tuple(out)


def resolve_axes(values: np.ndarray, rank: int) -> Optional[list[int]]:
    """Axis values made non-negative and deduplicated in first-seen order, as TFLite's ResolveAxis;
    None if one is out of range. A rank-0 input ignores its axes, as the reference does."""
    if rank == 0:
        return []
    out: list[int] = []
    for a in (int(v) for v in values.reshape(-1)):
        a = a + rank if a < 0 else a
        if not 0 <= a < rank:
            return None
        if a not in out:
            out.append(a)
    return out


def owned_copy(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy: outputs must never alias inputs, since LSTM state tensors are updated
    in place after they have been read."""
    return np.array(a, order="C", copy=True)


def const_ints(kernel: OpKernel, index: int, what: str, dtypes=(np.int32,), vector: bool = True) -> np.ndarray:
    """A constant integer input as an int64 array (1-D unless vector=False)."""
    t = kernel.input(index)
    kernel.expect_dtype(t, *dtypes)
    if t.data is None:
        raise kernel.fail(f"{what} {t.describe()} must be a constant tensor (computed {what}s are not supported)")
    if vector and len(t.shape) != 1:
        raise kernel.fail(f"{what} {t.describe()} must be a 1-D tensor")
    return np.asarray(t.data, dtype=np.int64).ravel()


# -- quantization -------------------------------------------------------------------------------
def legacy_params(t: Optional[Tensor]) -> tuple[float, int]:
    """A tensor's legacy `params` (scale, zero_point) in LiteRT: its parameters if quantized per
    tensor, else (0, 0) (no quantization, per-channel quantization, or no tensor at all)."""
    if t is None or t.quant is None or not t.quant.per_tensor:
        return 0.0, 0
    return t.quant.s, t.quant.zp


INT8_MIN, INT8_MAX = -128, 127
# Fused activations the int8 kernels implement as a clamp; every kernel here refuses the others.
CLAMP_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
_ACTIVATION_BOUNDS = {"NONE": (None, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0),
                      "RELU_N1_TO_1": (-1.0, 1.0)}


def quantize_bound(real: float, scale: float, zero_point: int) -> tuple[float, int]:
    """How TFLite quantizes an activation bound: `zero_point + static_cast<int32_t>(round(f / s))`
    with `f / s` divided in float32 and std::round (halves away from zero).

    Returns the rounded quotient (for the caller's range check) and the int32 result as x86 computes
    it: a quotient outside int32 (or NaN) casts to INT32_MIN, and the addition wraps around."""
    tmp = float(round_half_away(float(np.float32(real) / np.float32(scale))))
    return tmp, int(wrap32(zero_point + x86_double_to_int32(tmp)))


def activation_range(kernel: OpKernel, scale: float, zero_point: int, *, allow_2_31: bool) -> tuple[int, int]:
    """(act_min, act_max) of the op's fused activation on an int8 output with this scale and zero
    point, as LiteRT's CalculateActivationRangeQuantized: each real bound goes through
    `quantize_bound` and is intersected with [-128, 127]. Activations other than NONE, RELU, RELU6
    and RELU_N1_TO_1 are refused.

    LiteRT refuses a bound whose rounded quotient lies outside int32, but it compares with
    float(INT32_MAX), which is 2^31 itself, so a quotient of exactly 2^31 passes and is then cast
    to int32 (undefined in C++; INT32_MIN on x86). `allow_2_31` chooses what happens to it:
    True reproduces the x86 cast (the FULLY_CONNECTED and convolution kernels); False refuses the
    model like any other out-of-range bound (ADD, MUL and the pooling kernels, which never accepted
    it). That is the only difference. In particular the zero point addition never wraps when 2^31
    is refused: with an int8 zero point only a quotient of -2^31 could wrap, and that is
    RELU_N1_TO_1's -1 bound, whose +1 bound is then exactly 2^31.

    lo > hi is possible for absurd scales; the kernels then clamp max-then-min as LiteRT does.
    """
    act = kernel.activation()
    if act not in CLAMP_ACTIVATIONS:
        raise kernel.fail(f"fused activation {act} is not supported (only {', '.join(CLAMP_ACTIVATIONS)})")
    top = 2147483648.0

    def quantize(real: float) -> int:
        tmp, q = quantize_bound(real, scale, zero_point)
        # false for NaN, and for an infinite quotient (a bound beyond float32 at a tiny scale)
        if not (tmp >= -2147483648.0 and (tmp <= top if allow_2_31 else tmp < top)):
            raise kernel.fail(f"activation {act} bound {real} does not fit int32 at output scale {scale}")
        return q

    lo_real, hi_real = _ACTIVATION_BOUNDS[act]
    lo = INT8_MIN if lo_real is None else max(INT8_MIN, quantize(lo_real))
    hi = INT8_MAX if hi_real is None else min(INT8_MAX, quantize(hi_real))
    return lo, hi


# -- kernel families ------------------------------------------------------------------------------
# Movement is a byte copy, so any fixed-size numeric type is exact; these are the ones LiteRT's
# movement kernels accept and edgelstm graphs can carry (int8 activations, int32 shape tensors).
MOVABLE_DTYPES = (np.int8, np.uint8, np.int16, np.int32, np.int64, np.float32, np.bool_)

# A dynamic time axis can take many lengths; keep the per-shape plan cache bounded.
_MAX_CACHED_PLANS = 64


class MovementKernel(OpKernel):
    """Shared prepare/run logic of the data-movement ops (RESHAPE, SQUEEZE, EXPAND_DIMS, TRANSPOSE,
    REVERSE_V2, STRIDED_SLICE, SLICE).

    Subclasses read their constant inputs and options in `prepare_args()` (checks that depend only
    on the input rank belong there), and implement `make_plan(shape, *args)` -> (output shape,
    plan), raising ValueError for an input shape they cannot handle, and `move(x, out_shape, plan)`.
    `args` is what `runtime_args(inputs)` extracts from non-constant inputs (nothing by default);
    plans are cached per (input shape, args).
    """

    n_inputs: ClassVar[Sequence[int]] = (1,)
    max_rank: ClassVar[Optional[int]] = None
    #: whose limit max_rank is, when it is not LiteRT's (for the message)
    rank_limit_of: ClassVar[str] = ""
    #: set by prepare_args() when the plan depends on runtime values, not only on the input shape
    needs_runtime_args: bool = False

    def prepare(self) -> None:
        self.expect_counts(self.n_inputs)
        self.x, self.y = self.input(0), self.output(0)
        self.expect_dtype(self.x, *MOVABLE_DTYPES)
        if self.y.dtype != self.x.dtype:
            raise self.fail(f"output {self.y.describe()} must have the input's type {self.x.type_name}")
        self.rank = len(self.x.shape_signature)
        if self.max_rank is not None and self.rank > self.max_rank:
            who = f"{self.rank_limit_of} " if self.rank_limit_of else ""
            raise self.fail(f"{who}supports inputs of rank up to {self.max_rank}, {self.x.describe()} has rank "
                            f"{self.rank}")
        self._plans: dict[tuple, tuple[tuple[int, ...], Any]] = {}
        self.prepare_args()
        if -1 not in self.x.shape_signature and not self.needs_runtime_args:
            self.plan_for(self.x.shape)

    def prepare_args(self) -> None:
        pass

    def runtime_args(self, inputs: list[Optional[np.ndarray]]) -> tuple:
        return ()

    @abstractmethod
    def make_plan(self, shape: tuple[int, ...], *args) -> tuple[tuple[int, ...], Any]:
        """(output shape, whatever `move` needs) for an input shape; raises if it does not fit."""

    @abstractmethod
    def move(self, x: np.ndarray, out_shape: tuple[int, ...], plan: Any) -> np.ndarray:
        """The data movement itself, into a new array that does not share memory with x."""

    def plan_for(self, shape: tuple[int, ...], args: tuple = ()) -> tuple[tuple[int, ...], Any]:
        shape = tuple(int(d) for d in shape)
        key = (shape, args)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        try:
            out_shape, plan = self.make_plan(shape, *args)
        except ValueError as exc:
            raise self.fail(f"{exc} (input shape {list(shape)})") from None
        sig = self.y.shape_signature
        if not shape_fits(out_shape, sig):
            raise self.fail(f"computes output shape {list(out_shape)} from input shape {list(shape)}, but "
                            f"{self.y.describe()} declares {list(sig)}")
        if len(self._plans) >= _MAX_CACHED_PLANS:
            self._plans.clear()
        self._plans[key] = (out_shape, plan)
        return out_shape, plan

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        sig = self.x.shape_signature
        if x.dtype != self.x.dtype or not shape_fits(x.shape, sig):
            raise self.fail(f"got a {x.dtype.name}{list(x.shape)} input, but {self.x.describe()} is declared")
        out_shape, plan = self.plan_for(x.shape, self.runtime_args(inputs))
        return [self.move(x, out_shape, plan)]


# LiteRT's broadcasting loop (BroadcastBinaryOpSimple) CHECK-fails above this rank.
MAX_BROADCAST_RANK = 8


class BinaryInt8Kernel(OpKernel):
    """Two int8 per-tensor-quantized inputs broadcast against each other, one int8 output, a fused
    RELU/RELU6/RELU_N1_TO_1 clamp (the base of ADD and MUL).

    Broadcasting follows numpy's rules, as LiteRT's CalculateShapeForBroadcast does; since the ops
    are element-wise, broadcasting the operands up front gives the same values as LiteRT's strided
    loops. Subclasses implement `prepare_math()` (multipliers, from self.qa/self.qb/self.qy) and
    `compute(a, b, out)` on flat contiguous arrays of equal length.
    """

    def prepare(self) -> None:
        self.expect_counts(2, 1)
        self.a, self.b, self.y = self.input(0), self.input(1), self.output(0)
        for t in (self.a, self.b, self.y):
            self.expect_dtype(t, np.int8)
        self.qa = self.per_tensor_quant(self.a)
        self.qb = self.per_tensor_quant(self.b)
        self.qy = self.per_tensor_quant(self.y)
        sa, sb = self.a.shape_signature, self.b.shape_signature
        out_sig = broadcast_signature(sa, sb)
        if out_sig is None:
            raise self.fail(f"input shapes {list(sa)} and {list(sb)} do not broadcast")
        if tuple(sa) != tuple(sb) and len(out_sig) > MAX_BROADCAST_RANK:
            raise self.fail(f"broadcasting supports rank <= {MAX_BROADCAST_RANK}, got rank {len(out_sig)}")
        ys = self.y.shape_signature
        if not signatures_agree(out_sig, ys):
            raise self.fail(f"inputs broadcast to {list(out_sig)}, but {self.y.describe()} is declared")
        self.act_min, self.act_max = activation_range(self, *self.qy, allow_2_31=False)
        self.prepare_math()

    @abstractmethod
    def prepare_math(self) -> None:
        """Multipliers and shifts of the op's requantization."""

    @abstractmethod
    def compute(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        """out = op(a, b) on broadcast-compatible int8 arrays."""

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        a = check_array(self, inputs[0], self.a)
        b = check_array(self, inputs[1], self.b)
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise self.fail(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
        if not shape_fits(shape, self.y.shape_signature):
            raise self.fail(f"inputs broadcast to {list(shape)}, but {self.y.describe()} is declared")
        fa = np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1)
        fb = np.ascontiguousarray(np.broadcast_to(b, shape)).reshape(-1)
        out = np.empty(shape, dtype=np.int8)
        self.compute(fa, fb, out.reshape(-1))
        return [out]
