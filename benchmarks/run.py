"""The benchmark suite: edgelstm vs LiteRT (int8 and float32) vs TFLite Micro vs Keras float.

    python benchmarks/run.py                  # full grid; rewrites results.json and the README table
    python benchmarks/run.py --grid small     # one small model, quick (what CI runs)

Each grid point is an LSTM stack (depth layers of H units, return_sequences between them) + Dense(4)
on T timesteps of 6 features, at a fixed batch B, converted once with the stock recipe (cached under
~/.cache/edgelstm/bench). Every runtime processes the same B sequences per call, from a fresh state,
one thread. All ratios compare numbers measured in the same run on the same machine: the runtimes
take turns in blocks of `--block` calls (this VM's speed drifts by up to 2x within minutes; blocks
rather than single alternating calls keep each runtime's caches as warm as in real use), latency is
the median of block medians and each ratio the median of per-round ratios.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
F, OUT = 6, 4
CACHE = Path(os.environ.get("EDGELSTM_BENCH_CACHE", Path.home() / ".cache" / "edgelstm" / "bench"))


@dataclass(frozen=True)
class Point:
    hidden: int
    timesteps: int = 100
    depth: int = 1
    batch: int = 1

    @property
    def key(self) -> str:
        return f"h{self.hidden}-t{self.timesteps}-d{self.depth}-b{self.batch}"


GRIDS = {
    # hidden size at the reference shape, then one axis at a time around H=64
    "full": [Point(h) for h in (16, 32, 64, 128, 256)]
    + [Point(64, timesteps=t) for t in (25, 400)]
    + [Point(64, depth=d) for d in (2, 3)]
    + [Point(64, batch=b) for b in (4, 16)],
    "small": [Point(16, timesteps=20)],
}


def _builder_source() -> str:
    """What the cached models depend on: the builder, the conversion recipe (edgelstm/convert/stock.py)
    and the versions that convert (a change to any of them must not reuse stale models)."""
    import inspect
    from importlib import metadata

    recipe = (Path(__file__).resolve().parent.parent / "edgelstm" / "convert" / "stock.py").read_text()
    versions = []
    for dist in ("tensorflow", "tensorflow-cpu", "tf-keras", "numpy"):
        try:
            versions.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} absent")
    return "\n".join([inspect.getsource(build_models), recipe, *versions])


def build_models(p: Point) -> dict[str, Path]:
    """int8 .tflite, float32 .tflite and the float .keras of one grid point (built once, cached)."""
    tag = hashlib.sha256(_builder_source().encode()).hexdigest()[:8]
    paths = {k: CACHE / f"{p.key}-{tag}.{ext}" for k, ext in
             (("int8", "int8.tflite"), ("f32", "f32.tflite"), ("keras", "keras"))}
    if all(v.exists() for v in paths.values()):
        return paths
    from edgelstm.convert import convert_int8, keras_module

    K = keras_module()
    import tensorflow as tf

    K.utils.set_random_seed(p.hidden * 1000 + p.depth)
    x = K.Input((p.timesteps, F), batch_size=p.batch)
    h = x
    for layer in range(p.depth):
        h = K.layers.LSTM(p.hidden, return_sequences=layer < p.depth - 1)(h)
    m = K.Model(x, K.layers.Dense(OUT)(h))
    rng = np.random.default_rng(p.hidden)
    # fresh layers have zero biases, which the converter drops; trained models have biases
    m.set_weights([w + rng.normal(scale=0.1, size=w.shape).astype(w.dtype) if w.ndim == 1 else w
                   for w in m.get_weights()])
    calib = rng.normal(size=(16, p.batch, p.timesteps, F)).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    paths["int8"].write_bytes(convert_int8(m, calib))
    paths["f32"].write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    m.save(paths["keras"])
    return paths


def interleaved_us(fns: list, runs: int, block: int, warmup: int = 5) -> np.ndarray:
    """[rounds, len(fns)] per-call µs: each entry one function's median over `block` consecutive
    calls; the functions take turns block by block."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    rounds = max(runs // block, 1)
    out = np.empty((rounds, len(fns)))
    ts = np.empty(block)
    clock = time.perf_counter
    for i in range(rounds):
        for j, fn in enumerate(fns):
            for b in range(block):
                t0 = clock()
                fn()
                ts[b] = clock() - t0
            out[i, j] = np.median(ts)
    return out * 1e6


_START_SNIPPET = """
import sys, time
t0 = time.perf_counter()
import numpy as np, edgelstm
m = edgelstm.load(sys.argv[1])
m.run(np.zeros(m.inputs[0].shape, np.int8))
print(time.perf_counter() - t0)
"""


def start_time_s(model_path: Path, numba_cache: str) -> float:
    """A new process: import edgelstm, load, first output (JIT compile or cache load included)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache)
    out = subprocess.run([sys.executable, "-c", _START_SNIPPET, str(model_path)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(p: Point, runs: int, block: int, start_times: bool) -> dict:
    from edgelstm import load
    from edgelstm.profiling.backends import (EdgeLSTMRunner, InterpreterRunner, KerasRunner, TFLMRunner,
                                             dequantize_for_keras, missing)

    paths = build_models(p)
    m8, m32 = paths["int8"].read_bytes(), paths["f32"].read_bytes()
    model = load(m8)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=model.inputs[0].shape, dtype=np.int8)
    batch8 = [[x]]
    xf = dequantize_for_keras(m8, batch8)
    runners = {"edgelstm": EdgeLSTMRunner(m8, batch8, threads=1)}
    from ai_edge_litert.interpreter import Interpreter

    runners["litert_int8"] = InterpreterRunner("litert", Interpreter, m8, batch8, threads=1)
    runners["litert_f32"] = InterpreterRunner("litert", Interpreter, m32, [[xf]], threads=1)
    skipped = {}
    if missing("tflm") is None:
        runners["tflm_int8"] = TFLMRunner(m8, batch8)
    else:
        skipped["tflm_int8"] = missing("tflm")
    runners["keras_f32"] = KerasRunner(paths["keras"], xf, threads=1)
    names = list(runners)
    ts = interleaved_us([runners[n] for n in names], runs, block)
    med = {n: float(v) for n, v in zip(names, np.median(ts, axis=0))}
    ours = ts[:, 0]
    macs = model.macs(x)
    row = {**asdict(p), "macs": macs,
           "us": {n: round(v, 1) for n, v in med.items()},
           "ratio": {n: round(float(np.median(ts[:, j] / ours)), 2) for j, n in enumerate(names) if j},
           "gmacs": round(macs / med["edgelstm"] / 1e3, 2), "skipped": skipped}
    if start_times:
        with tempfile.TemporaryDirectory() as numba_cache:
            row["cold_start_s"] = round(start_time_s(paths["int8"], numba_cache), 2)
            row["warm_start_s"] = round(start_time_s(paths["int8"], numba_cache), 2)
    return row


def machine_info(runs: int, block: int) -> dict:
    from edgelstm.profiling import machine_info as info

    d = info()
    d["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    d["setup"] = (f"LSTM stack + Dense({OUT}), F={F}, one thread, state reset per sequence, {runs} calls per "
                  f"runtime in blocks of {block} taken in turns; latency = median of block medians, "
                  "ratio = median of per-round ratios (runtime / edgelstm)")
    return d


COLUMNS = [("litert_int8", "LiteRT int8"), ("litert_f32", "LiteRT f32"), ("tflm_int8", "TFLM int8"),
           ("keras_f32", "Keras f32")]


def render_table(info: dict, rows: list[dict]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    lines = [f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores), Python {info['python']}, "
             f"{versions}.", f"Setup: {info['setup']}.", "",
             "| H | T | depth | batch | MACs | edgelstm µs | " + " | ".join(f"{t} µs" for _, t in COLUMNS)
             + " | " + " | ".join(f"{t} / edgelstm" for _, t in COLUMNS) + " | GMAC/s | cold start s | warm start s |",
             "|" + "---|" * (6 + 2 * len(COLUMNS) + 3)]
    for r in rows:
        us = [f"{r['us'][k]:,}" if k in r["us"] else "-" for k, _ in COLUMNS]
        ratio = [f"{r['ratio'][k]}x" if k in r["ratio"] else "-" for k, _ in COLUMNS]
        lines.append(f"| {r['hidden']} | {r['timesteps']} | {r['depth']} | {r['batch']} | {r['macs']:,} | "
                     f"{r['us']['edgelstm']:,} | " + " | ".join(us) + " | " + " | ".join(ratio)
                     + f" | {r['gmacs']} | {r.get('cold_start_s', '-')} | {r.get('warm_start_s', '-')} |")
    return "\n".join(lines)


def update_readme(table: str, readme: Path = HERE / "README.md") -> None:
    text = readme.read_text() if readme.exists() else ""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start in text and end in text:
        text = text[:text.index(start) + len(start)] + "\n" + table + "\n" + text[text.index(end):]
    else:
        text += f"\n{start}\n{table}\n{end}\n"
    readme.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", choices=sorted(GRIDS), default="full")
    ap.add_argument("--runs", type=int, default=300, help="timed calls per runtime and grid point")
    ap.add_argument("--block", type=int, default=20, help="consecutive calls per turn")
    ap.add_argument("--no-start-times", action="store_true", help="skip the cold/warm start measurement")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite the table in benchmarks/README.md")
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgelstm.convert import keras_module
    from edgelstm.profiling.backends import set_tf_threads

    keras_module()
    set_tf_threads(1)  # before the converter starts TensorFlow: Keras is timed on one thread like the rest
    grid = GRIDS[args.grid]
    rows = []
    for k, p in enumerate(grid, 1):
        print(f"[{k}/{len(grid)}] {p.key}", file=sys.stderr, flush=True)
        row = measure(p, args.runs, args.block, not args.no_start_times)
        rows.append(row)
        print(json.dumps(row), flush=True)
    info = machine_info(args.runs, args.block)
    Path(args.out).write_text(json.dumps({"machine": info, "grid": args.grid, "rows": rows}, indent=2))
    table = render_table(info, rows)
    print(table)
    if not args.no_readme:
        update_readme(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
