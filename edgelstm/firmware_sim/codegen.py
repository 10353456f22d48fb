"""The standalone C99 int8 inference library generated for one model.

Nothing is re-derived here: every operator is first prepared by edgelstm's own tflm-flavour kernel
(`edgelstm.load(..., flavor="tflm")`), and its parameter record (multipliers, shifts, folded
biases, 256-entry tables, geometry) is written out as `static const` C data next to a call of the
hand-written C kernel of the op family (c/el_*.c, which mirror the Python eval functions). The
movement ops are run once on an index ramp ("iota") through the Python kernel itself, and the
resulting source-index map is fitted to a strided copy, so their C version cannot disagree with
the Python one about which element goes where.

The generated library has no malloc and no floating point: activations live in one static arena
whose layout a lifetime-based planner fixes at generation time, the LSTM state in static arrays
(reset = TFLite Micro's reset: int8 state at its zero point, int16 at 0), and the weights in
flash. It is int8 in and int8 out: a float-I/O model's boundary QUANTIZE / DEQUANTIZE ops are
left to the caller (the header states the scales), and the firmware command applies them on the
host with the tflm flavour's own kernels.

Entry points (prefix `model_`): `model_reset()`, `model_run(in, out)` for a whole sequence (state
carried on, like TFLite Micro's Invoke), and, when the graph allows it, `model_step(x_t, y_t)`,
one timestep of the same computation for sensor streams.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from .. import fixedpoint as fp
from .. import lstm_shared as ls
from ..errors import ModelError
from ..model import Model
from ..ops import build_kernel
from ..ops.activations import Int8TableKernel
from ..ops.add import Add
from ..ops.base import MovementKernel, OpKernel
from ..ops.concatenation import Concatenation
from ..ops.conv import ConvKernel
from ..ops.fully_connected import FullyConnected
from ..ops.lstm import LSTMKernel, TFLMLSTM
from ..ops.mul import Mul
from ..ops.pooling import Pool2D, pool_geometry
from ..ops.quantize import Dequantize, Quantize
from ..ops.reduce import Reduce
from ..ops.softmax import Softmax
from ..tflite_reader import Graph

MAX_DIMS = 6  # EL_MAX_DIMS in c/el_common.h
SOFTMAX_MAX_DEPTH = 511  # the Q12.19 sum of exps stays below 2^28 (the reference aborts there)

#: the C sources every generated library compiles, per op family
KERNEL_SOURCES = ("el_lstm.c", "el_fc.c", "el_move.c", "el_table.c", "el_binary.c", "el_conv.c",
                  "el_pool.c", "el_reduce.c", "el_softmax.c", "el_requant.c")


# -- what the generator produces ----------------------------------------------------------------------
@dataclass
class IOSpec:
    """One side of the library's interface: the int8 tensor it reads or writes."""

    tensor: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    boundary_op: Optional[int] = None  # the float QUANTIZE / DEQUANTIZE op left to the caller

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class StepInfo:
    """How `model_step` relates to `model_run`."""

    available: bool
    reason: str = ""
    time_steps: int = 0
    input_time_axis: int = -1
    output_time_axes: list = field(default_factory=list)  # per output; None: no time axis (a last-step head)
    input_shape: tuple[int, ...] = ()
    output_shapes: list = field(default_factory=list)


@dataclass
class GeneratedLibrary:
    files: dict[str, str]  # file name -> text (model.c, model.h)
    inputs: list[IOSpec]
    outputs: list[IOSpec]
    step: StepInfo
    arena_bytes: int
    state_bytes: int
    ops: list[str]  # opcode per emitted call, graph order (model_run)
    kernels: list[str] = field(default_factory=list)  # C kernel families used


# -- lowering: one C call per op ------------------------------------------------------------------------
@dataclass
class _Call:
    code: str  # C statement; {tN} stands for the pointer to tensor N, {scratch} for the op's scratch
    reads: tuple[int, ...]
    writes: tuple[int, ...]
    scratch_bytes: int = 0
    opcode: str = ""


class _Emitter:
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
        self.defs.append(f"static const {ctype} {name}[{max(flat.size, 1)}] = {{\n{_c_ints(flat)}\n}};")
        return name

    def struct(self, base: str, ctype: str, fields: dict) -> str:
        name = self.name(base)
        body = ",\n".join(f"    .{k} = {_c_value(v)}" for k, v in fields.items())
        self.defs.append(f"static const {ctype} {name} = {{\n{body}\n}};")
        return name


_CTYPE_RANGE = {"int8_t": (-128, 127), "int16_t": (-32768, 32767), "int32_t": (-(1 << 31), (1 << 31) - 1),
                "uint16_t": (0, 65535)}


def _c_ints(flat: np.ndarray, per_line: int = 24) -> str:
    if flat.size == 0:
        return "    0"
    vals = [str(int(v)) for v in flat.tolist()]
    lines = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return "    " + ",\n    ".join(lines)


def _c_value(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (list, tuple, np.ndarray)):
        return "{" + ", ".join(_c_value(x) for x in v) + "}"
    iv = int(v)
    if iv == -(1 << 31):
        return "INT32_MIN"
    return str(iv)


def _int32(kernel: OpKernel, values, what: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.int64).reshape(-1)
    if a.size and (a.min() < -(1 << 31) or a.max() >= 1 << 31):
        raise kernel.fail(f"{what} does not fit int32 (internal)")
    return a


def _contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= int(d)
    return list(reversed(strides))


def _compress(shape: list[int], *strides: list[int]) -> tuple[list[int], list[list[int]]]:
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


def fit_strided_map(src_map: np.ndarray) -> Optional[tuple[int, list[int], list[int]]]:
    """(offset, per-dimension source strides, output shape) such that
    src_map[i] = offset + sum_d i_d * stride_d for every output index, or None."""
    shape = list(src_map.shape)
    if src_map.size == 0:
        return None
    if src_map.ndim == 0:
        return int(src_map), [1], [1]
    offset = int(src_map[(0,) * src_map.ndim])
    strides = []
    for d in range(src_map.ndim):
        if shape[d] > 1:
            idx = [0] * src_map.ndim
            idx[d] = 1
            strides.append(int(src_map[tuple(idx)]) - offset)
        else:
            strides.append(0)
    grids = np.indices(shape, dtype=np.int64)
    predicted = offset + sum(g * s for g, s in zip(grids, strides))
    if not np.array_equal(predicted, src_map):
        return None
    return offset, strides, shape


def _copy_params(em: _Emitter, kernel: OpKernel, src_map: np.ndarray, dst_strides: Optional[list[int]] = None,
                 dst_offset: int = 0, base: str = "copy") -> str:
    fitted = fit_strided_map(src_map)
    if fitted is None:
        raise kernel.fail("its element mapping is not a strided copy; not supported on the device")
    offset, src_strides, shape = fitted
    if dst_strides is None:
        dst_strides = _contiguous_strides(shape) if src_map.ndim else [1]
    shape, (src_s, dst_s) = _compress(list(shape), list(src_strides), list(dst_strides))
    if len(shape) > MAX_DIMS:
        raise kernel.fail(f"moves data across {len(shape)} dimensions; the device kernel handles {MAX_DIMS}")
    pad = MAX_DIMS - len(shape)
    return em.struct(base, "el_copy_params", {
        "ndim": len(shape), "shape": shape + [0] * pad, "src_stride": src_s + [0] * pad,
        "dst_stride": dst_s + [0] * pad, "src_offset": offset, "dst_offset": dst_offset})


def _movement_map(kernel: MovementKernel, in_shape: tuple[int, ...], folded: dict[int, np.ndarray]) -> np.ndarray:
    """Where each output element of the movement op comes from (flat input index): the Python
    kernel itself moves an index ramp. A shape computed in the graph must have been folded."""
    args: tuple = ()
    if kernel.needs_runtime_args:
        if any(i >= 0 and i not in folded and kernel.graph.tensors[i].data is None for i in kernel.op.inputs[1:]):
            raise kernel.fail("its shape is computed at run time from data; the device library needs static shapes")
        args = kernel.runtime_args([None if i < 0 else folded.get(i, kernel.graph.tensors[i].data)
                                    for i in kernel.op.inputs])
    out_shape, plan = kernel.plan_for(in_shape, args)
    iota = np.arange(int(np.prod(in_shape, dtype=np.int64)), dtype=np.int64).reshape(in_shape)
    src = np.asarray(kernel.move(iota, out_shape, plan))
    return src.reshape(out_shape)


class _Lowering:
    """Turns the prepared kernels of one graph (the full one, or the one-timestep one) into calls."""

    def __init__(self, em: _Emitter, graph: Graph, prefix: str, tag: str, folded: dict[int, np.ndarray]):
        self.em, self.graph, self.prefix, self.tag, self.folded = em, graph, prefix, tag, folded
        self.calls: list[_Call] = []

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
        self.calls.append(_Call(code, tuple(reads), tuple(writes), scratch, kernel.op.opcode))

    def base(self, kernel: OpKernel) -> str:
        return f"{self.tag}op{kernel.op.index}_{kernel.op.opcode.lower()}"

    # -- per op family ------------------------------------------------------------------------------
    def lower(self, kernel: OpKernel, movement_override: Optional[np.ndarray] = None) -> None:
        op = kernel.op
        if isinstance(kernel, TFLMLSTM):
            return self.lstm(kernel)
        if isinstance(kernel, FullyConnected):
            return self.fully_connected(kernel)
        if isinstance(kernel, MovementKernel):
            return self.movement(kernel, movement_override)
        if isinstance(kernel, Concatenation):
            return self.concatenation(kernel)
        if isinstance(kernel, Int8TableKernel):
            return self.table(kernel)
        if isinstance(kernel, (Add, Mul)):
            return self.binary(kernel)
        if isinstance(kernel, ConvKernel):
            return self.conv(kernel)
        if isinstance(kernel, Pool2D):
            return self.pool(kernel)
        if isinstance(kernel, Reduce):
            return self.reduce(kernel)
        if isinstance(kernel, Softmax):
            return self.softmax(kernel)
        if isinstance(kernel, Quantize) and not kernel.from_float:
            return self.requantize(kernel)
        if isinstance(kernel, (Quantize, Dequantize)):
            raise kernel.fail("converts between float and int8 inside the graph; the device library has no "
                              "floating point (only a QUANTIZE right after the model input and a DEQUANTIZE "
                              "right before its output are supported, and left to the caller)")
        raise kernel.fail(f"the firmware generator has no C kernel for {op.opcode} yet")

    def lstm(self, k: TFLMLSTM) -> None:
        rec = k.record
        gp, cell, hid = rec.gates, rec.cell, rec.hidden
        op = k.op
        x_i, h_i, c_i, y_i = op.inputs[ls.INPUT], op.inputs[ls.OUTPUT_STATE], op.inputs[ls.CELL_STATE], op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        # The C kernel evaluates TFLM's interpolated sigmoid/tanh directly instead of 65,536-entry
        # tables; check that the record's tables are exactly those functions.
        tanh_mult, tanh_shift = hid.tanh_c_mult, hid.tanh_c_shift
        if not (np.array_equal(rec.activations.sigmoid, fp.lut_table("logistic"))
                and np.array_equal(rec.activations.tanh, fp.lut_table("tanh"))
                and np.array_equal(hid.tanh_c, fp.lut_table("tanh", tanh_mult, tanh_shift))):
            raise k.fail("internal: the LSTM's activation tables are not TFLite Micro's interpolated ones")
        wx = np.ascontiguousarray(gp.wx_t.T)  # [4 * n_cell, n_in]: one dot product per gate row
        wh = np.ascontiguousarray(gp.wh_t.T)
        wide = not all(a.size == 0 or (a.min() >= -128 and a.max() <= 127) for a in (wx, wh))
        wtype = "int16_t" if wide else "int8_t"
        base = self.base(k)
        # weights are shared with the one-timestep graph: same values, same names
        wx_n = self.shared_array(f"op{op.index}_wx", wx, wtype)
        wh_n = self.shared_array(f"op{op.index}_wh", wh, wtype)
        bx_n = self.shared_array(f"op{op.index}_bx", gp.bx, "int32_t")
        bh_n = self.shared_array(f"op{op.index}_bh", gp.bh, "int32_t")
        x_shape = self.shape(x_i)
        n_steps = x_shape[0] if k.time_major else x_shape[1]
        fields = {
            "n_batch": k.n_batch, "n_steps": n_steps, "n_in": k.n_in, "n_cell": k.n_cell,
            "time_major": int(k.time_major), "wide_weights": int(wide), "wx": wx_n, "wh": wh_n,
            "bx": bx_n, "bh": bh_n, "mx": gp.x_mult, "sx": gp.x_shift, "mh": gp.h_mult, "sh": gp.h_shift,
            "fc_m": cell.fc_mult, "fc_s": cell.fc_shift, "ig_m": cell.ig_mult, "ig_s": cell.ig_shift,
            "cell_clip": cell.clip, "hid_m": hid.mult, "hid_s": hid.shift, "hid_zp": hid.zp,
            "tanh_c_mult": tanh_mult, "tanh_c_shift": tanh_shift,
        }
        ps = self.em.struct(base, "el_lstm_params", fields)
        self.add(k, f"el_lstm(&{ps}, {{t{x_i}}}, {{t{h_i}}}, {{t{c_i}}}, {{t{y_i}}}, (int16_t *){{scratch}});",
                 (x_i, h_i, c_i), (y_i,), scratch=4 * k.n_cell * 2)

    def shared_array(self, key: str, values: np.ndarray, ctype: str) -> str:
        return self.em.shared(f"{self.prefix}_{key}", values, ctype)

    def fully_connected(self, k: FullyConnected) -> None:
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        _, rows = k.output_shape(self.shape(x_i))
        w = np.asarray(k.w, dtype=np.int64)
        wide = bool(w.min(initial=0) < -128 or w.max(initial=0) > 127)
        wtype = "int16_t" if wide else "int8_t"
        idx = k.op.index
        ps = self.em.struct(self.base(k), "el_fc_params", {
            "rows": rows, "units": k.units, "depth": k.depth, "wide_weights": int(wide),
            "w": self.shared_array(f"op{idx}_w", w, wtype),
            "bias": self.shared_array(f"op{idx}_bias", _int32(k, k.bias, "bias"), "int32_t"),
            "mult": self.shared_array(f"op{idx}_mult", _int32(k, k.mult, "multiplier"), "int32_t"),
            "shift": self.shared_array(f"op{idx}_shift", _int32(k, k.shift, "shift"), "int32_t"),
            "out_zp": k.out_zp, "act_min": k.act_min, "act_max": k.act_max})
        self.add(k, f"el_fc(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))

    def movement(self, k: MovementKernel, override: Optional[np.ndarray]) -> None:
        self.check_int8(k, (k.op.inputs[0], k.op.outputs[0]))
        src = override if override is not None else _movement_map(k, self.shape(k.op.inputs[0]), self.folded)
        self.copy(k, src)

    def copy(self, k: OpKernel, src: np.ndarray) -> None:
        """A movement op as the strided copy that `src` (flat input index per output element) describes."""
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        if tuple(src.shape) != self.shape(y_i):
            raise k.fail(f"internal: movement maps to {list(src.shape)}, output is {list(self.shape(y_i))}")
        if src.size == 0:
            return
        ps = _copy_params(self.em, k, src, base=self.base(k))
        self.add(k, f"el_copy(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))

    def concatenation(self, k: Concatenation) -> None:
        y_i = k.op.outputs[0]
        ins = list(k.op.inputs)
        self.check_int8(k, ins + [y_i])
        out_shape = self.shape(y_i)
        out_strides = _contiguous_strides(out_shape)
        pos = 0
        for j, x_i in enumerate(ins):
            shape = self.shape(x_i)
            n = int(np.prod(shape, dtype=np.int64))
            if n:
                src = np.arange(n, dtype=np.int64).reshape(shape)
                ps = _copy_params(self.em, k, src, dst_strides=list(out_strides), dst_offset=pos * out_strides[k.axis],
                                  base=f"{self.base(k)}_in{j}")
                self.add(k, f"el_copy(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))
            pos += shape[k.axis]

    def table(self, k: Int8TableKernel) -> None:
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        t = self.shared_array(f"op{k.op.index}_table", np.asarray(k.table, dtype=np.int64), "int8_t")
        self.add(k, f"el_table({t}, {{t{x_i}}}, {{t{y_i}}}, {self.size(y_i)});", (x_i,), (y_i,))

    def binary(self, k) -> None:
        a_i, b_i, y_i = k.op.inputs[0], k.op.inputs[1], k.op.outputs[0]
        self.check_int8(k, (a_i, b_i, y_i))
        sa, sb, sy = self.shape(a_i), self.shape(b_i), self.shape(y_i)
        out = tuple(np.broadcast_shapes(sa, sb))
        if out != sy:
            raise k.fail(f"inputs broadcast to {list(out)}, output is {list(sy)}")

        def strides(s):
            s = (1,) * (len(out) - len(s)) + tuple(s)
            cs = _contiguous_strides(s)
            return [cs[d] if s[d] == out[d] else 0 for d in range(len(out))]

        shape, (st_a, st_b) = _compress(list(out), strides(sa), strides(sb))
        if len(shape) > MAX_DIMS:
            raise k.fail(f"broadcasts over {len(shape)} dimensions; the device kernel handles {MAX_DIMS}")
        pad = [0] * (MAX_DIMS - len(shape))
        f = {"is_mul": int(isinstance(k, Mul)), "ndim": len(shape), "shape": shape + pad,
             "a_stride": st_a + pad, "b_stride": st_b + pad, "off_a": k.off_a, "off_b": k.off_b}
        if isinstance(k, Mul):
            f.update(left_shift=0, ma=0, sa=0, mb=0, sb=0, my=k.mult, sy=k.shift)
        else:
            from ..ops.add import ADD_LEFT_SHIFT
            f.update(left_shift=ADD_LEFT_SHIFT, ma=k.ma, sa=k.sha, mb=k.mb, sb=k.shb, my=k.my, sy=k.shy)
        f.update(zp_y=k.zp_y, act_min=k.act_min, act_max=k.act_max)
        ps = self.em.struct(self.base(k), "el_binary_params", f)
        self.add(k, f"el_binary(&{ps}, {{t{a_i}}}, {{t{b_i}}}, {{t{y_i}}});", (a_i, b_i), (y_i,))

    def conv(self, k: ConvKernel) -> None:
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        xs = self.shape(x_i)
        out_shape, pad_h, pad_w = k.geometry(xs)
        n_out, k_h, k_w, k_c = k.w.shape
        idx = k.op.index
        ps = self.em.struct(self.base(k), "el_conv_params", {
            "n_batch": xs[0], "in_h": xs[1], "in_w": xs[2], "in_c": xs[3], "out_h": out_shape[1],
            "out_w": out_shape[2], "n_out": n_out, "k_h": k_h, "k_w": k_w, "k_c": k_c,
            "per_group": n_out // (xs[3] // k_c), "stride_h": k.stride[0], "stride_w": k.stride[1],
            "dil_h": k.dilation[0], "dil_w": k.dilation[1], "pad_h": pad_h, "pad_w": pad_w,
            "w": self.shared_array(f"op{idx}_w", np.asarray(k.w, np.int64), "int8_t"),
            "bias": self.shared_array(f"op{idx}_bias", _int32(k, k.bias, "bias"), "int32_t"),
            "mult": self.shared_array(f"op{idx}_mult", _int32(k, k.mult, "multiplier"), "int32_t"),
            "shift": self.shared_array(f"op{idx}_shift", _int32(k, k.shift, "shift"), "int32_t"),
            "in_off": k.in_off, "out_zp": k.out_zp, "act_min": k.act_min, "act_max": k.act_max})
        self.add(k, f"el_conv(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))

    def pool(self, k: Pool2D) -> None:
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        xs = self.shape(x_i)
        ys = k.output_shape(xs)
        if 0 in ys:
            return
        _, pad_h = pool_geometry(k.padding, xs[1], k.filter_h, k.stride_h)
        _, pad_w = pool_geometry(k.padding, xs[2], k.filter_w, k.stride_w)
        ps = self.em.struct(self.base(k), "el_pool_params", {
            "is_max": int(k.is_max), "n_batch": xs[0], "in_h": xs[1], "in_w": xs[2], "depth": xs[3],
            "out_h": ys[1], "out_w": ys[2], "stride_h": k.stride_h, "stride_w": k.stride_w,
            "filter_h": k.filter_h, "filter_w": k.filter_w, "pad_h": pad_h, "pad_w": pad_w,
            "act_min": k.act_min, "act_max": k.act_max})
        self.add(k, f"el_pool(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))

    def reduce(self, k: Reduce) -> None:
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        xs = self.shape(x_i)
        if len(xs) > MAX_DIMS:
            raise k.fail(f"reduces a rank-{len(xs)} tensor; the device kernel handles rank {MAX_DIMS}")
        strides = _contiguous_strides(xs)
        n_red = int(np.prod([xs[d] for d in k.axes], dtype=np.int64))

        def walk(dims):
            dims = [d for d in dims if xs[d] != 1]
            pad = [0] * (MAX_DIMS - len(dims))
            return {"ndim": len(dims), "shape": [xs[d] for d in dims] + pad, "stride": [strides[d] for d in dims] + pad}

        is_max = k.op.opcode == "REDUCE_MAX"
        if is_max or n_red == 0:
            mult, shift = 0, 0
        elif k.op.opcode == "SUM":
            mult, shift = k.multiplier, k.shift
        else:
            mult, shift = k.mean_requant(n_red)

        def walk_c(w):
            return "{" + ", ".join(f".{a} = {_c_value(b)}" for a, b in w.items()) + "}"

        ps = self.em.struct(self.base(k), "el_reduce_params", {
            "is_max": int(is_max), "outer": walk_c(walk(k.kept)), "inner": walk_c(walk(k.axes)),
            "n_reduced": n_red, "zp_in": k.zp_in, "mult": mult, "shift": shift, "zp_out": k.zp_out})
        self.add(k, f"el_reduce(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))

    def softmax(self, k: Softmax) -> None:
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        xs = self.shape(x_i)
        depth = xs[-1]
        if depth > SOFTMAX_MAX_DEPTH:
            raise k.fail(f"softmax over {depth} classes: the reference kernel's sum of exps can overflow "
                         f"above {SOFTMAX_MAX_DEPTH}; not generated")
        ps = self.em.struct(self.base(k), "el_softmax_params", {
            "rows": self.size(x_i) // max(depth, 1), "depth": depth,
            "exp_table": self.shared_array(f"op{k.op.index}_exp", _int32(k, k.exp_table, "exp table"), "int32_t")})
        self.add(k, f"el_softmax(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))

    def requantize(self, k: Quantize) -> None:
        x_i, y_i = k.op.inputs[0], k.op.outputs[0]
        self.check_int8(k, (x_i, y_i))
        ps = self.em.struct(self.base(k), "el_requant_params", {
            "n": self.size(x_i), "zp_in": k.zp_in, "mult": k.mult, "shift": k.shift, "zp_out": k.zp_out})
        self.add(k, f"el_requant(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))


# -- the model's interface ------------------------------------------------------------------------------
def _interface(model: Model) -> tuple[list[IOSpec], list[IOSpec], set[int]]:
    """The int8 inputs and outputs of the library and the float boundary ops left to the caller."""
    g = model.graph
    skipped: set[int] = set()
    consumers: dict[int, list] = {}
    for op in g.operators:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    producer = {o: op for op in g.operators for o in op.outputs}

    def spec(idx: int, boundary: Optional[int]) -> IOSpec:
        t = g.tensors[idx]
        q = t.quant
        return IOSpec(idx, tuple(int(d) for d in t.shape), q.s if q and q.per_tensor else 0.0,
                      q.zp if q and q.per_tensor else 0, boundary)

    ins = []
    for i in g.inputs:
        t = g.tensors[i]
        if t.dtype == np.float32:
            cons = consumers.get(i, [])
            if len(cons) != 1 or cons[0].opcode != "QUANTIZE" or g.tensors[cons[0].outputs[0]].dtype != np.int8:
                raise ModelError(f"model input {t.describe()} is float and not only quantized to int8; the device "
                                 "library computes in int8 only")
            ins.append(spec(cons[0].outputs[0], cons[0].index))
            skipped.add(cons[0].index)
        elif t.dtype == np.int8:
            ins.append(spec(i, None))
        else:
            raise ModelError(f"model input {t.describe()} is {t.type_name}; the device library takes int8")
    outs = []
    for i in g.outputs:
        t = g.tensors[i]
        if t.dtype == np.float32:
            op = producer.get(i)
            if op is None or op.opcode != "DEQUANTIZE" or g.tensors[op.inputs[0]].dtype != np.int8:
                raise ModelError(f"model output {t.describe()} is float and not a DEQUANTIZE of an int8 tensor; the "
                                 "device library computes in int8 only")
            outs.append(spec(op.inputs[0], op.index))
            skipped.add(op.index)
        elif t.dtype == np.int8:
            outs.append(spec(i, None))
        else:
            raise ModelError(f"model output {t.describe()} is {t.type_name}; the device library returns int8")
    tensors = [s.tensor for s in ins + outs]
    if len(set(tensors)) != len(tensors):
        raise ModelError("a model output is also a model input or another output; not supported on the device")
    if not ins or not outs:
        raise ModelError("the model has no inputs or no outputs")
    return ins, outs, skipped


# -- the one-timestep graph -----------------------------------------------------------------------------
class _NotStreamable(Exception):
    pass


def _time_positions(src_map: np.ndarray, in_shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The input time index each output element of a movement op reads."""
    return np.unravel_index(src_map.reshape(-1), in_shape)[axis].reshape(src_map.shape)


def _step_movement(k: MovementKernel, in_shape, in_axis: int, out_shape, folded: dict[int, np.ndarray]
                   ) -> tuple[Optional[int], np.ndarray]:
    """For a movement op on a time-carrying tensor: the output's time axis (None if the op keeps
    only the last timestep) and the source map of its one-timestep version."""
    n_t = in_shape[in_axis]
    src = _movement_map(k, tuple(in_shape), folded)
    tpos = _time_positions(src, tuple(in_shape), in_axis)
    step_in = list(in_shape)
    step_in[in_axis] = 1

    def to_step(sel_src: np.ndarray) -> np.ndarray:
        idx = list(np.unravel_index(sel_src, tuple(in_shape)))
        idx[in_axis] = np.zeros_like(idx[in_axis])
        return np.ravel_multi_index(tuple(idx), tuple(step_in))

    if np.all(tpos == n_t - 1) and n_t > 1:
        return None, to_step(src)
    for e in range(len(out_shape)):
        if out_shape[e] != n_t:
            continue
        pos = np.indices(src.shape)[e]
        if not np.array_equal(tpos, pos):
            continue
        first = np.take(src, [0], axis=e)
        last = np.take(src, [n_t - 1], axis=e)
        if np.array_equal(to_step(first), to_step(last)):
            return e, to_step(first)
    raise _NotStreamable(f"{k.op.describe()} mixes timesteps")


def _propagate(g: Graph, kernels: list[OpKernel], skipped: set[int], in_tensor: int, t_axis: int,
               folded: dict[int, np.ndarray]) -> tuple[dict[int, Optional[int]], dict[int, np.ndarray]]:
    """The time axis of every tensor (None: none), and the one-timestep source map of each movement
    op on the time axis; raises _NotStreamable naming the first op that mixes timesteps."""
    axes: dict[int, Optional[int]] = {in_tensor: t_axis}
    overrides: dict[int, np.ndarray] = {}
    for k in kernels:
        op = k.op
        if op.index in skipped:
            continue
        act_ins = [i for i in op.inputs if i >= 0 and g.tensors[i].data is None and not g.tensors[i].is_variable]
        timed = [i for i in act_ins if axes.get(i) is not None]
        op_outs = list(op.outputs)
        if not timed:
            if isinstance(k, LSTMKernel):
                raise _NotStreamable(f"{op.describe()} runs on a tensor without time axis")
            for o in op_outs:
                axes[o] = None
            continue
        a = axes[timed[0]]
        x_shape = tuple(g.tensors[timed[0]].shape)
        y_shape = tuple(g.tensors[op_outs[0]].shape)
        if isinstance(k, LSTMKernel):
            if a != (0 if k.time_major else 1) or timed[0] != op.inputs[0]:
                raise _NotStreamable(f"{op.describe()} reads its time axis from dimension {a}")
            axes[op_outs[0]] = a
        elif isinstance(k, (Int8TableKernel, Quantize, Softmax)):
            if isinstance(k, Softmax) and a == len(x_shape) - 1:
                raise _NotStreamable(f"{op.describe()} normalises over time")
            axes[op_outs[0]] = a
        elif isinstance(k, FullyConnected):
            if a == len(x_shape) - 1:
                raise _NotStreamable(f"{op.describe()} multiplies along the time axis")
            if k.keep_num_dims:
                axes[op_outs[0]] = a
            elif all(d == 1 for j, d in enumerate(x_shape[:-1]) if j != a):
                axes[op_outs[0]] = 0
            else:
                raise _NotStreamable(f"{op.describe()} flattens the time axis together with others")
        elif isinstance(k, (Add, Mul)):
            ya = a + len(y_shape) - len(x_shape)
            for i in op.inputs[:2]:
                s = tuple(g.tensors[i].shape)
                pos = ya - (len(y_shape) - len(s))
                ai = axes.get(i)
                if ai is not None and ai != pos:
                    raise _NotStreamable(f"{op.describe()} combines tensors with different time axes")
                if ai is None and 0 <= pos < len(s) and s[pos] != 1:
                    raise _NotStreamable(f"{op.describe()} combines a sequence with a per-timestep constant")
            axes[op_outs[0]] = ya
        elif isinstance(k, Concatenation):
            if len(timed) != len([i for i in op.inputs]) or any(axes[i] != a for i in op.inputs) or k.axis == a:
                raise _NotStreamable(f"{op.describe()} concatenates along or across the time axis")
            axes[op_outs[0]] = a
        elif isinstance(k, MovementKernel):
            out_axis, step_src = _step_movement(k, x_shape, a, y_shape, folded)
            axes[op_outs[0]] = out_axis
            overrides[op.index] = step_src
        else:
            raise _NotStreamable(f"{op.describe()} combines several timesteps")
    return axes, overrides


def _step_graph(model: Model, kernels: list[OpKernel], skipped: set[int], ins: list[IOSpec], outs: list[IOSpec],
                folded: dict[int, np.ndarray]) -> tuple[StepInfo, Optional[Graph], dict[int, np.ndarray]]:
    """Propagates the time axis from the input through the graph. Succeeds when every op either
    works timestep by timestep (LSTM, dense layers, elementwise ops, ...) or keeps only the last
    timestep, after which everything is per-sequence: then one-timestep runs with the LSTM state
    carried are exactly the whole-sequence computation, prefix by prefix. The input's time axis is
    the first LSTM's (1 batch-major, 0 time-major) unless the graph transposes before it, so both
    are tried."""
    g = model.graph
    first_lstm = next((k for k in kernels if isinstance(k, LSTMKernel)), None)
    if first_lstm is None:
        return StepInfo(False, "the model has no LSTM"), None, {}
    if len(ins) != 1:
        return StepInfo(False, f"the model has {len(ins)} inputs"), None, {}
    io_in = ins[0]
    in_shape = io_in.shape
    if len(in_shape) != 3:
        return StepInfo(False, f"the input has rank {len(in_shape)}, not 3"), None, {}
    guess = 0 if first_lstm.time_major else 1
    reasons = []
    for t_axis in (guess, 1 - guess):
        n_t = in_shape[t_axis]
        if n_t == 1:
            if t_axis == guess:  # a one-timestep model: a step is a run
                return StepInfo(True, "", 1, t_axis, [None] * len(outs), in_shape, [o.shape for o in outs]), g, {}
            continue
        try:
            axes, overrides = _propagate(g, kernels, skipped, io_in.tensor, t_axis, folded)
        except _NotStreamable as exc:
            reasons.append(str(exc))
            continue
        break
    else:
        return StepInfo(False, reasons[0]), None, {}
    if any(o.tensor not in axes for o in outs):
        return StepInfo(False, "an output does not depend on the input"), None, {}
    out_axes = [axes[o.tensor] for o in outs]

    tensors = list(g.tensors)
    for i, a in axes.items():
        if a is None:
            continue
        t = tensors[i]
        shape = list(t.shape)
        if shape[a] != n_t:
            return StepInfo(False, f"{t.describe()} has {shape[a]} steps on its time axis, not {n_t}"), None, {}
        shape[a] = 1
        tensors[i] = replace(t, shape=tuple(shape), shape_signature=tuple(shape))
    for k in overrides:
        y = g.operators[k].outputs[0]
        overrides[k] = overrides[k].reshape(tensors[y].shape)
    step_g = replace(g, tensors=tensors)
    info = StepInfo(True, "", n_t, t_axis, out_axes, tensors[io_in.tensor].shape, [tensors[o.tensor].shape for o in outs])
    return info, step_g, overrides


# -- constant folding -----------------------------------------------------------------------------------
def _fold_constants(model: Model, kernels: list[OpKernel], skipped: set[int]) -> tuple[dict[int, np.ndarray], set[int]]:
    """Ops whose result is known at generation time (all inputs constant, or SHAPE, since every
    shape is static on the device) are evaluated here by their Python kernel and not emitted: the
    shape arithmetic a converter leaves around RESHAPE becomes a constant."""
    g = model.graph
    folded: dict[int, np.ndarray] = {}
    ops: set[int] = set()
    for k in kernels:
        op = k.op
        if op.index in skipped or isinstance(k, LSTMKernel):
            continue
        ins = [i for i in op.inputs if i >= 0]
        known = all(g.tensors[i].data is not None or i in folded for i in ins)
        if not (ins and known) and op.opcode != "SHAPE":
            continue
        args = [None if i < 0 else folded[i] if i in folded else g.tensors[i].data if g.tensors[i].data is not None
                else np.zeros(g.tensors[i].shape, g.tensors[i].dtype) for i in op.inputs]
        for o, v in zip(op.outputs, k.run(args)):
            folded[o] = np.asarray(v)
        ops.add(op.index)
    return folded, ops


# -- memory plan ----------------------------------------------------------------------------------------
def plan_memory(calls: list[_Call], sizes: dict[int, int], external: set[int]) -> tuple[dict, int]:
    """Offsets in one arena for every tensor the calls produce and every scratch buffer, such that
    no two buffers that are live at the same call overlap (greedy first fit, largest first)."""
    live: dict[object, list[int]] = {}
    for pos, c in enumerate(calls):
        for t in c.reads + c.writes:
            if t in external:
                continue
            rng = live.setdefault(t, [pos, pos])
            rng[0], rng[1] = min(rng[0], pos), max(rng[1], pos)
        if c.scratch_bytes:
            live[("scratch", pos)] = [pos, pos]
    nbytes = {key: (sizes[key] if not isinstance(key, tuple) else calls[key[1]].scratch_bytes) for key in live}
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict = {}
    for key in sorted(live, key=lambda k: (-nbytes[k], live[k][0])):
        first, last = live[key]
        size = (nbytes[key] + 3) // 4 * 4
        off = 0
        for o, e, f, l in sorted(placed):
            if l < first or f > last:
                continue
            if off + size <= o:
                break
            off = max(off, e)
        offsets[key] = off
        placed.append((off, off + size, first, last))
    total = max((e for _, e, _, _ in placed), default=0)
    return offsets, total


# -- emission -------------------------------------------------------------------------------------------
_CTYPE = {np.dtype(np.int8): "int8_t", np.dtype(np.int16): "int16_t"}


def _emit_function(calls: list[_Call], offsets: dict, ptrs: dict[int, str], graph: Graph, signature: str) -> str:
    lines = [f"{signature} {{"]
    for pos, c in enumerate(calls):
        subs = {}
        for t in set(c.reads + c.writes):
            if t in ptrs:
                subs[f"t{t}"] = ptrs[t]
            else:
                ctype = _CTYPE.get(np.dtype(graph.tensors[t].dtype), "int8_t")
                subs[f"t{t}"] = f"({ctype} *)(model_arena + {offsets[t]})"
        if c.scratch_bytes:
            subs["scratch"] = f"(model_arena + {offsets[('scratch', pos)]})"
        lines.append("    " + c.code.format(**subs) + f"  /* {c.opcode} */")
    lines.append("}")
    return "\n".join(lines)


def generate(model: Model, prefix: str = "model") -> GeneratedLibrary:
    """The C library for a model loaded with flavor="tflm" (raises ModelError for what it cannot do)."""
    if model.flavor != "tflm":
        raise ModelError("the firmware generator needs the model loaded with flavor='tflm'")
    g = model.graph
    kernels = model._kernels
    ins, outs, skipped = _interface(model)
    folded, folded_ops = _fold_constants(model, kernels, skipped)
    if any(s.tensor in folded for s in outs):
        raise ModelError("a model output is a constant; there is nothing to compute on the device")
    skipped = skipped | folded_ops
    em = _Emitter()

    full = _Lowering(em, g, prefix, "", folded)
    for k in kernels:
        if k.op.index not in skipped:
            full.lower(k)

    step, step_g, overrides = _step_graph(model, kernels, skipped, ins, outs, folded)
    step_low = None
    if step.available and step.time_steps > 1:
        step_low = _Lowering(em, step_g, prefix, "step_", folded)
        try:
            for k in kernels:
                if k.op.index in skipped:
                    continue
                if k.op.index in overrides:  # a movement op on the time axis: its one-step map is known
                    step_low.copy(k, overrides[k.op.index])
                else:
                    step_low.lower(build_kernel(k.op, step_g, "tflm"))
        except ModelError as exc:
            step = StepInfo(False, f"the one-timestep graph does not prepare: {exc}")
            step_low = None

    # state tensors: persistent, outside the arena
    variables = [t for t in g.tensors if t.is_variable]
    in_names, out_names = _io_names("input", len(ins)), _io_names("output", len(outs))
    ptrs: dict[int, str] = {s.tensor: f"(int8_t *){n}" for s, n in zip(ins, in_names)}
    ptrs.update({s.tensor: n for s, n in zip(outs, out_names)})
    params = ", ".join([f"const int8_t *{n}" for n in in_names] + [f"int8_t *{n}" for n in out_names])
    state_defs, reset_lines, state_bytes = [], [], 0
    for t in variables:
        ctype = _CTYPE.get(np.dtype(t.dtype))
        if ctype is None:
            raise ModelError(f"state {t.describe()} is {t.type_name}; the device library keeps int8/int16 state")
        n = int(np.prod(t.shape, dtype=np.int64))
        name = f"{prefix}_state{t.index}"
        state_defs.append(f"static {ctype} {name}[{n}];  /* {t.name} */")
        fill = t.quant.zp if (t.quant is not None and t.dtype == np.int8) else 0
        if ctype == "int8_t":
            reset_lines.append(f"    memset({name}, {fill}, sizeof {name});")
        else:
            reset_lines.append(f"    for (int32_t i = 0; i < {n}; i++) {name}[i] = 0;")
        ptrs[t.index] = name
        state_bytes += n * np.dtype(t.dtype).itemsize
    for c in full.calls + (step_low.calls if step_low else []):
        for t in c.reads:
            tt = g.tensors[t]  # constants are the same in both graphs
            value = folded.get(t, tt.data)
            if value is not None and t not in ptrs:
                ptrs[t] = em.array(f"{prefix}_const{t}", np.asarray(value, np.int64), _CTYPE[np.dtype(tt.dtype)])

    def sizes_of(graph: Graph) -> dict[int, int]:
        return {t.index: int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize
                for t in graph.tensors if t.dtype is not None}

    external = set(ptrs)
    offsets, arena = plan_memory(full.calls, sizes_of(g), external)
    funcs = [_emit_function(full.calls, offsets, ptrs, g, f"void {prefix}_run({params})")]
    if step_low is not None:
        s_offsets, s_arena = plan_memory(step_low.calls, sizes_of(step_g), external)
        arena = max(arena, s_arena)
        funcs.append(_emit_function(step_low.calls, s_offsets, ptrs, step_g, f"void {prefix}_step({params})"))
    elif step.available:  # a one-timestep model: a step is a run
        funcs.append(f"void {prefix}_step({params}) {{ {prefix}_run({', '.join(in_names + out_names)}); }}")
    arena_decl = (f"static uint8_t model_arena[{arena}] __attribute__((aligned(8)));" if arena
                  else "/* no arena: every tensor is an input, an output or state */")

    used = sorted({c.code.split("(")[0] for c in full.calls + (step_low.calls if step_low else [])})
    model_c = "\n\n".join([
        _HEADER_COMMENT,
        "#include \"model.h\"\n" + "\n".join(f"#include \"{h}\"" for h in _HEADERS),
        f"const uint16_t el_sigmoid_table[256] = {{\n{_c_ints(fp.SIGMOID_TABLE_UINT16)}\n}};",
        "\n\n".join(em.defs),
        arena_decl,
        "\n".join(state_defs) if state_defs else "/* no state */",
        f"void {prefix}_reset(void) {{\n" + "\n".join(reset_lines) + "\n}",
        *funcs,
    ]) + "\n"
    model_h = _model_header(prefix, ins, outs, step, arena, state_bytes, params)
    return GeneratedLibrary({"model.c": model_c, "model.h": model_h}, ins, outs, step, arena, state_bytes,
                            [c.opcode for c in full.calls], used)


_HEADERS = ("el_lstm.h", "el_fc.h", "el_move.h", "el_table.h", "el_binary.h", "el_conv.h", "el_pool.h",
            "el_reduce.h", "el_softmax.h", "el_requant.h")

_HEADER_COMMENT = """/* Generated by `edgelstm firmware`: the model's weights and prepared parameters (every
 * multiplier, shift, folded bias and table computed by edgelstm's tflm-flavour prepare step) and
 * the sequence of kernel calls. No malloc, no floating point. */"""


def _io_names(base: str, n: int) -> list[str]:
    return [base] if n == 1 else [f"{base}{i}" for i in range(n)]


def _model_header(prefix: str, ins: list[IOSpec], outs: list[IOSpec], step: StepInfo, arena: int, state: int,
                  params: str) -> str:
    P = prefix.upper()

    def q(io: IOSpec, what: str) -> str:
        s = f"int8 {list(io.shape)}, real = {io.scale!r} * (q - ({io.zero_point}))"
        if io.boundary_op is not None:
            s += f"; the model's float {what} (op {io.boundary_op}) is left to you"
        return s

    lines = [
        "/* Generated by `edgelstm firmware`: bit-exact int8 inference (TFLite Micro's arithmetic). */",
        f"#ifndef {P}_H", f"#define {P}_H", "#include <stdint.h>", "",
        f"#define {P}_NUM_INPUTS {len(ins)}", f"#define {P}_NUM_OUTPUTS {len(outs)}",
    ]
    for k, (io, n) in enumerate(zip(ins, _io_names("input", len(ins)))):
        lines += [f"/* {n}: {q(io, 'QUANTIZE')} */", f"#define {P}_INPUT{k}_SIZE {io.size}",
                  f"#define {P}_INPUT{k}_ZERO_POINT {io.zero_point}"]
    for k, (io, n) in enumerate(zip(outs, _io_names("output", len(outs)))):
        lines += [f"/* {n}: {q(io, 'DEQUANTIZE')} */", f"#define {P}_OUTPUT{k}_SIZE {io.size}",
                  f"#define {P}_OUTPUT{k}_ZERO_POINT {io.zero_point}"]
    if len(ins) == 1:
        lines.append(f"#define {P}_INPUT_SIZE {ins[0].size}")
    if len(outs) == 1:
        lines.append(f"#define {P}_OUTPUT_SIZE {outs[0].size}")
    lines += [f"#define {P}_ARENA_BYTES {arena}", f"#define {P}_STATE_BYTES {state}",
              f"#define {P}_HAS_STEP {int(step.available)}"]
    if step.available:
        step_in = int(np.prod(step.input_shape, dtype=np.int64))
        lines += [f"#define {P}_TIME_STEPS {step.time_steps}", f"#define {P}_TIME_AXIS {step.input_time_axis}",
                  f"#define {P}_STEP_INPUT_SIZE {step_in}"]
        for k, shape in enumerate(step.output_shapes):
            lines.append(f"#define {P}_STEP_OUTPUT{k}_SIZE {int(np.prod(shape, dtype=np.int64))}")
    lines += [
        "",
        "/* LSTM state back to its start (h at its zero point, c at 0), as TFLite Micro's reset(). */",
        f"void {prefix}_reset(void);",
        "/* The whole sequence; the state carries on from the previous call (call reset first for a",
        " * fresh sequence), exactly like TFLite Micro's Invoke. */",
        f"void {prefix}_run({params});",
    ]
    if step.available:
        lines += [
            "/* One timestep (input: the sequence input at one time index), state kept: after feeding",
            " * steps 0..t, an output without time axis is what model_run gives for the first t + 1 steps,",
            " * an output with one is model_run's output at time t. */",
            f"void {prefix}_step({params});",
        ]
    else:
        lines.append(f"/* no step function: {step.reason} */")
    lines += ["", "#endif", ""]
    return "\n".join(lines)
