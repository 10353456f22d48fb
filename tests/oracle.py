"""Op-level comparison against LiteRT's builtin reference kernels.

Runs the model in LiteRT (BUILTIN_REF, all tensors preserved), then feeds each chosen op's
*reference* input tensors to edgelstm's kernel for that op and compares its outputs element for
element. This isolates one kernel from errors upstream in the graph.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from edgelstm.errors import ReferenceUnavailable
from edgelstm.ops import OpKernel, build_kernel
from edgelstm.references import get_reference
from edgelstm.tflite_reader import Graph, Operator, read_model
from edgelstm.verify import unequal
from tflite_build import int8_inputs


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


def check_all(model_bytes: bytes, opcode: str, n_random: int = 3, **kw) -> int:
    """check_ops over every batch of `tflite_build.int8_inputs` (each run counts its ops once)."""
    return sum(check_ops(model_bytes, xs, opcode) for xs in int8_inputs(model_bytes, n_random, **kw))


def check_converted(name: str, expected: dict[str, int], time_steps: int = 20) -> list[Operator]:
    """Zoo model `name` holds exactly `expected[opcode]` ops of each opcode, and every one of them
    matches LiteRT on each batch of `tflite_build.int8_inputs`. Returns those ops."""
    import zoo

    data = zoo.build(name)
    g = read_model(data)
    ops = [op.opcode for op in g.operators]
    for code, n in expected.items():
        assert ops.count(code) == n, f"{name}: expected {n} {code}, the converter made {ops}"
    checked = 0
    for xs in int8_inputs(data, time_steps=time_steps):
        for code in expected:
            checked += check_ops(data, xs, code)
    assert checked == 6 * sum(expected.values())
    return [op for op in g.operators if op.opcode in expected]


def reference_refuses(model_bytes: bytes) -> bool:
    """Whether LiteRT refuses to load the model."""
    try:
        get_reference("litert", model_bytes)
    except ReferenceUnavailable:
        return True
    return False


def litert_run(model_bytes: bytes, xs: list[np.ndarray]) -> Optional[list[np.ndarray]]:
    """LiteRT's outputs (BUILTIN_REF), or None if it refuses the model or the inputs; inputs whose
    shape differs from the declared one are resized to."""
    from ai_edge_litert import interpreter as lit

    try:
        it = lit.Interpreter(model_content=model_bytes, experimental_op_resolver_type=lit.OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        for d, x in zip(it.get_input_details(), xs):
            if tuple(d["shape"]) != x.shape:
                it.resize_tensor_input(d["index"], x.shape)
                it.allocate_tensors()
        for d, x in zip(it.get_input_details(), xs):
            it.set_tensor(d["index"], x)
        it.invoke()
    except (RuntimeError, ValueError):
        return None
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


# -- edgelstm's side ---------------------------------------------------------------------------------
def find_op(model_bytes: bytes, opcode: str, k: int = 0) -> tuple[Graph, Operator]:
    """The graph and its k-th operator of `opcode`."""
    graph = read_model(model_bytes)
    return graph, [o for o in graph.operators if o.opcode == opcode][k]


def kernel_for(model_bytes: bytes, opcode: str, k: int = 0) -> tuple[OpKernel, Operator, Graph]:
    """edgelstm's kernel for the k-th operator of `opcode`, with the operator and the graph."""
    graph, op = find_op(model_bytes, opcode, k)
    return build_kernel(op, graph, "tflite"), op, graph


def first_kernel(model_bytes: bytes) -> OpKernel:
    """edgelstm's kernel for the model's first operator (the only one of a single-op model)."""
    graph = read_model(model_bytes)
    return build_kernel(graph.operators[0], graph, "tflite")
