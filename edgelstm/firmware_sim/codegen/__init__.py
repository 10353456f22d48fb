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

Layout: library.py (`generate`: lowering, state, constants, arena, model.c / model.h), plan.py
(the int8 interface, constant folding, the one-timestep graph, the memory plan), emit.py (what
every emitter shares: `Call`, `Emitter`, the `Lowering` context), lower.py (the table kernel
class -> emitter), and one emitter module per C kernel family: lstm.py, fc.py, movement.py,
table.py, binary.py, conv.py, pool.py, reduce.py, softmax.py, requant.py, each with
`lower_<family>(ctx, kernel)`.
"""
from .emit import MAX_DIMS, Call, Emitter, Lowering
from .library import GeneratedLibrary, generate
from .lower import KERNEL_HEADERS, KERNEL_SOURCES, LOWERERS, lower
from .movement import fit_strided_map
from .plan import IOSpec, StepInfo, plan_memory
from .softmax import SOFTMAX_MAX_DEPTH

__all__ = ["Call", "Emitter", "GeneratedLibrary", "IOSpec", "KERNEL_HEADERS", "KERNEL_SOURCES", "LOWERERS",
           "Lowering", "MAX_DIMS", "SOFTMAX_MAX_DEPTH", "StepInfo", "fit_strided_map", "generate", "lower",
           "plan_memory"]
