"""Running the test program: natively (host build) and in qemu-system-arm on the emulated board,
with Arm semihosting for its output and exit code, and instruction counting.

How instructions are counted (QEMU does not model cycles): a small TCG plugin (c/target/elcount.c,
built here with the host gcc against the plugin API QEMU exports) adds one to a counter for every
guest instruction executed, and snapshots the counters at the first instruction of the firmware's
two marker functions. Each measured call (`model_run`, `model_step`) sits between the markers, so
its window is an exact count of the instructions the core retired, split into loads, stores,
load/store-multiples, multiplies, divides, branches and the rest (from QEMU's disassembly). On
request the plugin also counts executions per address, which gives instructions per function. The count is checked, not
assumed: the firmware also runs a two-instruction loop 1000 and 3000 times through the same code,
and the two windows must differ by exactly 4000; the empty window (the markers alone) is
subtracted from every measurement.
"""
from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import EdgeLSTMError
from .build import C_DIR, CALIB_LONG, CALIB_SHORT, Target, symbols, tool

CLASSES = ("load", "store", "multi", "mul", "div", "branch", "other")
QEMU_TIMEOUT_S = 900.0


@dataclass
class DeviceRun:
    """What the test program printed, parsed."""

    runs: list[np.ndarray]  # flat int8 output per input, model_run
    steps: dict[tuple[int, int], np.ndarray]  # (sample, t) -> flat output of model_step
    stack_bytes: int
    windows: Optional[np.ndarray] = None  # [n, 1 + len(CLASSES)]: total, then per class
    stdout: str = ""
    wall_s: float = 0.0
    counter: dict = field(default_factory=dict)
    profile: dict = field(default_factory=dict)  # function -> instructions over the whole program


def parse_output(text: str, where: str) -> DeviceRun:
    if "EL-FAULT" in text:
        raise EdgeLSTMError(f"{where}: the firmware hit a fault handler")
    if "EL-BEGIN" not in text or "EL-END" not in text:
        raise EdgeLSTMError(f"{where}: the test program did not finish; its output was:\n{text[-2000:]}")
    runs, steps, stack = [], {}, 0
    for ln in text[text.index("EL-BEGIN"):text.index("EL-END")].splitlines():
        parts = ln.split()
        if not parts:
            continue
        if parts[0] == "run":
            runs.append(np.array([int(v) for v in parts[2:]], dtype=np.int8))
        elif parts[0] == "step":
            steps[(int(parts[1]), int(parts[2]))] = np.array([int(v) for v in parts[3:]], dtype=np.int8)
        elif parts[0] == "stack":
            stack = int(parts[1])
    return DeviceRun(runs, steps, stack, stdout=text)


def run_host(exe: Path) -> DeviceRun:
    res = subprocess.run([str(exe)], capture_output=True, text=True, timeout=QEMU_TIMEOUT_S)
    if res.returncode != 0:
        raise EdgeLSTMError(f"host test program exited with {res.returncode}: {res.stderr[-2000:]}")
    return parse_output(res.stdout, "host build")


def plugin(build_dir: Path) -> Path:
    """The instruction-counting plugin, compiled once per source version."""
    src = C_DIR / "target" / "elcount.c"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:12]
    so = build_dir / f"elcount-{digest}.so"
    if not so.exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        tmp = so.with_suffix(".tmp")
        res = subprocess.run([tool("gcc"), "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", str(src), "-o",
                              str(tmp)], capture_output=True, text=True)
        if res.returncode != 0:
            raise EdgeLSTMError(f"building the instruction-counting plugin failed: {res.stderr[-2000:]}")
        tmp.replace(so)
    return so


def qemu_command(elf: Path, t: Target, plugin_so: Optional[Path] = None, counts: Optional[Path] = None) -> list[str]:
    # semihosting output goes to its own chardev on stdout (by default QEMU writes it to stderr)
    cmd = [tool("qemu-system-arm"), "-M", t.machine, "-nographic", "-monitor", "none", "-serial", "none",
           "-chardev", "stdio,id=semihost", "-semihosting-config", "enable=on,target=native,chardev=semihost",
           "-kernel", str(elf)]
    if plugin_so is not None:
        syms = symbols(elf)
        cmd += ["-plugin", f"{plugin_so},begin={syms['el_mark_begin']:#x},end={syms['el_mark_end']:#x},out={counts}"]
    return cmd


def function_ranges(elf: Path) -> list[tuple[int, int, str]]:
    """(start, end, name) of every function in the ELF (Thumb bit cleared)."""
    text = subprocess.run([tool("arm-none-eabi-nm"), "-S", "--defined-only", str(elf)], capture_output=True,
                          text=True, check=True).stdout
    out = []
    for ln in text.splitlines():
        parts = ln.split()
        if len(parts) == 4 and parts[2] in "Tt":
            start = int(parts[0], 16) & ~1
            out.append((start, start + int(parts[1], 16), parts[3]))
    return sorted(out)


def run_qemu(elf: Path, t: Target, count: bool = True, profile: bool = False) -> DeviceRun:
    import time

    counts = elf.parent / "instruction_windows.txt"
    counts.unlink(missing_ok=True)
    so = plugin(elf.parent.parent / "plugin") if count else None
    cmd = qemu_command(elf, t, so, counts)
    prof_path = elf.parent / "instruction_profile.txt"
    funcs = []
    if count and profile:
        funcs = function_ranges(elf)
        prof_path.unlink(missing_ok=True)
        cmd[-1] += f",profile={prof_path},lo={funcs[0][0]:#x},hi={funcs[-1][1]:#x}"
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EdgeLSTMError(f"qemu ({t.machine}) did not finish within {QEMU_TIMEOUT_S:.0f} s") from None
    wall = time.perf_counter() - t0
    where = f"{t.name} in qemu ({t.machine})"
    if res.returncode != 0:
        raise EdgeLSTMError(f"{where}: exit status {res.returncode}; output:\n{(res.stdout + res.stderr)[-2000:]}")
    run = parse_output(res.stdout, where)
    run.wall_s = wall
    if count:
        if not counts.exists():
            raise EdgeLSTMError(f"{where}: the instruction-counting plugin wrote nothing ({res.stderr[-500:]})")
        rows = [ln.split() for ln in counts.read_text().splitlines() if ln.strip()]
        run.windows = np.array(rows, dtype=np.int64).reshape(-1, 1 + len(CLASSES))
        run.counter = check_counter(run.windows)
    if funcs and prof_path.exists():
        starts = [f[0] for f in funcs]
        per_func: dict[str, int] = {}
        for ln in prof_path.read_text().splitlines():
            addr, n = (int(v, 16) if i == 0 else int(v) for i, v in enumerate(ln.split()))
            k = int(np.searchsorted(starts, addr, side="right")) - 1
            name = funcs[k][2] if k >= 0 and addr < funcs[k][1] else "?"
            per_func[name] = per_func.get(name, 0) + n
        run.profile = dict(sorted(per_func.items(), key=lambda kv: -kv[1]))
    return run


def check_counter(windows: np.ndarray) -> dict:
    """The calibration windows: [empty, loop CALIB_SHORT, loop CALIB_LONG, ...]."""
    if len(windows) < 3:
        raise EdgeLSTMError("the firmware recorded fewer than the 3 calibration windows")
    expected = 2 * (CALIB_LONG - CALIB_SHORT)
    measured = int(windows[2, 0] - windows[1, 0])
    return {"marker_overhead": int(windows[0, 0]), "loop_delta_expected": expected, "loop_delta_measured": measured,
            "exact": measured == expected}


def measured_windows(run: DeviceRun) -> np.ndarray:
    """The windows of the model calls, with the markers' own instructions taken off."""
    w = run.windows[3:].copy()
    w[:, 0] -= run.windows[0, 0]
    # the markers' instructions are a return and a call: take them off the branch/other classes
    overhead = run.windows[0, 1:]
    w[:, 1:] -= overhead
    return w
