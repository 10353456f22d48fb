"""`edgelstm lint`: hazards in any .tflite that make LiteRT, TFLite Micro or edgelstm compute wrong
numbers or refuse the model, each with its consequence on every runtime. Runtime side: reads the
flatbuffer only, never imports TensorFlow.

Where the consequences come from: shared/reference/litert_vs_tflm.md (cell scale, hidden-state
parameters, byte-copying ops), ecosystem_facts.md (unfused LSTMs, Flex) and edgelstm's own kernels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from . import lstm_shared
from .graph.checks import COPY_OPS, LITERT_CELL_EXPONENTS, copy_data_inputs, hidden_state_params, qparams
from .errors import ModelError
from .tflite_reader import Graph, model_bytes, read_model

LITERT, TFLM, EDGE, EDGE_TFLM = "LiteRT", "TFLite Micro", "edgelstm flavor=tflite", "edgelstm flavor=tflm"

# Of the byte-copying ops (graph.checks.COPY_OPS), what each runtime does when the parameters differ, where it refuses instead of copying
# (measured on zoo models with one output scale edited: CONCATENATION, MAX_POOL_2D, AVERAGE_POOL_2D,
# REDUCE_MAX, STRIDED_SLICE, REVERSE_V2; the others from edgelstm's kernels, which mirror LiteRT's
# Prepare checks). TFLite Micro copies STRIDED_SLICE and REVERSE_V2 unchanged.
_LITERT_REFUSES = {"CONCATENATION", "PACK", "UNPACK", "EXPAND_DIMS", "REDUCE_MAX", "REDUCE_MIN"}
_TFLM_REFUSES = {"CONCATENATION", "MAX_POOL_2D", "AVERAGE_POOL_2D", "REDUCE_MAX"}
_TFLM_COPIES = {"STRIDED_SLICE", "REVERSE_V2", "RESHAPE", "SQUEEZE"}
_EDGE_REFUSES = _LITERT_REFUSES | _TFLM_REFUSES
_EDGE_OPS = {"QUANTIZE", "DEQUANTIZE"}


@dataclass
class Hazard:
    code: str
    severity: str              # "error": wrong numbers or a refusal somewhere; "note": worth knowing
    message: str
    op: Optional[int] = None
    consequences: dict[str, str] = field(default_factory=dict)
    fix: str = ""

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "op": self.op, "message": self.message,
                "consequences": self.consequences, "fix": self.fix}


def _fmt(p: Optional[tuple[float, int]]) -> str:
    return "none" if p is None else f"(scale {p[0]:.6g}, zp {p[1]})"


def _subgraph_count(raw: bytes) -> int:
    import tflite

    return int(tflite.Model.GetRootAsModel(raw, 0).SubgraphsLength())


def _lstm_hazards(g: Graph, op) -> list[Hazard]:
    out: list[Hazard] = []
    x = g.tensors[op.inputs[0]]
    where = op.describe()
    if x.type_name == "FLOAT32":
        out.append(Hazard("hybrid_lstm", "error", f"{where} is a hybrid LSTM (float activations, int8 weights): "
                          "the model was converted without a representative dataset", op.index,
                          {LITERT: "runs its hybrid path (float activations)", TFLM: "runs its hybrid path",
                           EDGE: "refuses (integer kernels only)", EDGE_TFLM: "refuses"},
                          "convert with a representative dataset (edgelstm convert)"))
        return out
    if x.type_name == "INT16":
        out.append(Hazard("lstm_16x8", "error", f"{where} has int16 activations (16x8 quantization)", op.index,
                          {LITERT: "refuses: op version 5 is not registered", TFLM: "runs it",
                           EDGE: "refuses", EDGE_TFLM: "refuses"}, "convert to full int8 (8x8_16)"))
        return out
    bad_w, zp_w = [], []
    for k in (*lstm_shared.INPUT_WEIGHTS, *lstm_shared.RECURRENT_WEIGHTS):
        if op.inputs[k] == -1:
            continue
        w = g.tensors[op.inputs[k]]
        if w.type_name != "INT8" or w.quant is None or not w.quant.per_tensor:
            bad_w.append(k)
        elif w.quant.zp != 0:
            zp_w.append(k)
    if bad_w:
        out.append(Hazard("lstm_weights", "error", f"{where}: weight inputs {bad_w} are not int8 with one scale "
                          "per tensor", op.index, {LITERT: "not the layout its integer kernel is written for",
                                                   TFLM: "not the layout its integer kernel is written for",
                                                   EDGE: "refuses", EDGE_TFLM: "refuses"},
                          "convert with the stock full-int8 recipe"))
    if zp_w:
        out.append(Hazard("lstm_weight_zero_point", "error", f"{where}: weight inputs {zp_w} have nonzero zero "
                          "points", op.index, {LITERT: "ignores weight zero points (computes as if they were 0)",
                                               TFLM: "subtracts them", EDGE: "reproduces LiteRT",
                                               EDGE_TFLM: "reproduces TFLite Micro"},
                          "requantize the weights symmetrically"))
    if len(op.intermediates) != lstm_shared.N_INTERMEDIATES:
        out.append(Hazard("lstm_intermediates", "error", f"{where} has {len(op.intermediates)} intermediate "
                          f"tensors; the integer LSTM needs exactly {lstm_shared.N_INTERMEDIATES}", op.index,
                          {LITERT: "refuses the model at Prepare", TFLM: "ignores intermediates",
                           EDGE: "refuses", EDGE_TFLM: "refuses"}))
    for k, what in ((lstm_shared.OUTPUT_STATE, "output state"), (lstm_shared.CELL_STATE, "cell state")):
        if not g.tensors[op.inputs[k]].is_variable:
            out.append(Hazard("lstm_state", "error", f"{where}: the {what} (input {k}) is not a variable tensor",
                              op.index, {LITERT: "refuses the model (the state must be a variable)",
                                         TFLM: "not measured", EDGE: "refuses", EDGE_TFLM: "refuses"}))
    c = g.tensors[op.inputs[lstm_shared.CELL_STATE]]
    if c.type_name == "INT16" and c.quant is not None:
        s = c.quant.s
        exp = math.log2(s)
        if abs(exp - round(exp)) > 1e-3:
            out.append(Hazard("cell_scale", "error", f"{where}: cell-state scale {s:.6g} is not a power of two",
                              op.index, {LITERT: "refuses the model (Prepare needs an exact log2 of the scale)",
                                         TFLM: "rounds log2 of the scale and computes with that power of two",
                                         EDGE: "refuses, like LiteRT", EDGE_TFLM: "reproduces TFLite Micro"},
                              "use a power-of-two cell-state scale"))
        elif round(exp) not in LITERT_CELL_EXPONENTS:
            low = round(exp) < LITERT_CELL_EXPONENTS[0]
            out.append(Hazard(
                "cell_scale", "error",
                f"{where}: cell-state scale 2^{round(exp)} is {'below 2^-15' if low else 'above 2^-9'}: LiteRT's "
                "integer tanh handles only 0..6 integer bits and skips tanh(c) otherwise", op.index,
                {LITERT: "skips tanh(c) and computes h from the input gate: wrong h, typically saturated and a "
                         "constant model output",
                 TFLM: "correct (its tanh takes any power-of-two cell scale)",
                 EDGE: "reproduces LiteRT's wrong numbers (bit-exact with it)",
                 EDGE_TFLM: "correct, like TFLite Micro"},
                "raise the cell-state scale to 2^-15 (edgelstm convert does)" if low else
                "lower the cell-state scale to 2^-9"))
    p18, p4, pout = hidden_state_params(g, op)
    if not (p18 == p4 == pout):
        cons = {}
        if p4 != p18:
            cons[LITERT] = ("writes h with intermediate 4's parameters and reads it back with input 18's: the "
                            "recurrence is mis-scaled (tens of LSB off)")
        if p4 != pout:
            cons[LITERT] = (cons.get(LITERT, "") + ("; " if LITERT in cons else "")
                            + "its output holds h in intermediate 4's parameters but is labelled with the "
                              "output's, so the next op misreads it")
        cons.setdefault(LITERT, "correct")
        cons[TFLM] = ("consistent recurrence (input 18 throughout), but it copies h into an output labelled with "
                      "other parameters, so the next op misreads it" if p18 != pout else
                      "correct (it ignores intermediate 4)")
        cons[EDGE] = "reproduces LiteRT" + ("'s wrong numbers" if cons[LITERT] != "correct" else "")
        cons[EDGE_TFLM] = "reproduces TFLite Micro"
        out.append(Hazard("hidden_qparams", "error",
                          f"{where}: hidden-state quantization differs between input 18 {_fmt(p18)}, intermediate 4 "
                          f"{_fmt(p4)} and output 0 {_fmt(pout)}", op.index, cons,
                          "give all three one set of parameters covering the hidden range and 0 "
                          "(edgelstm convert does)"))
    return out


def lint_graph(g: Graph, subgraphs: int = 1) -> list[Hazard]:
    hazards: list[Hazard] = []
    opcodes = [op.opcode for op in g.operators]
    has_int8 = any(t.type_name == "INT8" and not t.is_constant for t in g.tensors)
    refuse_all = {EDGE: "refuses the model (no kernel for it)", EDGE_TFLM: "refuses the model"}
    if "WHILE" in opcodes or subgraphs > 1:
        hazards.append(Hazard("not_fused", "error",
                              f"the model has {'a WHILE loop' if 'WHILE' in opcodes else f'{subgraphs} subgraphs'}: an "
                              "LSTM the converter did not fuse into UNIDIRECTIONAL_SEQUENCE_LSTM (Keras 3 LSTM, "
                              "masking, return_state...)", opcodes.index("WHILE") if "WHILE" in opcodes else None,
                              {LITERT: "runs the loop one time step per iteration, in float (the int8 converter "
                                       "crashes on such LSTMs)",
                               TFLM: "runs it if the loop uses only builtin ops; refuses tensor-list (Flex) loops",
                               **refuse_all},
                              "convert a tf_keras LSTM with edgelstm convert"))
    if "LSTM" in opcodes:
        hazards.append(Hazard("not_fused", "error", "the model uses the non-sequence LSTM op",
                              opcodes.index("LSTM"), {LITERT: "runs it", TFLM: "has no kernel: refuses", **refuse_all}))
    for op in g.operators:
        if op.opcode.startswith("CUSTOM:Flex"):
            hazards.append(Hazard("flex_op", "error", f"{op.describe()} is a TensorFlow (Flex) op: the converter "
                                  "fell back to TensorFlow kernels", op.index,
                                  {LITERT: "refuses: 'Regular TensorFlow ops are not supported by this "
                                           "interpreter' (ai-edge-litert has no Flex delegate)",
                                   TFLM: "refuses (no registration for CUSTOM)", **refuse_all},
                                  "remove what needed SELECT_TF_OPS (see edgelstm convert's preflight)"))
        elif op.opcode.startswith("CUSTOM:"):
            hazards.append(Hazard("custom_op", "error", f"{op.describe()} is a custom op", op.index,
                                  {LITERT: "refuses unless its kernel is registered", TFLM: "likewise", **refuse_all}))
        elif op.opcode == lstm_shared.OPCODE:
            hazards.extend(_lstm_hazards(g, op))
        elif op.opcode not in _EDGE_OPS and has_int8:
            floats = [i for i in (*op.inputs, *op.outputs) if i != -1 and g.tensors[i].type_name == "FLOAT32"
                      and not g.tensors[i].is_constant]
            if floats:
                hazards.append(Hazard("float_op", "error", f"{op.describe()} computes in float32 inside an int8 "
                                      f"model ({g.tensors[floats[0]].describe()})", op.index,
                                      {LITERT: "runs it in float (not integer-only)",
                                       TFLM: "runs it only if it has a float kernel for the op", **refuse_all},
                                      "convert with supported_ops = [TFLITE_BUILTINS_INT8]"))
        if op.opcode in COPY_OPS:
            ps = {qparams(g.tensors[t]) for t in (*copy_data_inputs(op), *op.outputs)
                  if g.tensors[t].type_name == "INT8"}
            if len(ps) > 1:
                kind = op.opcode
                misread = "copies the int8 values unchanged, so the next op reads them with other parameters"
                hazards.append(Hazard("copy_requant", "error",
                                      f"{op.describe()} moves raw int8 values but its inputs and outputs carry "
                                      f"different quantization: {', '.join(_fmt(p) for p in sorted(ps, key=str))}",
                                      op.index,
                                      {LITERT: "refuses the model" if kind in _LITERT_REFUSES else misread,
                                       TFLM: "refuses the model" if kind in _TFLM_REFUSES else misread
                                       if kind in _TFLM_COPIES else "copies or refuses (not measured)",
                                       EDGE: "refuses" if kind in _EDGE_REFUSES else "reproduces LiteRT",
                                       EDGE_TFLM: "refuses" if kind in _EDGE_REFUSES else "reproduces TFLite Micro"},
                                      "give the op's inputs and outputs one set of parameters (edgelstm convert does "
                                      "for the LSTM hidden state)"))
        if op.opcode == "SUM" and any(g.tensors[i].type_name == "INT8" for i in op.inputs if i != -1):
            hazards.append(Hazard("int8_sum", "error", f"{op.describe()} sums int8 values", op.index,
                                  {LITERT: "its reference kernel treats int8 as uint8: wrong for negative values",
                                   TFLM: "correct", EDGE: "refuses (no correct reference)", EDGE_TFLM: "correct"},
                                  "use a MEAN (GlobalAveragePooling) or a Dense layer instead"))
    if not has_int8 and not any(t.type_name == "INT16" for t in g.tensors if not t.is_constant):
        hazards.append(Hazard("float_model", "error", "the model is not quantized (float32 activations)", None,
                              {LITERT: "runs it in float", TFLM: "runs it with float kernels where it has them",
                               **refuse_all}, "convert to full int8 with a representative dataset (edgelstm convert)"))
    dynamic = [g.tensors[i] for i in g.inputs if -1 in g.tensors[i].shape_signature]
    for t in dynamic:
        hazards.append(Hazard("dynamic_shape", "note", f"model input {t.describe()} has a dynamic dimension",
                              None, {LITERT: "resizes it per call", TFLM: "cannot resize: runs only the stored shape "
                                     f"{list(t.shape)}", EDGE: "resizes like LiteRT", EDGE_TFLM: "the stored shape, like TFLite Micro"}))
    return hazards


def lint(source: Union[str, Path, bytes]) -> list[Hazard]:
    """Every hazard in a .tflite model (a path or bytes). ModelError if it cannot be read at all."""
    raw = model_bytes(source)
    g = read_model(raw)
    hazards = lint_graph(g, _subgraph_count(raw))
    return hazards + flavor_refusals(g, {h.op for h in hazards if h.op is not None})


def flavor_refusals(g: Graph, known_ops: set[int]) -> list[Hazard]:
    """What each registered edgelstm flavour refuses to prepare, where no hazard above explains it
    already: a flavour refuses exactly what its interpreter cannot run (or runs wrongly), so this
    also covers flavours added after this module was written."""
    from .ops import flavors  # the kernels import Numba; lint's own checks do not need them

    out = []
    for fl in flavors():
        graph = fl.prepare_graph(g)
        for op in graph.operators:
            try:
                fl.build(op, graph)
            except ModelError as exc:
                if op.index not in known_ops:
                    out.append(Hazard("flavor_refuses", "error", str(exc), op.index,
                                      {f"edgelstm flavor={fl.name}": "refuses the model"}))
                break
    return out


def render(path: str, hazards: list[Hazard]) -> str:
    errors = [h for h in hazards if h.severity == "error"]
    lines = [f"{path}: {len(errors)} hazard{'s' if len(errors) != 1 else ''}"
             + (f", {len(hazards) - len(errors)} note(s)" if len(hazards) > len(errors) else "")]
    for h in hazards:
        lines.append(f"  [{h.severity}] {h.code}: {h.message}")
        for runtime, what in h.consequences.items():
            lines.append(f"      {runtime:<24} {what}")
        if h.fix:
            lines.append(f"      fix: {h.fix}")
    if not hazards:
        lines[0] = f"{path}: no hazards found"
    return "\n".join(lines)
