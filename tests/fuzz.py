"""Fuzzing edgelstm with broken .tflite files: nothing may crash, hang, or raise a foreign exception.

    python tests/fuzz.py --cases 10000 --seed 1 --json fuzz_result.json     # a long run
    python tests/fuzz.py --replay 1:4711                                     # one case, in this process

Each case takes a valid model (zoo models, converted by the real converter) and mutates it: byte
flips, truncation, byte splices, or one structure-aware edit through the schema's object API
(shapes and signatures, tensor types, tensor/buffer/opcode indices, quantization scales, zero points
and axes, operator codes and versions, option fields, buffer contents, graph inputs/outputs,
intermediates, variable flags, operator order). Case i of seed s is a pure function of (s, i), so any
finding replays exactly.

The cases run in worker processes, with Numba's bounds checking on: an out-of-bounds read or write in
a JIT kernel becomes an IndexError (a foreign exception, so a finding) instead of silent memory
corruption. A worker that dies is a crash (the parent restarts a worker after that case); a case that
takes longer than --timeout seconds is a hang. Accepted outcomes: the loader refuses the model with
ModelError, running it raises ModelError or InputError, or it runs, in each of the two flavours (tflite, tflm). Anything else
is a finding.

Coverage-guided fuzzers (atheris) were not used: they cannot see inside Numba-compiled code, which is
where memory safety matters, and a crash would take the fuzzer down with it; seeded mutation with
process isolation gives replayable cases and survives crashes.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

HERE = Path(__file__).resolve().parent
SEED_MODELS = ("basic", "tiny", "stacked3", "bidirectional", "conv1d_lstm", "pool_heads", "concat_add_flatten",
               "batchnorm_relu", "dynamic_time_dense", "float_io", "time_major", "seq2seq_td")

_EXTREME_INTS = [-(2 ** 31), -1000, -2, -1, 0, 1, 2, 3, 7, 255, 256, 65535, 2 ** 20, 2 ** 31 - 1]
_EXTREME_FLOATS = [0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-45, 1e-30, 1e30, 3.4e38]


# -- mutations ---------------------------------------------------------------------------------------
def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _int_value(rng: np.random.Generator, valid_upper: int) -> int:
    """An index-like value: mostly near the valid range, sometimes extreme."""
    r = rng.random()
    if r < 0.4:
        return int(rng.integers(-2, valid_upper + 3))
    if r < 0.8:
        return int(_pick(rng, _EXTREME_INTS))
    return int(rng.integers(-(2 ** 31), 2 ** 31 - 1))


def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = _pick(rng, ["flip", "truncate", "splice"])
    if kind == "flip":
        n = int(rng.integers(1, 17))
        for _ in range(n):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
        return bytes(buf), f"flip {n} bytes"
    if kind == "truncate":
        cut = int(rng.integers(0, len(buf)))
        return bytes(buf[:cut]), f"truncate to {cut} bytes"
    at = int(rng.integers(len(buf)))
    n = int(rng.integers(1, 64))
    if rng.random() < 0.5:
        del buf[at:at + n]
        return bytes(buf), f"delete {n} bytes at {at}"
    buf[at:at] = rng.integers(0, 256, size=n, dtype=np.uint8).tobytes()
    return bytes(buf), f"insert {n} bytes at {at}"


def mutate_structure(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    from tflite_build import pack
    from ai_edge_litert import schema_py_generated as S

    m = S.ModelT.InitFromPackedBuf(bytearray(data), 0)
    sg = m.subgraphs[0]
    nt, nb, nops = len(sg.tensors), len(m.buffers), len(sg.operators)
    t = _pick(rng, sg.tensors)
    op = _pick(rng, sg.operators)
    kind = _pick(rng, ["shape", "signature", "type", "buffer", "scale", "zero_point", "quant_dim", "no_quant",
                       "op_input", "op_output", "opcode_index", "builtin_code", "version", "option",
                       "option_type", "buffer_data", "graph_io", "intermediate", "variable", "op_order",
                       "drop_op", "tensor_count"])
    what = kind
    if kind in ("shape", "signature"):
        arr = list(t.shape if kind == "shape" else (t.shapeSignature if t.shapeSignature is not None else t.shape))
        if arr and rng.random() < 0.8:
            k = int(rng.integers(len(arr)))
            arr[k] = _int_value(rng, 8)
        elif rng.random() < 0.5:
            arr.append(_int_value(rng, 8))
        else:
            arr = arr[:-1]
        if kind == "shape":
            t.shape = arr
        else:
            t.shapeSignature = arr
        what = f"{kind} of tensor '{t.name}' -> {arr}"
    elif kind == "type":
        t.type = int(rng.integers(0, 18))
        what = f"type of '{t.name}' -> {t.type}"
    elif kind == "buffer":
        t.buffer = _int_value(rng, nb)
        what = f"buffer of '{t.name}' -> {t.buffer}"
    elif kind in ("scale", "zero_point", "quant_dim", "no_quant"):
        if t.quantization is None or kind == "no_quant":
            t.quantization = None if kind == "no_quant" else S.QuantizationParametersT()
        q = t.quantization
        if q is not None:
            if kind == "scale":
                n = int(rng.integers(1, 4))
                q.scale = [float(_pick(rng, _EXTREME_FLOATS)) if rng.random() < 0.7 else float(rng.random())
                           for _ in range(n)]
            elif kind == "zero_point":
                q.zeroPoint = [_int_value(rng, 255) for _ in range(int(rng.integers(1, 4)))]
            else:
                q.quantizedDimension = _int_value(rng, 4)
        what = f"{kind} of '{t.name}'"
    elif kind in ("op_input", "op_output", "intermediate"):
        attr = {"op_input": "inputs", "op_output": "outputs", "intermediate": "intermediates"}[kind]
        arr = list(getattr(op, attr) if getattr(op, attr) is not None else [])
        if arr and rng.random() < 0.85:
            arr[int(rng.integers(len(arr)))] = _int_value(rng, nt)
        elif rng.random() < 0.5:
            arr.append(_int_value(rng, nt))
        else:
            arr = arr[:-1]
        setattr(op, attr, arr)
        what = f"{attr} of an op -> {arr}"
    elif kind == "opcode_index":
        op.opcodeIndex = int(rng.integers(0, len(m.operatorCodes) + 2))
        what = f"opcode index -> {op.opcodeIndex}"
    elif kind in ("builtin_code", "version"):
        oc = _pick(rng, m.operatorCodes)
        if kind == "builtin_code":
            code = int(rng.integers(0, 210))
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)
            what = f"builtin code -> {code}"
        else:
            oc.version = _int_value(rng, 8)
            what = f"op version -> {oc.version}"
    elif kind == "option":
        opts = op.builtinOptions
        fields = [k for k, v in vars(opts).items() if isinstance(v, (int, float, bool))] if opts is not None else []
        if fields:
            f = _pick(rng, fields)
            old = getattr(opts, f)
            if isinstance(old, bool):
                new = not old
            elif isinstance(old, float):
                new = float(_pick(rng, _EXTREME_FLOATS))
            else:
                new = int(rng.integers(-3, 300)) if rng.random() < 0.7 else int(_pick(rng, _EXTREME_INTS))
            setattr(opts, f, new)
            what = f"option {type(opts).__name__}.{f}: {old} -> {new}"
        else:
            what = "option (none to change)"
    elif kind == "option_type":
        op.builtinOptionsType = int(rng.integers(0, 130))
        what = f"options type -> {op.builtinOptionsType}"
    elif kind == "buffer_data":
        with_data = [b for b in m.buffers if b.data is not None and len(b.data) > 0]
        if with_data:
            b = _pick(rng, with_data)
            d = np.array(b.data, dtype=np.uint8)
            r = rng.random()
            if r < 0.4:
                d = d[: int(rng.integers(0, d.size))]
            elif r < 0.6:
                d = np.concatenate([d, rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8)])
            else:
                d = rng.integers(0, 256, size=d.size, dtype=np.uint8)  # garbage of the right length
            b.data = d
            what = f"buffer data -> {d.size} bytes"
    elif kind == "graph_io":
        attr = _pick(rng, ["inputs", "outputs"])
        arr = list(getattr(sg, attr))
        if arr and rng.random() < 0.8:
            arr[int(rng.integers(len(arr)))] = _int_value(rng, nt)
        else:
            arr.append(_int_value(rng, nt))
        setattr(sg, attr, arr)
        what = f"subgraph {attr} -> {arr}"
    elif kind == "variable":
        t.isVariable = not t.isVariable
        what = f"is_variable of '{t.name}' -> {t.isVariable}"
    elif kind == "op_order" and nops > 1:
        i, j = rng.choice(nops, size=2, replace=False)
        sg.operators[i], sg.operators[j] = sg.operators[j], sg.operators[i]
        what = f"swap ops {i} and {j}"
    elif kind == "drop_op" and nops > 1:
        k = int(rng.integers(nops))
        del sg.operators[k]
        what = f"drop op {k}"
    elif kind == "tensor_count" and nt > 1:
        del sg.tensors[-1]
        what = "drop the last tensor"
    return pack(m), what


def make_case(seeds: dict[str, bytes], seed: int, index: int) -> tuple[str, bytes, str]:
    """(seed model name, mutated bytes, description) of case `index`; deterministic."""
    rng = np.random.default_rng([seed, index])
    name = _pick(rng, sorted(seeds))
    data = seeds[name]
    for _ in range(int(rng.integers(1, 3))):  # one or two stacked mutations
        try:
            if rng.random() < 0.35:
                data, what = mutate_bytes(data, rng)
            else:
                data, what = mutate_structure(data, rng)
        except Exception as exc:  # the object API cannot unpack an already byte-mangled file
            what = f"(structure edit skipped: {type(exc).__name__})"
    return name, data, what


# -- running one case ---------------------------------------------------------------------------------
def run_case(data: bytes) -> str:
    """Load and run one model in both flavours. The outcome names, per flavour, where it was refused
    ('load' / 'run') or that it ran, e.g. 'tflite:ran tflm:load'."""
    from edgelstm import load
    from edgelstm.errors import InputError, ModelError
    from edgelstm.verify import make_inputs

    parts = []
    for flavor in ("tflite", "tflm"):
        try:
            m = load(data, flavor=flavor)
        except ModelError:
            parts.append(f"{flavor}:load")
            continue
        try:
            inputs = make_inputs(m, 2, seed=0, time_steps=5)
            for xs in inputs:
                m.run(xs)
            m.run(inputs[0], reset=False)
        except (ModelError, InputError):
            parts.append(f"{flavor}:run")
            continue
        parts.append(f"{flavor}:ran")
    return " ".join(parts)


def worker(seed_dir: Path, seed: int, start: int, stop: int) -> None:
    seeds = {p.stem: p.read_bytes() for p in sorted(seed_dir.glob("*.tflite"))}
    for i in range(start, stop):
        _, data, _ = make_case(seeds, seed, i)
        print(f"@@start {i}", flush=True)
        if os.environ.get("EDGELSTM_FUZZ_SELFTEST_CRASH") == str(i):
            os.abort()  # the harness's own test: a worker dying mid-case must count as a crash
        try:
            outcome = run_case(data)
        except BaseException as exc:  # a finding: report type and message
            outcome = "foreign " + json.dumps(f"{type(exc).__name__}: {str(exc)[:300]}")
        print(f"@@end {i} {outcome}", flush=True)


# -- the parent ---------------------------------------------------------------------------------------
def write_seeds(seed_dir: Path, names=SEED_MODELS) -> None:
    import zoo

    seed_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        p = seed_dir / f"{name}.tflite"
        if not p.exists():
            p.write_bytes(zoo.build(name))


def _reader(stream, q: "queue.Queue[Optional[str]]") -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def fuzz(seed_dir: Path, seed: int, cases: int, start: int = 0, timeout: float = 60.0,
         progress: bool = False) -> dict:
    """Run cases [start, start+cases) in worker processes; returns counts and findings."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1",
               NUMBA_CACHE_DIR=os.environ.get("NUMBA_CACHE_DIR", str(Path.home() / ".cache/edgelstm/numba"))
               + "-boundscheck", PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    counts: Counter = Counter()
    findings: list[dict] = []
    next_case, stop = start, start + cases
    t0 = time.time()
    while next_case < stop:
        proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--worker", str(seed_dir), str(seed),
                                 str(next_case), str(stop)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, env=env)
        q: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
        current: Optional[int] = None
        # the first case of a worker also pays for imports and JIT loading
        deadline = timeout + 120
        while True:
            try:
                line = q.get(timeout=deadline)
            except queue.Empty:
                proc.kill()
                proc.wait()
                counts["hang"] += 1
                findings.append({"case": current, "outcome": f"hang (> {deadline:.0f} s)"})
                next_case = (current if current is not None else next_case) + 1
                break
            if line is None:  # the worker exited
                proc.wait()
                if current is not None:  # it died inside a case
                    counts["crash"] += 1
                    findings.append({"case": current, "outcome": f"crash (exit status {proc.returncode})"})
                    next_case = current + 1
                else:
                    next_case = stop
                break
            if line.startswith("@@start"):
                current = int(line.split()[1])
                deadline = timeout if current != next_case else timeout + 120
            elif line.startswith("@@end"):
                _, idx, outcome = line.rstrip("\n").split(" ", 2)
                if outcome.startswith("foreign"):
                    counts["foreign exception"] += 1
                    findings.append({"case": int(idx), "outcome": json.loads(outcome.split(" ", 1)[1])})
                else:
                    counts[outcome] += 1
                current = None
                done = int(idx) + 1 - start
                if progress and (done % 100 == 0 or done == cases):
                    print(f"\r{done}/{cases} cases, {time.time() - t0:.0f} s, findings: {len(findings)}",
                          end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    return {"seed": seed, "start": start, "cases": cases, "seconds": round(time.time() - t0, 1),
            "counts": dict(counts), "findings": findings, "seed_models": sorted(p.stem for p in seed_dir.glob("*.tflite"))}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--seed-dir", default=str(Path.home() / ".cache" / "edgelstm" / "fuzz-seeds"))
    ap.add_argument("--json", metavar="FILE", help="write counts and findings here")
    ap.add_argument("--replay", metavar="SEED:CASE", help="run one case in this process and show it")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE))
    seed_dir = Path(args.seed_dir)
    write_seeds(seed_dir)
    if args.replay:
        s, i = (int(v) for v in args.replay.split(":"))
        seeds = {p.stem: p.read_bytes() for p in sorted(seed_dir.glob("*.tflite"))}
        name, data, what = make_case(seeds, s, i)
        print(f"case {s}:{i}: {name}, {what}, {len(data)} bytes")
        print(run_case(data))
        return 0
    result = fuzz(seed_dir, args.seed, args.cases, args.start, args.timeout, progress=True)
    result["command"] = "python tests/fuzz.py " + " ".join(argv)
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "findings"}, indent=2))
    for f in result["findings"][:20]:
        print(f"finding: case {args.seed}:{f['case']}: {f['outcome']}")
    return 1 if result["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
