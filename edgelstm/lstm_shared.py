"""Where things are in TFLite's UNIDIRECTIONAL_SEQUENCE_LSTM op, written down once (as TFLite's
`lstm_shared.h`): the index of every input tensor, the intermediates, the gate order, and which
optional inputs make which LSTM variant.

Everything that looks inside an LSTM op (the kernels, lint, the graph rewrites, the converter's
repair, the firmware generator) reads the indices from here, never as bare numbers.
"""
from __future__ import annotations

from typing import Sequence

OPCODE = "UNIDIRECTIONAL_SEQUENCE_LSTM"

# -- input tensors ----------------------------------------------------------------------------
INPUT = 0
# input-to-gate weights, [n_cell, n_input]
INPUT_TO_INPUT_W, INPUT_TO_FORGET_W, INPUT_TO_CELL_W, INPUT_TO_OUTPUT_W = 1, 2, 3, 4
# recurrent (hidden-to-gate) weights, [n_cell, n_output]
RECURRENT_TO_INPUT_W, RECURRENT_TO_FORGET_W, RECURRENT_TO_CELL_W, RECURRENT_TO_OUTPUT_W = 5, 6, 7, 8
# peephole (cell-to-gate) weights, [n_cell]; absent unless the LSTM has peepholes
CELL_TO_INPUT_W, CELL_TO_FORGET_W, CELL_TO_OUTPUT_W = 9, 10, 11
# gate biases, [n_cell]
INPUT_GATE_BIAS, FORGET_GATE_BIAS, CELL_GATE_BIAS, OUTPUT_GATE_BIAS = 12, 13, 14, 15
# projection, [n_output, n_cell] and [n_output]
PROJECTION_W, PROJECTION_BIAS = 16, 17
# the state, as variable tensors: hidden [batch, n_output] (int8), cell [batch, n_cell] (int16)
OUTPUT_STATE, CELL_STATE = 18, 19
# layer-norm coefficients, [n_cell]
INPUT_LAYER_NORM, FORGET_LAYER_NORM, CELL_LAYER_NORM, OUTPUT_LAYER_NORM = 20, 21, 22, 23

N_INPUTS_WITHOUT_LAYER_NORM, N_INPUTS = 20, 24

# -- per gate, in the order the kernels fuse them (rows i, f, c, o) ----------------------------
GATES = "ifco"
INPUT_WEIGHTS = (INPUT_TO_INPUT_W, INPUT_TO_FORGET_W, INPUT_TO_CELL_W, INPUT_TO_OUTPUT_W)
RECURRENT_WEIGHTS = (RECURRENT_TO_INPUT_W, RECURRENT_TO_FORGET_W, RECURRENT_TO_CELL_W, RECURRENT_TO_OUTPUT_W)
GATE_BIASES = (INPUT_GATE_BIAS, FORGET_GATE_BIAS, CELL_GATE_BIAS, OUTPUT_GATE_BIAS)
PEEPHOLES = (CELL_TO_INPUT_W, CELL_TO_FORGET_W, CELL_TO_OUTPUT_W)
LAYER_NORMS = (INPUT_LAYER_NORM, FORGET_LAYER_NORM, CELL_LAYER_NORM, OUTPUT_LAYER_NORM)

# -- intermediates (the integer kernel's extra quantization parameters) ----------------------
# 0-3: the layer-norm outputs of the four gates; 4: the hidden state before it becomes the output.
N_INTERMEDIATES = 5
HIDDEN_INTERMEDIATE = 4


def present(inputs: Sequence[int], index: int) -> bool:
    """Whether optional input `index` is given (absent inputs are -1 or beyond the list)."""
    return index < len(inputs) and inputs[index] != -1


def variants(inputs: Sequence[int]) -> list[str]:
    """The LSTM variants an op's inputs select, by name; [] for the plain LSTM Keras produces."""
    out = []
    if not present(inputs, INPUT_TO_INPUT_W):
        out.append("CIFG (coupled input-forget gate)")
    if any(present(inputs, i) for i in PEEPHOLES):
        out.append("peephole connections")
    if present(inputs, PROJECTION_W) or present(inputs, PROJECTION_BIAS):
        out.append("projection")
    if any(present(inputs, i) for i in LAYER_NORMS):
        out.append("layer normalization")
    return out


def hidden_state_tensors(op) -> list[int]:
    """The tensors that carry the hidden state of one LSTM op and must agree on its quantization:
    the state input, the output and (if there is one) intermediate 4."""
    out = [op.inputs[OUTPUT_STATE], op.outputs[0]]
    if len(op.intermediates) > HIDDEN_INTERMEDIATE:
        out.append(op.intermediates[HIDDEN_INTERMEDIATE])
    return out
