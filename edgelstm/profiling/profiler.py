"""`profile()`: every backend measured in its own fresh process, edgelstm's time per operator, and
the microcontroller estimate from firmware_sim."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

import numpy as np

from ..errors import InputError
from .backends import BACKENDS, missing
from .child import command as child_command
from .stats import machine_info, model_stats, summarize

if TYPE_CHECKING:
    from ..model import Model

DEFAULT_BACKENDS = ("edgelstm", "litert", "tflite-runtime", "tflm", "keras")


def _inputs(model: "Model", inputs: Optional[list[list[np.ndarray]]], batch: int, seed: int,
            time_steps: int) -> list[list[np.ndarray]]:
    from ..verify import make_inputs

    if inputs:
        samples = [model.check_inputs(xs) for xs in inputs]
        shapes = {tuple(a.shape for a in s) for s in samples}
        if len(shapes) != 1:
            raise InputError("profiling needs inputs of one shape; got several: "
                             + ", ".join(str([list(a) for a in s]) for s in sorted(shapes)))
        return [samples[b % len(samples)] for b in range(batch)]
    # one random sample per seed: random over the full range, like real (not constant) data
    return [make_inputs(model, 1, seed + b, time_steps)[0] for b in range(batch)]


def _run_child(spec: dict, workdir: Path, progress: Optional[Callable[[str, int, int], None]]) -> dict:
    name = spec["backend"]
    spec_path = workdir / f"{name}.spec.json"
    result_path = workdir / f"{name}.result.json"
    spec["result"] = str(result_path)
    spec_path.write_text(json.dumps(spec))
    err_path = workdir / f"{name}.stderr"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"))
    with open(err_path, "w") as err:
        proc = subprocess.Popen(child_command(str(spec_path)),
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("@@progress") and progress is not None:
                    done, total = line.split()[1:3]
                    progress(name, int(done), int(total))
            proc.wait()
        except BaseException:
            proc.kill()
            raise
    if proc.returncode != 0 or not result_path.exists():
        tail = err_path.read_text(errors="replace").strip().splitlines()[-3:]
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        return {"error": f"the {name} process died ({how})" + (": " + " | ".join(tail) if tail else "")}
    return json.loads(result_path.read_text())


def profile(source: Union[str, Path, bytes], backends: Sequence[str] = DEFAULT_BACKENDS, runs: int = 200,
            warmup: int = 20, threads: int = 1, batch: int = 1, inputs: Optional[list[list[np.ndarray]]] = None,
            keras: Optional[Union[str, Path]] = None, seed: int = 0, time_steps: int = 50,
            op_runs: int = 50, mcu: Sequence[str] = ("cortex-m4",),
            progress: Optional[Callable[[str, int, int], None]] = None) -> dict:
    """Profile a .tflite model: latency per backend, time per edgelstm operator, model totals.

    `batch` sequences are processed per timed call (each from a fresh state); `inputs` are samples
    like `Model.run` takes (random over the full input range by default). Backends that are not
    installed, or cannot load the model, are listed under "skipped" with the reason. `mcu`: Cortex-M
    targets for the microcontroller estimate (firmware_sim: the generated C library run in QEMU,
    instructions counted, cycles modelled), when Arm GCC and QEMU are installed. Returns the report
    as a JSON-ready dict (the schema is in the README).
    """
    for name, value in (("runs", runs), ("batch", batch), ("threads", threads)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, got {value}")
    if warmup < 0 or op_runs < 0:
        raise InputError("warmup and op_runs cannot be negative")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise InputError(f"unknown backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    from ..model import load
    from ..tflite_reader import model_bytes

    data = model_bytes(source)
    model = load(data)
    batch_inputs = _inputs(model, inputs, batch, seed, time_steps)
    stats = model_stats(model, batch_inputs[0])
    keras_path = Path(keras) if keras else None
    if keras_path is None and isinstance(source, (str, Path)) and Path(source).with_suffix(".keras").exists():
        keras_path = Path(source).with_suffix(".keras")  # the pair `edgelstm train/convert` writes
    if keras_path is not None and not keras_path.exists():
        raise InputError(f"Keras model not found: {keras_path}")

    report: dict = {
        "model": str(source) if isinstance(source, (str, Path)) else "<bytes>",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine_info(),
        "settings": {"runs": runs, "warmup": warmup, "threads": threads, "batch": batch,
                     "input_shapes": [list(a.shape) for a in batch_inputs[0]], "op_runs": op_runs},
        **{k: v for k, v in stats.items() if k != "ops"},
        "backends": {}, "skipped": {}, "ops": [], "lstm_layers": [],
    }
    with tempfile.TemporaryDirectory(prefix="edgelstm-profile-") as tmp:
        workdir = Path(tmp)
        model_path = workdir / "model.tflite"
        model_path.write_bytes(data)
        np.savez(workdir / "inputs.npz", **{f"x{i}": np.stack([s[i] for s in batch_inputs])
                                            for i in range(len(batch_inputs[0]))})
        for name in backends:
            why = missing(name)
            if why is None and name == "keras" and keras_path is None:
                why = "needs the float model: pass --keras MODEL.keras"
            if why is not None:
                report["skipped"][name] = why
                continue
            spec = {"backend": name, "model": str(model_path), "inputs": str(workdir / "inputs.npz"),
                    "runs": runs, "warmup": warmup, "threads": threads,
                    "keras": str(keras_path) if keras_path else None,
                    "op_runs": op_runs if name == "edgelstm" else 0}
            res = _run_child(spec, workdir, progress)
            if "error" in res:
                report["skipped"][name] = res["error"]
                continue
            entry = {"version": res["version"], **summarize(res["samples_us"], batch),
                     "cold_start_ms": res["cold_start_ms"], "first_call_ms": res["first_call_ms"],
                     "import_and_load_ms": res["import_and_load_ms"],
                     "peak_rss_mb": res["peak_rss_mb"], "rss_before_load_mb": res["rss_before_load_mb"],
                     "samples_us": res["samples_us"]}
            report["backends"][name] = entry
            if "op_seconds" in res:
                report["ops"], report["lstm_layers"] = _op_rows(stats["ops"], res["op_seconds"])
        report["mcu"] = _mcu_estimates(data, batch_inputs[0], mcu, workdir)
    if "edgelstm" in report["backends"] and report["backends"]["edgelstm"]["p50_us"] > 0:
        report["gmacs_per_s"] = round(stats["macs"] * batch / (report["backends"]["edgelstm"]["p50_us"] * 1e3), 3)
    return report


def _mcu_estimates(data: bytes, sample: list[np.ndarray], targets: Sequence[str], workdir: Path) -> dict:
    """Per Cortex-M target: instructions counted in the emulator and the modelled latency at the
    target's stated clock, or why there is no estimate."""
    if not targets:
        return {}
    from ..errors import EdgeLSTMError
    from ..firmware_sim import TARGETS, firmware
    from ..firmware_sim.build import debian_install_hint, env_has_tools

    tools = env_has_tools()
    if not all(tools.values()):
        missing_tools = ", ".join(k for k, v in tools.items() if not v)
        return {t: {"unavailable": f"needs {missing_tools} ({debian_install_hint()})"} for t in targets}
    out = {}
    for t in targets:
        if t not in TARGETS:
            raise InputError(f"unknown MCU target {t!r}; choose from {', '.join(TARGETS)}")
        try:
            rep = firmware(data, target=t, out=workdir / f"fw-{t}", inputs=[sample], reference=False)
        except EdgeLSTMError as exc:
            out[t] = {"unavailable": str(exc)}
            continue
        lat = rep["latency"]
        out[t] = {"instructions_per_inference": rep["instructions_per_inference"],
                  "instructions_per_timestep": rep["instructions_per_timestep"],
                  "clock_mhz": lat["clock_mhz"], "latency_ms": lat["latency_ms"],
                  "latency_ms_low": lat["latency_ms_low"], "latency_ms_high": lat["latency_ms_high"],
                  "flash_bytes": rep["flash_bytes"], "ram_bytes": rep["ram_bytes"],
                  "outputs_match_tflm_flavour": bool(rep["comparison"]["differing"] == 0)}
    return out


def _op_rows(ops: list[dict], seconds: list[float]) -> tuple[list[dict], list[dict]]:
    total = float(sum(seconds))
    rows, layers = [], []
    for op, s in zip(ops, seconds):
        row = {**{k: v for k, v in op.items() if k not in ("timesteps", "units")},
               "time_us": round(s * 1e6, 3), "share": s / total if total > 0 else 0.0}
        rows.append(row)
        if "timesteps" in op:
            layers.append({"op_index": op["index"], "units": op["units"], "timesteps": op["timesteps"],
                           "time_us": round(s * 1e6, 3),
                           "per_timestep_us": round(s * 1e6 / op["timesteps"], 3),
                           "macs_per_timestep": op["macs"] // op["timesteps"]})
    return rows, layers
