"""`firmware()`: generate the library and the TFLite Micro kit for a model, build them, run them on
the host and in QEMU, and prove every output against the tflm flavour and TFLite Micro."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import EdgeLSTMError, InputError
from ..model import Model, load
from ..ops import OpKernel
from ..references import get_reference
from ..tflite_reader import model_bytes
from ..verify import load_inputs
from . import build, codegen, emulate as emu, kit, report
from .build import TARGETS
from .codegen import GeneratedLibrary

DEFAULT_TARGET = "cortex-m4"

Samples = list[list[np.ndarray]]  # per sample, one array per model input (or output)


def default_inputs(model: Model, n_random: int = 3, seed: int = 0) -> Samples:
    """Random inputs over the full range, then all-min, all-max and all-zero-point (float inputs:
    normal values, then -4, 4 and 0); one array per model input in each sample."""
    rng = np.random.default_rng(seed)
    samples: Samples = [[] for _ in range(n_random + 3)]
    for spec in model.inputs:
        shape = tuple(spec.shape)
        if spec.dtype == np.int8:
            zp = spec.quantization.zp if spec.quantization else 0
            xs = [rng.integers(-128, 128, size=shape, dtype=np.int8) for _ in range(n_random)]
            xs += [np.full(shape, v, np.int8) for v in (-128, 127, zp)]
        else:
            xs = [rng.normal(scale=1.5, size=shape).astype(spec.dtype) for _ in range(n_random)]
            xs += [np.full(shape, v, spec.dtype) for v in (-4.0, 4.0, 0.0)]
        for s, x in zip(samples, xs):
            s.append(x)
    return samples


def firmware(model: Union[str, Path, bytes], target: Optional[str] = DEFAULT_TARGET,
             out: Union[str, Path] = "firmware_out", inputs: Optional[Union[str, Path, list]] = None,
             emulate: bool = True, clock_mhz: Optional[float] = None, reference: bool = True) -> dict:
    """Generate, build and prove the firmware for `model`; returns the report (also written to
    OUT/report.json). target=None builds and checks on the host only. `inputs`: a .npy path, or a
    list of samples (an array, or a list with one array per model input)."""
    if target is not None and target not in TARGETS:
        raise EdgeLSTMError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    data = model_bytes(model)
    m = load(data, flavor="tflm")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lib = codegen.generate(m)
    samples = _samples(m, inputs)
    io = _DeviceIO(m, lib)

    flavor_out = [_as_list(m.run(xs)) for xs in samples]  # state reset per sample
    ref_out = None
    if reference:
        ref = get_reference("tflm", data)
        ref_out = [_as_list(ref.run(xs, reset=True)) for xs in samples]

    build.write_library(lib, out)
    build.write_test_program(lib, [io.to_device(xs) for xs in samples], out)
    tflm_kit = kit.write_kit(data, m.graph, samples[0], out)

    checks = _Checks()
    if ref_out is not None:
        checks.compare("tflm flavour vs TFLite Micro", flavor_out, ref_out)
    host = emu.run_host(build.build_host(out))
    host_out = [io.from_device(r) for r in host.runs]
    checks.compare("host C vs tflm flavour", host_out, flavor_out)
    if ref_out is not None and target is None:
        checks.compare("host C vs TFLite Micro", host_out, ref_out)

    rep: dict = {"model": str(model) if not isinstance(model, bytes) else "<bytes>", "out": str(out),
                 "library": _library_info(lib), "tflm_kit": _kit_info(tflm_kit),
                 "step": _check_steps(lib, host, "host"), "target": None}
    device_out = host_out
    if target is not None:
        elf, size = _build_target(lib, out, target, rep)
        if emulate:
            device_out = _emulate(m, lib, io, elf, size, target, samples, host, flavor_out, ref_out, checks,
                                  clock_mhz, rep)

    rep["comparison"] = {"samples": len(samples), "elements": int(sum(y.size for ys in flavor_out for y in ys)),
                         "differing": sum(c["differing"] for c in checks.results.values()), "checks": checks.results}
    # the device's outputs must equal both the tflm flavour's and the real interpreter's
    rep["outputs_match_tflm"] = bool(checks.all_equal() and ref_out is not None)
    for j in range(len(lib.outputs)):
        name = "outputs.npy" if len(lib.outputs) == 1 else f"outputs{j}.npy"
        np.save(out / name, np.stack([ys[j] for ys in device_out]))
    (out / "report.json").write_text(json.dumps(rep, indent=2, default=_json_default))
    return rep


# -- the steps ------------------------------------------------------------------------------------------
def _samples(m: Model, inputs: Optional[Union[str, Path, list]]) -> Samples:
    if inputs is None:
        samples = default_inputs(m)
    elif isinstance(inputs, (str, Path)):
        samples, _ = load_inputs(inputs, m)
        for xs in samples:
            m.check_inputs(xs)  # TFLite Micro's static shapes: a dynamic axis is pinned
    else:
        samples = [m.check_inputs(x) for x in inputs]
    if not samples:
        raise InputError("no inputs to run")
    return samples


class _DeviceIO:
    """The int8 tensors the library sees: a float model's boundary QUANTIZE / DEQUANTIZE ops run
    here, on the host, with the tflm flavour's kernels."""

    def __init__(self, m: Model, lib: GeneratedLibrary):
        self.lib = lib
        self.boundary: dict[int, OpKernel] = {
            s.boundary_op: m.kernels[s.boundary_op]
            for s in lib.inputs + lib.outputs if s.boundary_op is not None}

    def to_device(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.ascontiguousarray(x if s.boundary_op is None else self.boundary[s.boundary_op].run([x])[0])
                .astype(np.int8) for s, x in zip(self.lib.inputs, xs)]

    def from_device(self, flat: np.ndarray) -> list[np.ndarray]:
        """One printed line (every output, flat, concatenated) -> the model's outputs."""
        sizes = [s.size for s in self.lib.outputs]
        if flat.size != sum(sizes):
            raise EdgeLSTMError(f"the device printed {flat.size} output values, expected {sum(sizes)}")
        ys, pos = [], 0
        for s, n in zip(self.lib.outputs, sizes):
            y = flat[pos:pos + n].reshape(s.shape)
            pos += n
            ys.append(y if s.boundary_op is None else self.boundary[s.boundary_op].run([y])[0])
        return ys


class _Checks:
    """Named output comparisons: elements compared and how many differ."""

    def __init__(self) -> None:
        self.results: dict[str, dict] = {}

    def compare(self, name: str, got: Samples, want: Samples) -> None:
        n = differing = 0
        for g_s, w_s in zip(got, want):
            for a, b in zip(g_s, w_s):
                n += b.size
                differing += int(np.count_nonzero(a != b)) if a.shape == b.shape else b.size
        n_want = sum(b.size for w_s in want for b in w_s)
        if len(got) != len(want):
            differing += n_want - n
            n = n_want
        self.results[name] = {"equal": differing == 0, "elements": n, "differing": differing}

    def all_equal(self) -> bool:
        return all(c["equal"] for c in self.results.values())


def _library_info(lib: GeneratedLibrary) -> dict:
    def io_info(s: codegen.IOSpec) -> dict:
        return {"shape": list(s.shape), "scale": s.scale, "zero_point": s.zero_point,
                "float_boundary_op": s.boundary_op}

    return {"arena_bytes": lib.arena_bytes, "state_bytes": lib.state_bytes, "ops": lib.ops, "kernels": lib.kernels,
            "flash_bytes": None, "inputs": [io_info(s) for s in lib.inputs],
            "outputs": [io_info(s) for s in lib.outputs]}


def _kit_info(tflm_kit: kit.TFLMKit) -> dict:
    return {"ops": tflm_kit.ops, "arena_bytes": tflm_kit.arena_bytes, "arena_recommended": tflm_kit.arena_recommended,
            "arena_error": tflm_kit.arena_error, "files": tflm_kit.files}


def _build_target(lib: GeneratedLibrary, out: Path, target: str, rep: dict) -> tuple[Path, dict]:
    """The Cortex-M ELF and its section sizes; the library's footprint goes into the report."""
    elf, archive = build.build_target(out, TARGETS[target])
    size = build.size_of(elf)
    floats = build.undefined_float_helpers(archive)
    if floats:
        raise EdgeLSTMError(f"internal: the library calls floating-point helpers {floats}")
    rep["library"].update(build.library_footprint(elf))
    return elf, size


def _emulate(m: Model, lib: GeneratedLibrary, io: _DeviceIO, elf: Path, size: dict, target: str, samples: Samples,
             host: emu.DeviceRun, flavor_out: Samples, ref_out: Optional[Samples], checks: _Checks,
             clock_mhz: Optional[float], rep: dict) -> Samples:
    """Runs the ELF in QEMU, compares its outputs, and adds the measurements to the report;
    returns the device's outputs."""
    t = TARGETS[target]
    run = emu.run_qemu(elf, t, profile=True)
    device_out = [io.from_device(r) for r in run.runs]
    checks.compare(f"{target} (qemu) vs tflm flavour", device_out, flavor_out)
    checks.compare(f"{target} (qemu) vs host C", [[r] for r in run.runs], [[r] for r in host.runs])
    if ref_out is not None:
        checks.compare(f"{target} (qemu) vs TFLite Micro", device_out, ref_out)
    host_step = rep["step"]
    rep["step"] = _check_steps(lib, run, target)
    rep["step"]["host_matches_run"] = host_step.get("matches_run")
    rep.update(_measurements(m, lib, run, target, samples, size, clock_mhz))
    rep["target"] = {"name": target, "board": t.board, "machine": t.machine, "elf": str(elf),
                     "size": size, "stack_bytes": run.stack_bytes, "counter": run.counter,
                     "qemu_wall_s": round(run.wall_s, 3),
                     # where the instructions go, over the whole test program (every model_run
                     # and model_step call): functions above 1 %
                     "instructions_by_function": {k: v for k, v in run.profile.items()
                                                  if v >= 0.01 * sum(run.profile.values())},
                     "counting": "QEMU TCG plugin (c/target/elcount.c): exact per-instruction counts between "
                                 "marker functions, checked with a known loop"}
    if not run.counter["exact"]:
        raise EdgeLSTMError(f"the instruction counter failed its check: {run.counter}")
    return device_out


def _measurements(m: Model, lib: GeneratedLibrary, run: emu.DeviceRun, target: str, samples: Samples, size: dict,
                  clock_mhz: Optional[float]) -> dict:
    """Flash and RAM, instructions per inference and per timestep, and the modelled latency."""
    w = emu.measured_windows(run)
    n = len(samples)
    runs_w, steps_w = w[:n], w[n:]
    per_inf = runs_w[:, 0]
    mix = {c: float(runs_w[:, 1 + i].mean()) for i, c in enumerate(emu.CLASSES)}
    if lib.step.available and len(steps_w):
        per_step = int(round(float(steps_w[:, 0].mean())))
        step_source = "model_step calls"
    else:
        per_step = int(round(float(per_inf.mean()) / _time_steps(lib)))
        step_source = "model_run / timesteps"
    macs = int(m.macs(samples[0]))
    lat = report.latency(target, mix, clock_mhz)
    return {
        "flash_bytes": size["text"] + size["data"],
        "ram_bytes": size["data"] + size["bss"] + run.stack_bytes,
        "instructions_per_inference": int(round(float(per_inf.mean()))),
        "instructions_per_inference_min": int(per_inf.min()),
        "instructions_per_inference_max": int(per_inf.max()),
        "instructions_per_timestep": per_step,
        "instructions_per_timestep_source": step_source,
        "instruction_mix": {c: round(v) for c, v in mix.items()},
        "macs_per_inference": macs,
        "instructions_per_mac": round(float(per_inf.mean()) / macs, 2) if macs else None,
        "cycles_per_mac": round(lat["cycles"] / macs, 2) if macs else None,
        "latency": lat,
        "published": report.PUBLISHED,
    }


# -- helpers --------------------------------------------------------------------------------------------
def _as_list(y) -> list[np.ndarray]:
    return [np.asarray(a) for a in y] if isinstance(y, (list, tuple)) else [np.asarray(y)]


def _time_steps(lib: GeneratedLibrary) -> int:
    shape = lib.inputs[0].shape
    return max(shape[1] if len(shape) == 3 else 1, 1)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _check_steps(lib: GeneratedLibrary, run: emu.DeviceRun, where: str) -> dict:
    """model_step outputs against model_run: an output without time axis (a per-sequence head) after
    the last step, an output with one at every step, must equal the whole-sequence output."""
    st = lib.step
    if not st.available:
        return {"available": False, "reason": st.reason}
    n_t = st.time_steps
    sizes = [int(np.prod(s, dtype=np.int64)) for s in st.output_shapes]
    full_sizes = [s.size for s in lib.outputs]
    compared = differing = 0
    for k, y in enumerate(run.runs):
        parts_t = [run.steps.get((k, t)) for t in range(n_t)]
        pos = full_pos = 0
        for j, (axis, shape) in enumerate(zip(st.output_time_axes, st.output_shapes)):
            want = y[full_pos:full_pos + full_sizes[j]]
            if axis is None or n_t == 1:
                last = parts_t[-1]
                got = None if last is None else last[pos:pos + sizes[j]]
            elif any(p is None for p in parts_t):
                got = None
            else:
                got = np.concatenate([p[pos:pos + sizes[j]].reshape(shape) for p in parts_t], axis=axis).reshape(-1)
            compared += want.size
            differing += want.size if got is None or got.size != want.size else int(np.count_nonzero(got != want))
            pos += sizes[j]
            full_pos += full_sizes[j]
    return {"available": True, "time_steps": n_t, "output_time_axes": st.output_time_axes, "elements": compared,
            "differing": differing, "matches_run": differing == 0, "checked_on": where}
