"""The `edgelstm` command line."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .errors import EdgeLSTMError, InputError, ModelError, ReferenceUnavailable
from .references import DEFAULT_TIMEOUT_S, names as reference_names
from .tflite_reader import model_bytes

if TYPE_CHECKING:
    from .verify import VerifyResult

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def _cmd_verify(args: argparse.Namespace) -> int:
    from .model import load
    from .verify import load_inputs, stderr_progress, verify, verify_all

    data = model_bytes(args.model)
    model = load(data)
    inputs = load_inputs(args.inputs, model)[0] if args.inputs else None
    common = dict(inputs=inputs, samples=args.samples, seed=args.seed, time_steps=args.time_steps,
                  timeout=args.timeout)
    if args.against == "all":
        bars: dict = {}

        def progress(name: str, done: int, total: int) -> None:
            bars.setdefault(name, stderr_progress(f"verify vs {name}"))(done, total)

        results = verify_all(data, None, progress=None if args.json else progress, **common)
    else:
        results = [verify(data, reference=args.against,
                          progress=None if args.json else stderr_progress(f"verify vs {args.against}"), **common)]
    checked = [r for r in results if r.status != "unavailable"]
    unavailable = [{"name": r.reference["name"], "status": r.status, "error": r.detail}
                   for r in results if r.status == "unavailable"]
    if not checked:
        raise ReferenceUnavailable("no installed reference interpreter could run this model: "
                                   + "; ".join(u["error"] for u in unavailable))
    ok = all(r.bit_exact for r in checked)
    if args.json:
        if args.against != "all":
            obj = checked[0].to_dict()
        else:
            obj = {"bit_exact": ok,
                   "mismatched_elements": sum(r.mismatched_elements for r in checked),
                   "max_abs_diff": max(r.max_abs_diff for r in checked),
                   "samples": checked[0].samples,
                   "reference": [r.reference for r in checked],
                   "status": {r.reference["name"]: r.status for r in results},
                   "results": [r.to_dict() for r in checked],
                   "unavailable": unavailable}
        obj["model"] = str(args.model)
        print(json.dumps(obj, indent=2))
    else:
        for r in checked:
            _print_verify_result(r)
        for u in unavailable:
            print(f"NOT CHECKED vs {u['name']}: {u['error']}")
    return EXIT_OK if ok else EXIT_MISMATCH


def _print_verify_result(r: "VerifyResult") -> None:
    ref = f"{r.reference['name']} {r.reference['version'] or ''}".rstrip()
    if r.status != "ok":
        print(f"{r.status.upper().replace('_', ' ')} vs {ref} (edgelstm flavor {r.flavor}): {r.detail}")
        if not any(o.elements for o in r.outputs):
            return
        print("  compared before that:")
    else:
        verdict = "BIT-EXACT" if r.bit_exact else "MISMATCH"
        print(f"{verdict} vs {ref} (edgelstm flavor {r.flavor}): {r.samples} samples"
              + (" (reset per sample, then state carried across all of them)" if r.state_checked else ""))
    print(f"  {'output':<40} {'elements':>10} {'differ':>8} {'max|diff|':>10}")
    for o in r.outputs:
        print(f"  {o.name[:40]:<40} {o.elements:>10} {o.mismatched_elements:>8} {o.max_abs_diff:>10}")
    fm = r.first_mismatch
    if fm is not None and fm.op_index is not None:
        where = f"op {fm.op_index} ({fm.opcode}), tensor '{fm.tensor}'"
        if fm.timestep is not None:
            where += f", first at timestep {fm.timestep}"
        print(f"  first difference: sample {fm.sample}, {where}")
    elif fm is not None and fm.sample < 0:
        print("  first difference: only when state is carried across invocations")
    elif fm is not None:
        print(f"  first difference: sample {fm.sample}" + (f" ({r.detail})" if r.status == "ok" and r.detail else ""))
    for name in r.matching_flavors:
        print(f"  flavor {name} matches {ref} exactly on these inputs "
              f"(edgelstm run --flavor {name}; edgelstm.load(..., flavor={name!r}))")


def _cmd_run(args: argparse.Namespace) -> int:
    from .model import load
    from .verify import load_inputs

    model = load(model_bytes(args.model), flavor=args.flavor)
    batches, stacked = load_inputs(args.input, model)
    if len(model.outputs) != 1:
        raise EdgeLSTMError("models with several outputs: use the Python API (Model.run)")
    t0 = time.perf_counter()
    model.reset()
    outs = [model.run(xs, reset=not args.keep_state) for xs in batches]
    elapsed = time.perf_counter() - t0
    y = np.stack(outs) if stacked else outs[0]
    np.save(args.output, y)
    print(f"wrote {args.output}: {y.dtype.name}{list(y.shape)} from {len(batches)} input(s) "
          f"in {elapsed * 1e3:.2f} ms")
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from .model import load
    from .ops import flavors

    data = model_bytes(args.model)
    model = load(data, flavor=args.flavor)
    runs = {}
    for fl in flavors():
        try:
            load(data, flavor=fl)
            runs[fl.name] = "runs"
        except ModelError as exc:
            runs[fl.name] = f"refused: {exc}"
    info = {
        "inputs": [{"name": i.name, "dtype": i.dtype.name, "shape": list(i.shape),
                    "scale": i.quantization.s if i.quantization else None,
                    "zero_point": i.quantization.zp if i.quantization else None} for i in model.inputs],
        "outputs": [{"name": o.name, "dtype": o.dtype.name, "shape": list(o.shape),
                     "scale": o.quantization.s if o.quantization else None,
                     "zero_point": o.quantization.zp if o.quantization else None} for o in model.outputs],
        "ops": model.ops,
        "flavors": runs,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for kind in ("inputs", "outputs"):
            for t in info[kind]:
                q = f" scale={t['scale']:.6g} zp={t['zero_point']}" if t["scale"] is not None else ""
                print(f"{kind[:-1]:<7} {t['name']}: {t['dtype']}{t['shape']}{q}")
        for i, op in enumerate(info["ops"]):
            print(f"op {i:<3} {op}")
        for name, verdict in runs.items():
            print(f"flavor  {name}: {verdict}")
    return EXIT_OK


def _cmd_flavors(args: argparse.Namespace) -> int:
    from .ops import flavors

    rows = []
    for fl in flavors():
        own = fl.own_kernels()
        rows.append({"name": fl.name, "parent": fl.parent.name if fl.parent else None,
                     "description": fl.description, "runtime": fl.policy.runtime, "reference": fl.policy.reference,
                     "static_shapes": fl.policy.static_shapes, "state_persists": fl.policy.state_persists,
                     "ops": fl.opcodes(), "own_kernels": sorted(k for k, v in own.items() if v is not None),
                     "refused_ops": sorted(k for k, v in own.items() if v is None)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    for r in rows:
        parent = f", falls back to {r['parent']}" if r["parent"] else ""
        print(f"{r['name']}: {r['description'] or r['runtime']} (verify against {r['reference']}{parent})")
        shapes = "static shapes only" if r["static_shapes"] else "dynamic shapes"
        state = "LSTM state kept across invokes" if r["state_persists"] else "LSTM state reset every invoke"
        print(f"  {len(r['ops'])} ops; {shapes}; {state}")
        if r["parent"]:
            print(f"  own kernels: {', '.join(r['own_kernels']) or '-'}")
            if r["refused_ops"]:
                print(f"  refuses: {', '.join(r['refused_ops'])}")
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import diagnose, render

    report = diagnose()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return EXIT_OK if not report["problems"] else EXIT_MISMATCH


def _cmd_profile(args: argparse.Namespace) -> int:
    from .model import load
    from .profiling import profile
    from .profiling.report import render_table, write_html
    from .verify import load_inputs, stderr_progress

    data = model_bytes(args.model)
    inputs = load_inputs(args.inputs, load(data))[0] if args.inputs else None
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    bars: dict = {}

    def progress(name: str, done: int, total: int) -> None:
        bars.setdefault(name, stderr_progress(f"profile {name:<14}"))(done, total)

    report = profile(args.model, backends=backends, runs=args.runs, warmup=args.warmup, threads=args.threads,
                     batch=args.batch, inputs=inputs, keras=args.keras, seed=args.seed,
                     time_steps=args.time_steps, progress=progress,
                     mcu=[t.strip() for t in args.mcu.split(",") if t.strip() and t.strip() != "none"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.html:
        write_html(report, Path(args.html))
    print(render_table(report))
    for flag, path in (("JSON", args.json), ("HTML", args.html)):
        if path:
            print(f"wrote {flag} report to {path}")
    return EXIT_OK if report["backends"] else EXIT_MISMATCH


def _cmd_convert(args: argparse.Namespace) -> int:
    from .convert.pipeline import convert, render
    from .errors import ConversionError

    try:
        report = convert(args.model, args.calibration, args.out, io=args.io, verbose=args.verbose or args.debug)
    except ConversionError as exc:
        if not args.json or args.debug:
            raise
        print(json.dumps({"ok": False, "model": args.model, "error": str(exc), "layer": exc.layer,
                          "reason": exc.reason}, indent=2))
        return EXIT_USAGE
    print(json.dumps({"ok": True, **report.to_dict()}, indent=2) if args.json else render(report))
    return EXIT_OK


def _cmd_stream(args: argparse.Namespace) -> int:
    from .graph.streaming import render, streaming_model, summarize
    from .errors import ConversionError

    raw = model_bytes(args.model)
    try:
        step = streaming_model(raw)
    except ConversionError as exc:
        if not args.json or args.debug:
            raise
        print(json.dumps({"ok": False, "model": args.model, "error": str(exc), "op": exc.layer,
                          "reason": exc.reason}, indent=2))
        return EXIT_USAGE
    Path(args.out).write_bytes(step)
    info = summarize(raw, step)
    print(json.dumps({"ok": True, "model": args.model, "out": args.out, **info}, indent=2) if args.json else
          f"{render(args.model, info)}\nwrote {args.out}")
    return EXIT_OK


def _cmd_lint(args: argparse.Namespace) -> int:
    from .lint import lint, render

    hazards = lint(model_bytes(args.model))
    errors = [h for h in hazards if h.severity == "error"]
    if args.json:
        print(json.dumps({"model": args.model, "ok": not errors, "hazards": [h.to_dict() for h in hazards]},
                         indent=2))
    else:
        print(render(args.model, hazards))
    return EXIT_MISMATCH if errors else EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from .convert.data import load_dataset
    from .convert.train import parse_conv, parse_units, summary, train

    data = load_dataset(args.dataset, task=args.task, window=args.window, stride=args.stride,
                        label_column=args.label_column, labels=args.labels, seed=args.seed,
                        feature_columns=args.features.split(",") if args.features else None)
    result = train(data, Path(args.out), units=parse_units(args.units), bidirectional=args.bidirectional,
                   conv=parse_conv(args.conv), epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    print(json.dumps(result.report, indent=2) if args.json else
          f"{summary(result.report)}\nwrote {args.out}/model.keras, preprocessing.json, train_report.json")
    return EXIT_OK


def _cmd_firmware(args: argparse.Namespace) -> int:
    from .firmware_sim import firmware
    from .firmware_sim.report import render

    rep = firmware(args.model, target=None if args.target == "host" else args.target, out=args.out,
                   inputs=args.inputs, clock_mhz=args.clock_mhz)
    print(json.dumps(rep, indent=2) if args.json else render(rep))
    return EXIT_OK if rep["outputs_match_tflm"] and rep["step"].get("matches_run", True) else EXIT_MISMATCH


def _cmd_accuracy(args: argparse.Namespace) -> int:
    from .convert.accuracy import evaluate, render
    from .convert.data import Preprocessing, load_dataset, load_preprocessing
    from .convert.models import load_trained
    from .tflite_reader import read_metadata

    data = model_bytes(args.model)
    keras_path = Path(args.keras) if args.keras else Path(args.model).with_suffix(".keras")
    embedded = read_metadata(data).get("edgelstm.preprocessing")
    if embedded is not None:
        try:
            pre = Preprocessing.from_dict(json.loads(embedded), f"{args.model} (embedded preprocessing)")
        except ValueError as exc:
            raise InputError(f"{args.model}: its embedded preprocessing is not valid JSON ({exc})") from None
    else:
        pre = load_preprocessing(keras_path.parent)
    ds = load_dataset(args.dataset, seed=args.seed)
    x, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_val, ds.y_val)
    if len(x) == 0:
        raise InputError(f"the {args.split} split of {args.dataset} is empty")
    report = evaluate(data, load_trained(keras_path, batch_size=None), pre.apply(x), y, ds.task,
                      progress=None if args.json else (lambda m: print(f"[edgelstm accuracy] {m}", file=sys.stderr)))
    report["model"], report["dataset"], report["split"] = str(args.model), args.dataset, args.split
    print(json.dumps(report, indent=2) if args.json else render(report))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), json_out=args.json)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgelstm",
        description="Run full-int8 .tflite LSTM models bit-exactly with edgelstm's own kernels, "
                    "and prove it against the TFLite interpreter.")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("verify", help="compare edgelstm with a reference interpreter, element for element",
                       description="Run the model in edgelstm and in a reference interpreter (LiteRT builtin "
                                   "reference kernels by default) on the same inputs and count differing "
                                   "elements. Exit status 0 only if there are none.")
    v.add_argument("model", help=".tflite file")
    v.add_argument("--inputs", metavar="X.npy", help="inputs: one sample in the model's input shape and dtype, "
                   "or N samples stacked on a new first axis (default: random over the full range + extremes)")
    v.add_argument("--samples", type=int, default=8, help="number of generated inputs (default 8)")
    v.add_argument("--seed", type=int, default=0, help="seed for generated inputs")
    v.add_argument("--time-steps", type=int, default=50,
                   help="sequence length for models whose time dimension is dynamic (default 50)")
    v.add_argument("--against", default="litert", choices=[*reference_names(), "all"],
                   help="reference interpreter (default litert; 'all' = every installed one); tflm (TFLite "
                        "Micro) is compared with edgelstm's tflm flavor, the others with the tflite flavor")
    v.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="each reference runs in its own process; the longest it may take to load the model or "
                        f"to run one input before it is reported as timed out (default {DEFAULT_TIMEOUT_S:g})")
    v.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    v.set_defaults(func=_cmd_verify)

    r = sub.add_parser("run", help="run a model on inputs from a .npy file",
                       description="Run the model on X.npy (one sample, or N stacked on a first axis, each "
                                   "with fresh state) and save the outputs to Y.npy.")
    r.add_argument("model")
    r.add_argument("--input", required=True, metavar="X.npy")
    r.add_argument("--output", required=True, metavar="Y.npy")
    r.add_argument("--keep-state", action="store_true",
                   help="carry LSTM state from one stacked sample to the next instead of resetting")
    r.add_argument("--flavor", default="tflite", help="whose arithmetic to reproduce: tflite (LiteRT's reference "
                   "kernels, default), tflm (TFLite Micro's); `edgelstm flavors` lists them all")
    r.set_defaults(func=_cmd_run)

    i = sub.add_parser("info", help="show a model's inputs, outputs and ops")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")
    i.add_argument("--flavor", default="tflite",
                   help="prepare the model with this flavor's kernels (tflm: TFLite Micro, static shapes); every "
                        "flavor is tried too, and the report says which ones run the model")
    i.set_defaults(func=_cmd_info)

    fls = sub.add_parser("flavors", help="list the flavors: whose arithmetic each reproduces, and how",
                         description="Each flavor reproduces one interpreter's arithmetic bit for bit: a table of "
                                     "kernels (falling back to its parent's) and graph-wide rules (static shapes, "
                                     "whether LSTM state persists across invokes, the reference it is verified "
                                     "against).")
    fls.add_argument("--json", action="store_true")
    fls.set_defaults(func=_cmd_flavors)

    doc = sub.add_parser("doctor", help="check this machine: versions, Numba cache, interpreters, known-bad combos",
                         description="Print the architecture, OS, libc, Python, numpy and numba versions, whether "
                                     "Numba can cache compiled kernels, and the reference interpreters found, "
                                     "with one fix-it line per known-bad combination. Exit status 1 if any.")
    doc.add_argument("--json", action="store_true")
    doc.set_defaults(func=_cmd_doctor)

    pr = sub.add_parser("profile", help="latency per runtime, time per operator, MACs and memory",
                        description="Time the model in every installed backend (each in a fresh process: cold "
                                    "start, warm-up, then --runs timed calls), break edgelstm's time down per "
                                    "operator and per LSTM timestep, and count MACs, parameters and bytes. "
                                    "Prints a table; --json and --html write reports (the HTML has a latency "
                                    "distribution per backend and a per-operator chart).")
    pr.add_argument("model", help=".tflite file")
    pr.add_argument("--backends", default="edgelstm,litert,tflite-runtime,tflm,keras",
                    help="comma-separated, from edgelstm, litert, tflite-runtime, tflm, keras (default: all; "
                         "those not installed are reported as skipped)")
    pr.add_argument("--runs", type=int, default=200, help="timed calls per backend (default 200)")
    pr.add_argument("--warmup", type=int, default=20, help="untimed calls before timing (default 20)")
    pr.add_argument("--threads", type=int, default=1, help="threads per backend (default 1)")
    pr.add_argument("--batch", type=int, default=1,
                    help="sequences per timed call, each from a fresh state (default 1)")
    pr.add_argument("--inputs", metavar="X.npy", help="inputs to time on (default: random over the full range)")
    pr.add_argument("--keras", metavar="MODEL.keras",
                    help="float Keras model for the keras backend (default: MODEL.keras next to the .tflite)")
    pr.add_argument("--time-steps", type=int, default=50,
                    help="sequence length for models whose time dimension is dynamic (default 50)")
    pr.add_argument("--seed", type=int, default=0, help="seed for generated inputs")
    pr.add_argument("--mcu", default="cortex-m4",
                    help="Cortex-M targets for the microcontroller estimate, comma-separated, or 'none' (default "
                         "cortex-m4; needs Arm GCC and QEMU, see `edgelstm firmware`)")
    pr.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    pr.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with plots")
    pr.set_defaults(func=_cmd_profile)

    cv = sub.add_parser("convert", help="Keras model -> repaired full-int8 .tflite, or the reason it cannot be",
                        description="Convert a .keras model (tf_keras or Keras 3) to full int8 with the TFLite "
                                    "converter run in a child process: layers the converter crashes on or does "
                                    "not fuse are rewritten to an equivalent form or refused by name, the result "
                                    "is checked for fused integer LSTMs, and the quantization LiteRT mishandles "
                                    "is repaired. Reports LiteRT vs TFLite Micro and int8 vs float agreement. "
                                    "A preprocessing.json next to the model is embedded as metadata.")
    cv.add_argument("model", help=".keras file (loaded with safe_mode=True)")
    cv.add_argument("--calibration", required=True, metavar="DATA.npy",
                    help="float samples shaped like the model input, batch first: [N, T, F]")
    cv.add_argument("--out", required=True, metavar="MODEL.tflite")
    cv.add_argument("--io", default="int8", choices=["int8", "float"],
                    help="int8 model inputs/outputs (default) or float ones with QUANTIZE/DEQUANTIZE at the edges")
    cv.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    cv.add_argument("--verbose", action="store_true", help="show TensorFlow's own output")
    cv.set_defaults(func=_cmd_convert)

    st = sub.add_parser("stream", help="single-step variant of a model for sample-by-sample inference",
                        description="Rewrite a full-sequence .tflite into a T=1 model with the same weights and "
                                    "quantization; the LSTM state carries across invokes, so feeding the samples "
                                    "one by one gives the full model's outputs bit for bit (its output after the "
                                    "last sample; a sequence output's step k at invoke k). Refuses, naming the op, "
                                    "what needs other timesteps (bidirectional layers, pooling, means or "
                                    "convolutions over time). Needs no TensorFlow.")
    st.add_argument("model", help="full-sequence .tflite file")
    st.add_argument("--out", required=True, metavar="STEP.tflite")
    st.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    st.set_defaults(func=_cmd_stream)

    li = sub.add_parser("lint", help="find what makes LiteRT, TFLite Micro or edgelstm go wrong on a .tflite",
                        description="Report hazards in any .tflite (cell-state scale outside LiteRT's range, "
                                    "inconsistent hidden-state quantization, unfused LSTMs, Flex/custom ops, "
                                    "float ops in an int8 model...) with the consequence on each runtime. "
                                    "Exit status 1 if there is one. Needs no TensorFlow.")
    li.add_argument("model", help=".tflite file")
    li.add_argument("--json", action="store_true")
    li.set_defaults(func=_cmd_lint)

    t = sub.add_parser("train", help="train a convertible LSTM on BasicMotions, synthetic data or your files",
                       description="Train a tf_keras LSTM the int8 converter can fuse, with early stopping on a "
                                   "validation split, and evaluate it on a held-out test split. Writes "
                                   "model.keras, preprocessing.json (input normalisation, embedded into the "
                                   ".tflite by `convert`) and train_report.json to --out. Progress goes to stderr.")
    t.add_argument("--dataset", required=True, metavar="SOURCE",
                   help="basicmotions, synthetic, FILE.npz (arrays x, y), FILE.npy (x; labels via --labels) "
                        "or FILE.csv (one row per time step; cut into windows)")
    t.add_argument("--units", default="32", help="LSTM units per layer, comma-separated (default 32)")
    t.add_argument("--bidirectional", action="store_true", help="bidirectional LSTM layers")
    t.add_argument("--conv", metavar="FILTERS:KERNEL", help="a Conv1D front, e.g. 16:5")
    t.add_argument("--task", choices=["classification", "regression"],
                   help="default: from the labels (integers or text: classification, floats: regression)")
    t.add_argument("--epochs", type=int, default=200, help="maximum epochs (default 200; early stopping)")
    t.add_argument("--batch-size", type=int, default=16, help="sequences per training step (default 16)")
    t.add_argument("--window", type=int, help="CSV: rows per sequence; a window's label is its last row's")
    t.add_argument("--stride", type=int, default=1, help="CSV: rows between window starts (default 1)")
    t.add_argument("--label-column", metavar="C",
                   help="CSV: label column name or index (default: the column 'label', else the last)")
    t.add_argument("--features", metavar="A,B,...", help="CSV: feature columns (default: all but the label)")
    t.add_argument("--labels", metavar="Y.npy", help="labels for a .npy dataset")
    t.add_argument("--seed", type=int, default=0, help="seed for splits, weights and shuffling (default 0)")
    t.add_argument("--out", required=True, metavar="DIR", help="output directory")
    t.add_argument("--json", action="store_true", help="print the train report as one JSON object")
    t.set_defaults(func=_cmd_train)

    fw = sub.add_parser("firmware", help="C library + TFLite Micro kit for a microcontroller, proven in an emulated Cortex-M",
                        description="Generate a standalone C99 int8 library for the model (no malloc, no floating "
                                    "point; whole-sequence and per-timestep entry points) and a TFLite Micro kit "
                                    "(C array, op resolver, measured arena); build it for the host and the target, "
                                    "run it in qemu-system-arm, and check its outputs against edgelstm's tflm "
                                    "flavour and the real TFLite Micro interpreter. Reports flash, RAM, counted "
                                    "instructions and a latency estimate. Exit status 0 only if all outputs agree. "
                                    "Needs gcc, arm-none-eabi-gcc and qemu-system-arm (Debian: gcc-arm-none-eabi "
                                    "libnewlib-arm-none-eabi qemu-system-arm).")
    fw.add_argument("model", help=".tflite file (full int8, or float I/O around an int8 graph)")
    fw.add_argument("--target", default="cortex-m4",
                    choices=["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "host"],
                    help="Cortex-M core (emulated board: M0+ micro:bit, M3 MPS2-AN385, M4 AN386, M7 AN500, "
                         "M33 AN505); host = build and check on this machine only (default cortex-m4)")
    fw.add_argument("--out", required=True, metavar="DIR", help="output directory")
    fw.add_argument("--inputs", metavar="X.npy", help="inputs: one sample or N stacked (default: 3 random + extremes)")
    fw.add_argument("--clock-mhz", type=float, help="clock for the latency estimate (default: a typical part's)")
    fw.add_argument("--json", action="store_true", help="print the report as one JSON object")
    fw.set_defaults(func=_cmd_firmware)

    ac = sub.add_parser("accuracy", help="float Keras vs int8 in LiteRT, TFLite Micro and edgelstm on held-out data",
                        description="Evaluate the int8 model in every runtime and its float Keras model on the test "
                                    "(or validation) split: the task metric, agreement with float and between "
                                    "runtimes, and per layer the int8 error in LSB. Normalisation comes from the "
                                    "model's embedded preprocessing (edgelstm convert) or preprocessing.json "
                                    "beside the .keras file.")
    ac.add_argument("model", help=".tflite file")
    ac.add_argument("--keras", metavar="MODEL.keras", help="the float model (default: MODEL.keras beside the .tflite)")
    ac.add_argument("--dataset", default="basicmotions", help="basicmotions, synthetic, or a .npz file (default basicmotions)")
    ac.add_argument("--split", default="test", choices=["test", "val"])
    ac.add_argument("--seed", type=int, default=0, help="seed of the validation split (as in training)")
    ac.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ac.set_defaults(func=_cmd_accuracy)

    d = sub.add_parser("demo", help="the end-to-end job: train on BasicMotions, convert, verify, evaluate, profile",
                       description="Trains an LSTM classifier on BasicMotions (real smart-watch data; needs the "
                                   "workstation extra), converts it to a repaired full-int8 model, verifies "
                                   "edgelstm against LiteRT and TFLite Micro, reports accuracy in every runtime "
                                   "and profiles it. A few minutes on 2 cores.")
    d.add_argument("--out", default="demo_out", help="output directory (default demo_out)")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (EdgeLSTMError, InputError) as exc:
        if args.debug:
            raise
        print(f"edgelstm: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("edgelstm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
