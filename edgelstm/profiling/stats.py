"""The model's totals for `edgelstm profile`: parameters, bytes, exact MACs and the least memory
its activations need; latency statistics of timed calls; the machine the numbers come from."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import lstm_shared as ls

if TYPE_CHECKING:
    from ..model import Model

# constant int32 inputs that are learned parameters (biases); other int32 constants are shapes,
# axes and indices
_BIAS_INPUTS = {"FULLY_CONNECTED": {2}, "CONV_2D": {2}, "DEPTHWISE_CONV_2D": {2}, ls.OPCODE: set(ls.GATE_BIASES)}


def model_stats(model: "Model", x: list[np.ndarray]) -> dict:
    """Parameters, bytes and exact MACs of one run on `x`, with the per-operator breakdown."""
    g = model.graph
    values = model.run_all_tensors(x)
    op_macs = model.op_macs(x)
    params: dict[int, int] = {}
    for op in g.operators:
        for pos, i in enumerate(op.inputs):
            t = g.tensors[i] if i >= 0 else None
            if t is None or t.data is None:
                continue
            if t.data.dtype.kind == "f" or t.data.dtype in (np.int8, np.int16) or \
                    pos in _BIAS_INPUTS.get(op.opcode, ()):
                params[i] = t.data.nbytes
    n_params = sum(g.tensors[i].data.size for i in params)
    activations = {i: v.nbytes for i, v in values.items() if g.tensors[i].data is None}
    ops = []
    for op, macs in zip(g.operators, op_macs):
        row = {"index": op.index, "name": f"{op.index}:{op.opcode}", "opcode": op.opcode, "macs": macs}
        if op.opcode == ls.OPCODE:
            xin = values[op.inputs[ls.INPUT]]
            time_major = bool(op.options.get("time_major"))
            row["timesteps"] = int(xin.shape[0] if time_major else xin.shape[1])
            row["units"] = int(values[op.outputs[0]].shape[-1])
        ops.append(row)
    return {
        "macs": int(sum(op_macs)),
        "parameters": int(n_params),
        "weight_bytes": int(sum(params.values())),
        "activation_bytes": int(sum(activations.values())),
        "peak_activation_bytes": _peak_live_bytes(model, activations),
        "ops": ops,
    }


def _peak_live_bytes(model: "Model", sizes: dict[int, int]) -> int:
    """Largest total size of the tensors alive at once, if each lives from its producer to its last
    reader (inputs and variables from the start, outputs and variables to the end): the least
    memory a planner that never splits tensors can give the activations."""
    g = model.graph
    n = len(g.operators)
    first = {i: 0 for i in sizes}
    last = {i: 0 for i in sizes}
    for op in g.operators:
        for i in op.outputs:
            if i in sizes:
                first[i] = op.index
                last[i] = max(last[i], op.index)
        for i in op.inputs:
            if i in sizes:
                last[i] = max(last[i], op.index)
    for i in list(g.outputs) + [t.index for t in g.tensors if t.is_variable]:
        if i in sizes:
            last[i] = n - 1
    return int(max((sum(s for i, s in sizes.items() if first[i] <= k <= last[i]) for k in range(n)), default=0))


def summarize(samples_us: Sequence[float], batch: int) -> dict:
    """Latency statistics of real timed calls; percentiles by linear interpolation (numpy's default)."""
    a = np.asarray(samples_us, dtype=np.float64)
    p50 = float(np.percentile(a, 50))
    return {
        "runs": int(a.size),
        "min_us": round(float(a.min()), 2),
        "p50_us": round(p50, 2),
        "p90_us": round(float(np.percentile(a, 90)), 2),
        "p99_us": round(float(np.percentile(a, 99)), 2),
        "max_us": round(float(a.max()), 2),
        "mean_us": round(float(a.mean()), 2),
        "throughput_seq_per_s": round(batch / (p50 * 1e-6), 1),
    }


def machine_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("edgelstm", "numpy", "numba", "ai-edge-litert", "tflite-runtime", "tflite-micro",
                 "tensorflow", "tf-keras"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "system": platform.platform(), "versions": versions}
