"""Op-level comparison against LiteRT's builtin reference kernels.

Runs the model in LiteRT (BUILTIN_REF, all tensors preserved), then feeds each chosen op's
*reference* input tensors to edgelstm's kernel for that op and compares its outputs element for
element. This isolates one kernel from errors upstream in the graph.
"""
from __future__ import annotations

import numpy as np

from edgelstm.ops import build_kernel
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_model
from edgelstm.verify import unequal


def check_ops(model_bytes: bytes, inputs: list[np.ndarray], opcode: str, flavor: str = "tflite") -> int:
    """Return the number of ops of `opcode` checked; raise AssertionError on any differing element."""
    graph = read_model(model_bytes)
    ref = get_reference("litert", model_bytes, preserve_all_tensors=True)
    ref.run(inputs, reset=True)
    tensors = ref.tensors()
    checked = 0
    for op in graph.operators:
        if op.opcode != opcode:
            continue
        if any(i != -1 and graph.tensors[i].is_variable for i in op.inputs):
            raise ValueError("stateful ops cannot be checked from preserved tensors (state is overwritten)")
        kernel = build_kernel(op, graph, flavor)
        args = [None if i == -1 else (graph.tensors[i].data if graph.tensors[i].data is not None else tensors[i])
                for i in op.inputs]
        outs = kernel.run(args)
        for o, got in zip(op.outputs, outs):
            want = tensors[o]
            assert got.dtype == want.dtype, f"{op.describe()}: dtype {got.dtype} != {want.dtype}"
            assert got.shape == want.shape, f"{op.describe()}: shape {got.shape} != {want.shape}"
            differ = unequal(got, want)
            bad = int(np.count_nonzero(differ))
            assert bad == 0, (f"{op.describe()}: {bad}/{got.size} elements differ, e.g. "
                              f"{got[differ][:5].tolist()} vs {want[differ][:5].tolist()}")
        checked += 1
    return checked
