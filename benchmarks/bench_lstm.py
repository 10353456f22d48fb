"""edgelstm vs LiteRT on LSTM(H) + Dense(4), T=100, F=6, batch 1, one thread.

    python benchmarks/bench_lstm.py                 # full grid H = 16..256, updates README.md here
    python benchmarks/bench_lstm.py --hidden 16 32 --runs 50 --no-readme   # quick (CI)

Every ratio compares numbers measured in the same run on the same machine. Latencies are medians
of `--runs` timed calls after warm-up. Cold start = a new process with an empty Numba cache, from
`import edgelstm` to the first output (JIT compile included); warm start = a new process whose Numba
cache is already filled.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
T, F, OUT = 100, 6, 4


def build_models(hidden: int, cache: Path) -> tuple[bytes, bytes]:
    """(int8 model, float32 model) of LSTM(hidden) + Dense(4), converted once and cached."""
    p8, p32 = cache / f"lstm{hidden}_int8.tflite", cache / f"lstm{hidden}_f32.tflite"
    if not (p8.exists() and p32.exists()):
        from edgelstm.convert import convert_int8, keras_module

        K = keras_module()
        import tensorflow as tf

        tf.random.set_seed(hidden)
        x = K.Input((T, F), batch_size=1)
        m = K.Model(x, K.layers.Dense(OUT)(K.layers.LSTM(hidden)(x)))
        rng = np.random.default_rng(hidden)
        m.set_weights([w + rng.normal(scale=0.1, size=w.shape).astype(w.dtype) if w.ndim == 1 else w
                       for w in m.get_weights()])
        calib = rng.normal(size=(16, 1, T, F)).astype(np.float32)
        p8.write_bytes(convert_int8(m, calib))
        conv = tf.lite.TFLiteConverter.from_keras_model(m)
        p32.write_bytes(conv.convert())
    return p8.read_bytes(), p32.read_bytes()


def interleaved_us(fns: list, runs: int, block: int = 20, warmup: int = 5) -> np.ndarray:
    """Per-call times in µs, [rounds, len(fns)]: each entry is one function's median over a block
    of `block` consecutive calls, and the functions take turns block by block.

    Taking turns makes the ratios robust to this machine's speed drifting (shared cores: the same
    call moves by up to 2x within minutes). Blocks rather than single alternating calls keep each
    runtime's caches as warm as in real use; alternating call by call evicts edgelstm's 128 KiB
    activation tables and weights between calls and measured it up to 2.5x slower than it runs.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    rounds = max(runs // block, 1)
    out = np.empty((rounds, len(fns)))
    ts = np.empty(block)
    for i in range(rounds):
        for j, fn in enumerate(fns):
            for b in range(block):
                t0 = time.perf_counter()
                fn()
                ts[b] = time.perf_counter() - t0
            out[i, j] = np.median(ts)
    return out * 1e6


def litert_runner(model: bytes, x: np.ndarray):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)  # what users run: default resolver
    it.allocate_tensors()
    idx = it.get_input_details()[0]["index"]

    def run():
        it.reset_all_variables()
        it.set_tensor(idx, x)
        it.invoke()

    return run


_START_SNIPPET = """
import time, sys
t0 = time.perf_counter()
import numpy as np, edgelstm
m = edgelstm.load(sys.argv[1])
m.run(np.zeros(m.inputs[0].shape, np.int8))
print(time.perf_counter() - t0)
"""


def start_time_s(model_path: Path, cache_dir: str) -> float:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _START_SNIPPET, str(model_path)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--batch-sequences", type=int, default=64, help="sequences per run_batch call")
    ap.add_argument("--no-readme", action="store_true", help="do not rewrite benchmarks/README.md")
    ap.add_argument("--out", default=str(HERE / "results.json"))
    args = ap.parse_args()

    import edgelstm

    cache = Path(os.environ.get("EDGELSTM_BENCH_CACHE", Path.home() / ".cache" / "edgelstm" / "bench"))
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for h in args.hidden:
        m8, m32 = build_models(h, cache)
        model = edgelstm.load(m8)
        rng = np.random.default_rng(0)
        x = rng.integers(-128, 128, size=model.inputs[0].shape, dtype=np.int8)
        xf = rng.normal(size=model.inputs[0].shape).astype(np.float32)
        ts = interleaved_us([lambda: model.run(x), litert_runner(m8, x), litert_runner(m32, xf)], args.runs)
        ours, lit8, lit32 = (float(v) for v in np.median(ts, axis=0))
        ratio8 = float(np.median(ts[:, 1] / ts[:, 0]))
        ratio32 = float(np.median(ts[:, 2] / ts[:, 0]))
        xs = rng.integers(-128, 128, size=(args.batch_sequences, *x.shape), dtype=np.int8)
        model.run_batch(xs[:2])
        t0 = time.perf_counter()
        model.run_batch(xs)
        batch_s = time.perf_counter() - t0
        macs = model.macs(x)
        with tempfile.TemporaryDirectory() as numba_cache:
            path = cache / f"lstm{h}_int8.tflite"
            cold = start_time_s(path, numba_cache)
            warm = start_time_s(path, numba_cache)
        row = {"hidden": h, "macs": macs, "edgelstm_us": round(ours, 1), "litert_int8_us": round(lit8, 1),
               "litert_f32_us": round(lit32, 1), "speedup_vs_int8": round(ratio8, 2),
               "ratio_vs_f32": round(ratio32, 2), "gmacs": round(macs / ours / 1e3, 2),
               "batch_seq_per_s": round(args.batch_sequences / batch_s, 1),
               "cold_start_s": round(cold, 2), "warm_start_s": round(warm, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)

    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "machine": platform.machine(),
        "versions": {p: version(p) for p in ("edgelstm", "numpy", "numba", "ai-edge-litert")},
        "setup": f"LSTM(H)+Dense({OUT}), T={T}, F={F}, batch 1, one thread, {args.runs} calls each in blocks of "
                 "20 taken in turns; latency = median of block medians, ratio = median of per-round ratios; "
                 f"run_batch over {args.batch_sequences} sequences on {os.cpu_count()} cores",
    }
    Path(args.out).write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    table = render_table(info, rows)
    print(table)
    if not args.no_readme:
        update_readme(table)
    return 0


def render_table(info: dict, rows: list[dict]) -> str:
    lines = [f"Measured {info['date']} on {info['cpu']} ({info['cores']} cores), Python {info['python']}, "
             + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
             f"Setup: {info['setup']}.", "",
             "| H | MACs | edgelstm µs | LiteRT int8 µs | LiteRT f32 µs | vs int8 | vs f32 | GMAC/s "
             "| run_batch seq/s | cold start s | warm start s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['hidden']} | {r['macs']:,} | {r['edgelstm_us']:,} | {r['litert_int8_us']:,} | "
                     f"{r['litert_f32_us']:,} | {r['speedup_vs_int8']}x | {r['ratio_vs_f32']}x | {r['gmacs']} | "
                     f"{r['batch_seq_per_s']:,} | {r['cold_start_s']} | {r['warm_start_s']} |")
    return "\n".join(lines)


def update_readme(table: str) -> None:
    readme = HERE / "README.md"
    text = readme.read_text() if readme.exists() else ""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start in text and end in text:
        text = text[:text.index(start) + len(start)] + "\n" + table + "\n" + text[text.index(end):]
    else:
        text += f"\n{start}\n{table}\n{end}\n"
    readme.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
