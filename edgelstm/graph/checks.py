"""Model checks shared by `edgelstm lint` and the quantization repair: the ops that move int8 values
without requantizing, the tensors they join, the LSTM hidden-state tensors that must agree on one
quantization, and the cell-state scales LiteRT's integer LSTM handles."""
from __future__ import annotations

from typing import Optional

from .. import lstm_shared
from ..tflite_reader import Graph, Operator, Tensor

# Ops that copy int8 values without requantizing, and which inputs carry the data (None = all):
# whatever scale their output declares, it holds the input's integers.
COPY_OPS: dict[str, Optional[tuple[int, ...]]] = {
    "RESHAPE": (0,), "SQUEEZE": (0,), "EXPAND_DIMS": (0,), "STRIDED_SLICE": (0,), "SLICE": (0,),
    "REVERSE_V2": (0,), "TRANSPOSE": (0,), "GATHER": (0,), "GATHER_ND": (0,), "CONCATENATION": None,
    "PACK": None, "UNPACK": (0,), "SPLIT": (1,), "SPLIT_V": (0,), "MAX_POOL_2D": (0,),
    "AVERAGE_POOL_2D": (0,), "REDUCE_MAX": (0,), "REDUCE_MIN": (0,), "TILE": (0,), "BROADCAST_TO": (0,),
    "PAD": (0,), "PADV2": (0,), "MIRROR_PAD": (0,), "DEPTH_TO_SPACE": (0,), "SPACE_TO_DEPTH": (0,),
    "BATCH_TO_SPACE_ND": (0,), "SPACE_TO_BATCH_ND": (0,), "RESIZE_NEAREST_NEIGHBOR": (0,),
}

# LiteRT's integer tanh of the cell state dispatches on 0..6 integer bits: cell scales 2^-15 .. 2^-9.
# Outside that range it skips tanh(c) (below) or is not written for it (above).
LITERT_CELL_EXPONENTS = range(-15, -8)

Params = tuple[float, int]


def qparams(t: Tensor) -> Optional[Params]:
    """(scale, zero point) of a per-tensor quantized tensor; None otherwise."""
    if t.quant is None or not t.quant.per_tensor:
        return None
    return t.quant.s, t.quant.zp


def copy_data_inputs(op: Operator) -> list[int]:
    """The inputs whose values a byte-copying op (COPY_OPS) moves to its outputs."""
    data = COPY_OPS[op.opcode]
    return [t for k, t in enumerate(op.inputs) if t != -1 and (data is None or k in data)]


def copy_links(graph: Graph) -> list[tuple[int, int]]:
    """(input tensor, output tensor) pairs joined by a byte-copying op, int8 activations only."""
    links = []
    for op in graph.operators:
        if op.opcode not in COPY_OPS:
            continue
        for i in copy_data_inputs(op):
            for o in op.outputs:
                ti, to = graph.tensors[i], graph.tensors[o]
                if ti.type_name == "INT8" and to.type_name == "INT8" and not ti.is_constant:
                    links.append((i, o))
    return links


def hidden_state_params(graph: Graph, op: Operator) -> tuple[Optional[Params], Optional[Params], Optional[Params]]:
    """The quantization of one LSTM op's hidden state where LiteRT and TFLite Micro read or write it:
    (state input 18, intermediate 4, output 0). Without intermediates, 4 counts as input 18's."""
    p18 = qparams(graph.tensors[op.inputs[lstm_shared.OUTPUT_STATE]])
    p4 = (qparams(graph.tensors[op.intermediates[lstm_shared.HIDDEN_INTERMEDIATE]])
          if len(op.intermediates) > lstm_shared.HIDDEN_INTERMEDIATE else p18)
    return p18, p4, qparams(graph.tensors[op.outputs[0]])


def hidden_groups(graph: Graph) -> list[tuple[set[int], list[int]]]:
    """Sets of tensors that must share one quantization, each with the LSTM ops whose hidden state
    (input 18, intermediate 4, output 0) is in it: the hidden-state tensors of an op, and every
    tensor byte-copied to or from them."""
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    lstm_ops = [op for op in graph.operators if op.opcode == lstm_shared.OPCODE]
    for op in lstm_ops:
        members = lstm_shared.hidden_state_tensors(op)
        for m in members[1:]:
            union(members[0], m)
    for a, b in copy_links(graph):
        union(a, b)
    groups: dict[int, tuple[set[int], list[int]]] = {}
    for op in lstm_ops:
        root = find(op.inputs[lstm_shared.OUTPUT_STATE])
        groups.setdefault(root, (set(), []))[1].append(op.index)
    for t in parent:
        root = find(t)
        if root in groups:
            groups[root][0].add(t)
    return list(groups.values())
