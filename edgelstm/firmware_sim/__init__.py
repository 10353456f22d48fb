"""`edgelstm firmware`: what a model becomes on a microcontroller, proven bit-exact in an emulated
Cortex-M.

From the .tflite alone it writes, under one output directory:

- tflm/      the TFLite Micro deployment kit: the flatbuffer as an aligned const C array, the op
             resolver with exactly the model's ops, the tensor arena measured by TFLite Micro itself;
- lib/       a standalone C99 int8 inference library generated for the model (codegen.py): the
             C kernels of c/ plus model.c with the weights and every prepared parameter, no malloc,
             no floating point, one static arena; model_run (whole sequence) and model_step
             (one timestep, state kept);
- test/      a test program that runs the inputs and prints the outputs;
- build/     the host build and the Cortex-M ELF (build.py);
- outputs.npy, report.json.

It then proves the library: the host build, the target build run in qemu-system-arm on the
matching board (emulate.py), edgelstm's tflm flavour and the real TFLite Micro interpreter must
all give the same outputs, and model_step must reproduce model_run. The report adds flash and RAM
from the ELF, instructions counted in the emulator, and a latency model (report.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import EdgeLSTMError, InputError
from ..model import Model, load
from ..tflite_reader import model_bytes
from .build import TARGETS

__all__ = ["firmware", "TARGETS"]

DEFAULT_TARGET = "cortex-m4"


def default_inputs(model: Model, n_random: int = 3, seed: int = 0) -> list[list[np.ndarray]]:
    """Random inputs over the full range, then all-min, all-max and all-zero-point (float inputs:
    normal values, then -4, 4 and 0); one array per model input in each sample."""
    rng = np.random.default_rng(seed)
    samples: list[list[np.ndarray]] = [[] for _ in range(n_random + 3)]
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


def _load_inputs(path: Union[str, Path], model: Model) -> list[list[np.ndarray]]:
    from ..verify import load_inputs

    batches, _ = load_inputs(path, model)
    for xs in batches:
        model.check_inputs(xs)  # TFLite Micro's static shapes: a dynamic axis is pinned
    return batches


def _as_list(y) -> list[np.ndarray]:
    return [np.asarray(a) for a in y] if isinstance(y, (list, tuple)) else [np.asarray(y)]


def firmware(model: Union[str, Path, bytes], target: Optional[str] = DEFAULT_TARGET, out: Union[str, Path] = "firmware_out",
             inputs: Optional[Union[str, Path, list]] = None, emulate: bool = True,
             clock_mhz: Optional[float] = None, reference: bool = True) -> dict:
    """Generate, build and prove the firmware for `model`; returns the report (also written to
    OUT/report.json). target=None builds and checks on the host only. `inputs`: a .npy path, or a
    list of samples (an array, or a list with one array per model input)."""
    from . import build, codegen, emulate as emu, kit, report

    if target is not None and target not in TARGETS:
        raise EdgeLSTMError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    data = model_bytes(model)
    m = load(data, flavor="tflm")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lib = codegen.generate(m)
    if inputs is None:
        samples = default_inputs(m)
    elif isinstance(inputs, (str, Path)):
        samples = _load_inputs(inputs, m)
    else:
        samples = [m.check_inputs(x) for x in inputs]
    if not samples:
        raise InputError("no inputs to run")

    # the int8 tensors the library sees; float boundary ops run here with the tflm flavour's kernels
    kernels = {k.op.index: k for k in m._kernels}

    def to_device(xs: list[np.ndarray]) -> list[np.ndarray]:
        return [np.ascontiguousarray(x if s.boundary_op is None else kernels[s.boundary_op].run([x])[0]).astype(np.int8)
                for s, x in zip(lib.inputs, xs)]

    def from_device(flat: np.ndarray) -> list[np.ndarray]:
        """One printed line (every output, flat, concatenated) -> the model's outputs."""
        sizes = [s.size for s in lib.outputs]
        if flat.size != sum(sizes):
            raise EdgeLSTMError(f"the device printed {flat.size} output values, expected {sum(sizes)}")
        ys, pos = [], 0
        for s, n in zip(lib.outputs, sizes):
            y = flat[pos:pos + n].reshape(s.shape)
            pos += n
            ys.append(y if s.boundary_op is None else kernels[s.boundary_op].run([y])[0])
        return ys

    dev_in = [to_device(xs) for xs in samples]
    flavor_out = [_as_list(m.run(xs)) for xs in samples]  # state reset per sample
    ref_out = None
    if reference:
        from ..references import get_reference

        ref = get_reference("tflm", data)
        ref_out = [_as_list(ref.run(xs, reset=True)) for xs in samples]

    build.write_library(lib, out)
    build.write_test_program(lib, dev_in, out)
    tflm_kit = kit.write_kit(data, m.graph, samples[0], out)

    checks: dict[str, dict] = {}

    def compare(name: str, got: list[list[np.ndarray]], want: list[list[np.ndarray]]) -> None:
        n = differing = 0
        for g_s, w_s in zip(got, want):
            for a, b in zip(g_s, w_s):
                n += b.size
                differing += int(np.count_nonzero(a != b)) if a.shape == b.shape else b.size
        n_want = sum(b.size for w_s in want for b in w_s)
        if len(got) != len(want):
            differing += n_want - n
            n = n_want
        checks[name] = {"equal": differing == 0, "elements": n, "differing": differing}

    if ref_out is not None:
        compare("tflm flavour vs TFLite Micro", flavor_out, ref_out)

    host = emu.run_host(build.build_host(out))
    host_out = [from_device(r) for r in host.runs]
    compare("host C vs tflm flavour", host_out, flavor_out)
    if ref_out is not None and target is None:
        compare("host C vs TFLite Micro", host_out, ref_out)
    step = _check_steps(lib, host, "host")

    def io_info(s) -> dict:
        return {"shape": list(s.shape), "scale": s.scale, "zero_point": s.zero_point, "float_boundary_op": s.boundary_op}

    rep: dict = {"model": str(model) if not isinstance(model, bytes) else "<bytes>", "out": str(out),
                 "library": {"arena_bytes": lib.arena_bytes, "state_bytes": lib.state_bytes, "ops": lib.ops,
                             "kernels": lib.kernels, "flash_bytes": None,
                             "inputs": [io_info(s) for s in lib.inputs], "outputs": [io_info(s) for s in lib.outputs]},
                 "tflm_kit": {"ops": tflm_kit.ops, "arena_bytes": tflm_kit.arena_bytes,
                              "arena_recommended": tflm_kit.arena_recommended, "arena_error": tflm_kit.arena_error,
                              "files": tflm_kit.files},
                 "step": step, "target": None}
    device_out = host_out
    if target is not None:
        t = TARGETS[target]
        elf, archive = build.build_target(out, t)
        size = build.size_of(elf)
        floats = build.undefined_float_helpers(archive)
        if floats:
            raise EdgeLSTMError(f"internal: the library calls floating-point helpers {floats}")
        rep["library"].update(build.library_footprint(elf))
        if emulate:
            run = emu.run_qemu(elf, t, profile=True)
            device_out = [from_device(r) for r in run.runs]
            compare(f"{target} (qemu) vs tflm flavour", device_out, flavor_out)
            compare(f"{target} (qemu) vs host C", [[r] for r in run.runs], [[r] for r in host.runs])
            if ref_out is not None:
                compare(f"{target} (qemu) vs TFLite Micro", device_out, ref_out)
            rep["step"] = _check_steps(lib, run, target)
            rep["step"]["host_matches_run"] = step.get("matches_run")
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
            rep.update({
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
            })
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

    rep["comparison"] = {"samples": len(samples), "elements": int(sum(y.size for ys in flavor_out for y in ys)),
                         "differing": sum(c["differing"] for c in checks.values()), "checks": checks}
    # the device's outputs must equal both the tflm flavour's and the real interpreter's
    rep["outputs_match_tflm"] = bool(all(c["equal"] for c in checks.values()) and ref_out is not None)
    for j in range(len(lib.outputs)):
        name = "outputs.npy" if len(lib.outputs) == 1 else f"outputs{j}.npy"
        np.save(out / name, np.stack([ys[j] for ys in device_out]))
    (out / "report.json").write_text(json.dumps(rep, indent=2, default=_json_default))
    return rep


def _time_steps(lib) -> int:
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


def _check_steps(lib, run, where: str) -> dict:
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
