"""One backend measured in a fresh process.

A fresh process per backend is what makes "cold start" and "peak memory" mean something: the
first call pays for imports, model loading and (for edgelstm) loading or compiling the JIT code,
and the process's peak resident memory belongs to that backend alone. It also keeps one runtime's
threads from disturbing another's timings.

Run as `command(spec_path)`. The spec (JSON) names the backend, the model, the inputs (.npz), runs, warm-up, threads, and where
to write the result. Progress goes to stdout as lines `@@progress DONE TOTAL`.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _rss_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process in MiB (Linux); None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float | None:
    hwm = _rss_mb("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
    except (ImportError, OSError):
        return None


def measure(spec: dict, t_start: float) -> dict:
    import numpy as np

    from .backends import make_runner

    with np.load(spec["inputs"], allow_pickle=False) as z:
        n_inputs = len([k for k in z.files if k.startswith("x")])
        arrays = [z[f"x{i}"] for i in range(n_inputs)]
    batch = [[a[b] for a in arrays] for b in range(arrays[0].shape[0])]
    rss_base = _rss_mb("VmRSS")
    model_bytes = Path(spec["model"]).read_bytes()

    t0 = time.perf_counter()
    runner = make_runner(spec["backend"], model_bytes, batch, spec["threads"], spec.get("keras"))
    t1 = time.perf_counter()
    runner()
    t2 = time.perf_counter()
    cold = {"import_and_load_ms": round((t1 - t_start) * 1e3, 2), "first_call_ms": round((t2 - t1) * 1e3, 2),
            "cold_start_ms": round((t2 - t_start) * 1e3, 2), "load_ms": round((t1 - t0) * 1e3, 2)}

    for _ in range(spec["warmup"]):
        runner()
    runs = spec["runs"]
    samples = np.empty(runs)
    step = max(runs // 50, 1)
    clock = time.perf_counter
    for i in range(runs):
        a = clock()
        runner()
        samples[i] = clock() - a
        if (i + 1) % step == 0 or i + 1 == runs:
            print(f"@@progress {i + 1} {runs}", flush=True)

    result = {"version": runner.version, "samples_us": [round(float(v) * 1e6, 3) for v in samples],
              **cold, "rss_before_load_mb": rss_base, "peak_rss_mb": _peak_rss_mb()}
    if spec["backend"] == "edgelstm" and spec.get("op_runs", 0) > 0:
        # per-operator time, measured apart from the latency runs so that the timer calls cannot
        # inflate the latency figures
        model = runner.model
        seconds = np.zeros(len(model.ops))
        for xs in batch:
            seconds += model.op_times(xs, runs=spec["op_runs"])
        result["op_seconds"] = [float(v) for v in seconds / (spec["op_runs"] * len(batch))]
    return result


def main(argv: list[str], t_start: float) -> int:
    """t_start: the clock when the process could first run Python (see `command`)."""
    spec = json.loads(Path(argv[0]).read_text())
    out = Path(spec["result"])
    try:
        result = measure(spec, t_start)
    except Exception as exc:  # reported to the parent as this backend's error, not a crash
        out.write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 0
    out.write_text(json.dumps(result))
    return 0


def command(spec_path: str) -> list[str]:
    """The child's command line. It reads the clock before importing anything of edgelstm, so that
    cold start covers every import a user's first call pays for (Numba's included)."""
    return [sys.executable, "-c",
            "import sys, time; t = time.perf_counter(); from edgelstm.profiling.child import main; "
            "sys.exit(main(sys.argv[1:], t))", spec_path]
