"""`generate`: the model's kernels lowered (the whole-sequence graph, and the one-timestep graph
when there is one), the state and constants placed, the arena planned, and model.c / model.h
written."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ... import fixedpoint as fp
from ...errors import ModelError
from ...model import Model
from ...ops import OpKernel, build_kernel
from ...tflite_reader import Graph
from .emit import CTYPE, Call, Emitter, Lowering, c_ints
from .lower import KERNEL_HEADERS, lower
from .movement import lower_copy
from .plan import IOSpec, StepInfo, fold_constants, interface, plan_memory, step_graph


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


def generate(model: Model, prefix: str = "model") -> GeneratedLibrary:
    """The C library for a model loaded with flavor="tflm" (raises ModelError for what it cannot do)."""
    if model.flavor != "tflm":
        raise ModelError("the firmware generator needs the model loaded with flavor='tflm'")
    g = model.graph
    kernels = model.kernels
    ins, outs, skipped = interface(model)
    folded, folded_ops = fold_constants(model, kernels, skipped)
    if any(s.tensor in folded for s in outs):
        raise ModelError("a model output is a constant; there is nothing to compute on the device")
    skipped = skipped | folded_ops
    em = Emitter()

    full = Lowering(em, g, prefix, "", folded)
    for k in kernels:
        if k.op.index not in skipped:
            lower(full, k)
    step, step_g, step_low = _lower_step(em, model, kernels, skipped, ins, outs, prefix, folded)
    calls = full.calls + (step_low.calls if step_low else [])

    in_names, out_names = _io_names("input", len(ins)), _io_names("output", len(outs))
    ptrs: dict[int, str] = {s.tensor: f"(int8_t *){n}" for s, n in zip(ins, in_names)}
    ptrs.update({s.tensor: n for s, n in zip(outs, out_names)})
    params = ", ".join([f"const int8_t *{n}" for n in in_names] + [f"int8_t *{n}" for n in out_names])
    state_defs, reset_lines, state_bytes = _state(g, prefix, ptrs)
    _constants(em, g, folded, calls, prefix, ptrs)

    # everything with a pointer by now (inputs, outputs, state, constants) lives outside the arena
    external = set(ptrs)
    offsets, arena = plan_memory(full.calls, _byte_sizes(g), external)
    funcs = [_function(full.calls, offsets, ptrs, g, f"void {prefix}_run({params})")]
    if step_low is not None:
        s_offsets, s_arena = plan_memory(step_low.calls, _byte_sizes(step_g), external)
        arena = max(arena, s_arena)
        funcs.append(_function(step_low.calls, s_offsets, ptrs, step_g, f"void {prefix}_step({params})"))
    elif step.available:  # a one-timestep model: a step is a run
        funcs.append(f"void {prefix}_step({params}) {{ {prefix}_run({', '.join(in_names + out_names)}); }}")

    used = sorted({c.code.split("(")[0] for c in calls})
    model_c = _model_source(em, arena, state_defs, reset_lines, prefix, funcs)
    model_h = _model_header(prefix, ins, outs, step, arena, state_bytes, params)
    return GeneratedLibrary({"model.c": model_c, "model.h": model_h}, ins, outs, step, arena, state_bytes,
                            [c.opcode for c in full.calls], used)


def _lower_step(em: Emitter, model: Model, kernels: list[OpKernel], skipped: set[int], ins: list[IOSpec],
                outs: list[IOSpec], prefix: str, folded: dict[int, np.ndarray]
                ) -> tuple[StepInfo, Optional[Graph], Optional[Lowering]]:
    """The one-timestep graph's calls, when it has more than one timestep to split; a graph whose
    kernels do not prepare at one timestep has no step function (the reason says why)."""
    step, step_g, overrides = step_graph(model, kernels, skipped, ins, outs, folded)
    if not (step.available and step.time_steps > 1):
        return step, step_g, None
    step_low = Lowering(em, step_g, prefix, "step_", folded)
    try:
        for k in kernels:
            if k.op.index in skipped:
                continue
            if k.op.index in overrides:  # a movement op on the time axis: its one-step map is known
                lower_copy(step_low, k, overrides[k.op.index])
            else:
                lower(step_low, build_kernel(k.op, step_g, "tflm"))
    except ModelError as exc:
        return StepInfo(False, f"the one-timestep graph does not prepare: {exc}"), step_g, None
    return step, step_g, step_low


def _state(g: Graph, prefix: str, ptrs: dict[int, str]) -> tuple[list[str], list[str], int]:
    """The LSTM state: persistent static arrays outside the arena, and the reset that puts them
    back at their start (int8 at the zero point, int16 at 0). Adds their names to ptrs."""
    defs, reset_lines, nbytes = [], [], 0
    for t in g.tensors:
        if not t.is_variable:
            continue
        ctype = CTYPE.get(np.dtype(t.dtype))
        if ctype is None:
            raise ModelError(f"state {t.describe()} is {t.type_name}; the device library keeps int8/int16 state")
        n = int(np.prod(t.shape, dtype=np.int64))
        name = f"{prefix}_state{t.index}"
        defs.append(f"static {ctype} {name}[{n}];  /* {t.name} */")
        fill = t.quant.zp if (t.quant is not None and t.dtype == np.int8) else 0
        if ctype == "int8_t":
            reset_lines.append(f"    memset({name}, {fill}, sizeof {name});")
        else:
            reset_lines.append(f"    for (int32_t i = 0; i < {n}; i++) {name}[i] = 0;")
        ptrs[t.index] = name
        nbytes += n * np.dtype(t.dtype).itemsize
    return defs, reset_lines, nbytes


def _constants(em: Emitter, g: Graph, folded: dict[int, np.ndarray], calls: list[Call], prefix: str,
               ptrs: dict[int, str]) -> None:
    """Every constant (or folded) tensor a call reads becomes a static const array; adds their
    names to ptrs."""
    for c in calls:
        for t in c.reads:
            tt = g.tensors[t]  # constants are the same in both graphs
            value = folded.get(t, tt.data)
            if value is not None and t not in ptrs:
                ptrs[t] = em.array(f"{prefix}_const{t}", np.asarray(value, np.int64), CTYPE[np.dtype(tt.dtype)])


def _byte_sizes(graph: Graph) -> dict[int, int]:
    return {t.index: int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize
            for t in graph.tensors if t.dtype is not None}


def _function(calls: list[Call], offsets: dict, ptrs: dict[int, str], graph: Graph, signature: str) -> str:
    """One C function: the calls in order, each tensor an external pointer or an arena offset."""
    lines = [f"{signature} {{"]
    for pos, c in enumerate(calls):
        subs = {}
        for t in set(c.reads + c.writes):
            if t in ptrs:
                subs[f"t{t}"] = ptrs[t]
            else:
                ctype = CTYPE.get(np.dtype(graph.tensors[t].dtype), "int8_t")
                subs[f"t{t}"] = f"({ctype} *)(model_arena + {offsets[t]})"
        if c.scratch_bytes:
            subs["scratch"] = f"(model_arena + {offsets[('scratch', pos)]})"
        lines.append("    " + c.code.format(**subs) + f"  /* {c.opcode} */")
    lines.append("}")
    return "\n".join(lines)


_SOURCE_COMMENT = """/* Generated by `edgelstm firmware`: the model's weights and prepared parameters (every
 * multiplier, shift, folded bias and table computed by edgelstm's tflm-flavour prepare step) and
 * the sequence of kernel calls. No malloc, no floating point. */"""


def _model_source(em: Emitter, arena: int, state_defs: list[str], reset_lines: list[str], prefix: str,
                  funcs: list[str]) -> str:
    arena_decl = (f"static uint8_t model_arena[{arena}] __attribute__((aligned(8)));" if arena
                  else "/* no arena: every tensor is an input, an output or state */")
    return "\n\n".join([
        _SOURCE_COMMENT,
        "#include \"model.h\"\n" + "\n".join(f"#include \"{h}\"" for h in KERNEL_HEADERS),
        f"const uint16_t el_sigmoid_table[256] = {{\n{c_ints(fp.SIGMOID_TABLE_UINT16)}\n}};",
        "\n\n".join(em.defs),
        arena_decl,
        "\n".join(state_defs) if state_defs else "/* no state */",
        f"void {prefix}_reset(void) {{\n" + "\n".join(reset_lines) + "\n}",
        *funcs,
    ]) + "\n"


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
