"""`edgelstm convert`: a Keras model to a correct full-int8 .tflite, or a clear reason why not.

Steps: load the .keras file safely; preflight (refuse or rewrite what the converter crashes on or
does not fuse, rebuild Keras 3 as tf_keras, check the rewrite computes the same); convert in a child
process (a converter segfault becomes a ConversionError); post-check the fused ops and types; repair
the quantization LiteRT mishandles; embed preprocessing.json; measure LiteRT against TFLite Micro,
edgelstm against both, and the int8 model against the float one on the calibration samples.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np

from .. import lstm_shared
from ..errors import ConversionError, EdgeLSTMError, ReferenceUnavailable
from ..graph.repair import Repair, apply, match_ranges, plan
from ..graph.writer import PREPROCESSING_KEY, with_metadata
from ..tflite_reader import read_model
from .preflight import LayerInfo, Prepared, Rewrite, preflight

CHILD_TIMEOUT_S = 900
_TAIL_LINES = 15


@dataclass
class ConversionReport:
    model: str
    out: str
    source: str
    io: str
    batch_size: int
    calibration_samples: int
    layers: list[LayerInfo] = field(default_factory=list)
    rewrites: list[Rewrite] = field(default_factory=list)
    rebuild_max_abs_diff: float = 0.0
    postcheck: dict = field(default_factory=dict)
    repairs: list[Repair] = field(default_factory=list)
    agreement: dict = field(default_factory=dict)   # "converter" (as converted) and "repaired"
    lint: list[dict] = field(default_factory=list)
    preprocessing: Optional[str] = None             # path of the embedded preprocessing.json
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "out": self.out, "source": self.source, "io": self.io,
                "batch_size": self.batch_size, "calibration_samples": self.calibration_samples,
                "layers": [x.to_dict() for x in self.layers], "rewrites": [r.to_dict() for r in self.rewrites],
                "rebuild_max_abs_diff": self.rebuild_max_abs_diff, "postcheck": self.postcheck,
                "repairs": [r.to_dict() for r in self.repairs], "agreement": self.agreement,
                "lint": self.lint, "preprocessing": self.preprocessing, "seconds": self.seconds}


# -- keeping TensorFlow's noise out of the terminal ---------------------------------------------------
class _StderrLog:
    """Sends file descriptor 2 (TensorFlow's C++ logging, absl, Python warnings) to a log file, so the
    user sees only our messages; `tail()` gives the last lines for an error message."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled
        self._saved: Optional[int] = None

    def __enter__(self) -> "_StderrLog":
        if self.enabled:
            sys.stderr.flush()
            self._saved = os.dup(2)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 2)
            os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            sys.stderr.flush()
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None

    def say(self, msg: str) -> None:
        """A progress line on the user's real stderr."""
        line = (msg + "\n").encode()
        if self._saved is not None:
            os.write(self._saved, line)
        else:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    def tail(self, n: int = _TAIL_LINES) -> str:
        return log_tail(self.path, n)


def log_tail(path: Path, n: int = _TAIL_LINES) -> str:
    try:
        lines = [ln.rstrip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    # absl's start-up chatter ("oneDNN custom operations are on", "Could not find cuda drivers")
    keep = [ln for ln in lines if not (ln.startswith(("I0000", "W0000", "E0000")) and (
            "port.cc" in ln or "cudart" in ln or "cuda_platform" in ln))
            and not ln.startswith(("WARNING: All log messages before absl", "Extension modules:"))]
    for k, ln in enumerate(keep):
        if ln.startswith("Fatal Python error"):  # a crash: where it happened matters, innermost frames first
            return "\n".join(keep[max(0, k - 2):k + n - 2])
    return "\n".join(keep[-n:])


# -- the converter in a child process -----------------------------------------------------------------
def run_converter(keras_path: Path, calibration_path: Path, out_dir: Path, io: str = "int8",
                  verbose: bool = False, timeout: float = CHILD_TIMEOUT_S, what: str = "the model") -> bytes:
    """Run the stock full-int8 converter on a saved tf_keras model in a child process and return the
    .tflite bytes. A crash or failure of the converter becomes a ConversionError with the child's
    last output lines; this process is never at risk."""
    import edgelstm

    env = dict(os.environ)
    root = str(Path(edgelstm.__file__).resolve().parents[1])  # the child imports this very edgelstm
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["TF_USE_LEGACY_KERAS"] = "1"
    log = out_dir / "converter.log"
    cmd = [sys.executable, "-m", "edgelstm.convert.child", str(keras_path), str(calibration_path), str(out_dir),
           "--io", io]
    with open(log, "wb") as sink:
        # verbose: the user watches TensorFlow's output live; otherwise it goes to the log
        target = None if verbose else sink
        proc = subprocess.Popen(cmd, stdout=target, stderr=subprocess.STDOUT if not verbose else None, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ConversionError(f"the TFLite converter did not finish within {timeout:.0f} s on {what}") from None
        except BaseException:  # Ctrl-C: do not leave a converter running
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    tail = log_tail(log) if not verbose else "(shown above)"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = "unknown signal"
        raise ConversionError(f"the TFLite converter crashed (signal {-rc}, {name}) on {what}. edgelstm's "
                              "preflight knows no cause for this; please report the model. Last lines of the "
                              f"converter's output:\n{tail}")
    if rc != 0:
        raise ConversionError(f"the TFLite converter failed on {what} (exit status {rc}). Last lines of its "
                              f"output:\n{tail}")
    return (out_dir / "int8.tflite").read_bytes()


# -- post-check ---------------------------------------------------------------------------------------
def postcheck(model: bytes, expected_lstm_ops: int) -> dict:
    """The converted model holds the fused integer LSTMs it should and nothing the runtimes mishandle."""
    from ..lint import lint

    g = read_model(model)
    problems: list[str] = []
    lstms = [op for op in g.operators if op.opcode == lstm_shared.OPCODE]
    if len(lstms) != expected_lstm_ops:
        problems.append(f"{len(lstms)} fused UNIDIRECTIONAL_SEQUENCE_LSTM ops, expected {expected_lstm_ops} "
                        "(one per LSTM layer, two per Bidirectional)")
    for op in lstms:
        for k in (*lstm_shared.INPUT_WEIGHTS, *lstm_shared.RECURRENT_WEIGHTS):
            t = g.tensors[op.inputs[k]] if op.inputs[k] != -1 else None
            if t is None or t.type_name != "INT8":
                problems.append(f"{op.describe()}: weight input {k} is {t.type_name if t else 'absent'}, not INT8")
        c = g.tensors[op.inputs[lstm_shared.CELL_STATE]]
        if c.type_name != "INT16":
            problems.append(f"{op.describe()}: cell state is {c.type_name}, not INT16")
    structural = {"not_fused", "flex_op", "custom_op", "float_op", "float_model", "hybrid_lstm", "lstm_16x8",
                  "lstm_weights", "lstm_weight_zero_point", "lstm_intermediates", "lstm_state"}
    for h in lint(model):
        if h.code in structural:
            problems.append(h.message)
    return {"ok": not problems, "lstm_ops": len(lstms), "expected_lstm_ops": expected_lstm_ops,
            "ops": sorted({op.opcode for op in g.operators}), "problems": problems}


# -- measuring ----------------------------------------------------------------------------------------
def _quantize(x: np.ndarray, q) -> np.ndarray:
    return np.clip(np.round(x / q.s) + q.zp, -128, 127).astype(np.int8)


def _output_lsb(g, out_index: int) -> Optional[tuple[float, int]]:
    """(scale, zero point) of an output's int8 values: the tensor itself, or DEQUANTIZE's input."""
    t = g.tensors[out_index]
    if t.type_name == "INT8" and t.quant is not None:
        return t.quant.s, t.quant.zp
    for op in g.operators:
        if op.opcode == "DEQUANTIZE" and op.outputs[0] == out_index:
            src = g.tensors[op.inputs[0]]
            if src.quant is not None:
                return src.quant.s, src.quant.zp
    return None


def measure(model: bytes, batches: np.ndarray, float_outputs: list[np.ndarray], check_edgelstm: bool = True) -> dict:
    """Agreement on the calibration samples (state reset per sample): LiteRT vs TFLite Micro in output
    LSB and on each LSTM's hidden state, edgelstm's two flavours vs the runtime each follows, and the
    int8 outputs vs `float_outputs` (the float Keras model's, [samples * batch, ...] per output)."""
    from ..references import get_reference

    g = read_model(model)
    qin = g.tensors[g.inputs[0]]
    xs = [_quantize(xb, qin.quant) if qin.type_name == "INT8" else np.ascontiguousarray(xb, np.float32)
          for xb in batches]
    lsbs = [_output_lsb(g, o) for o in g.outputs]
    lstm_outs = [op.outputs[0] for op in g.operators if op.opcode == lstm_shared.OPCODE]
    litert = get_reference("litert", model, preserve_all_tensors=True)
    y_lit, h_lit = [], []
    for x in xs:
        y_lit.append(litert.run([x]))
        kept = litert.tensors()
        h_lit.append([kept[t] for t in lstm_outs])
    b = batches.shape[1]
    y_flt = [[f[i * b:(i + 1) * b] for f in float_outputs] for i in range(len(xs))]
    result: dict[str, Any] = {"samples": len(xs)}

    def in_lsb(a: np.ndarray, b: np.ndarray, k: int) -> float:
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        if a.dtype.kind == "f" and lsbs[k] is not None:
            d = d / lsbs[k][0]
        return float(d.max()) if d.size else 0.0

    try:
        tflm = get_reference("tflm", model, preserve_all_tensors=True)
        y_tflm, h_tflm = [], []
        for x in xs:
            y_tflm.append(tflm.run([x]))
            kept = tflm.tensors()
            h_tflm.append([kept[t] for t in lstm_outs])
        diffs = [in_lsb(a, b, k) for ya, yb in zip(y_lit, y_tflm) for k, (a, b) in enumerate(zip(ya, yb))]
        differing = sum(int(np.count_nonzero(a != b)) for ya, yb in zip(y_lit, y_tflm) for a, b in zip(ya, yb))
        total = sum(a.size for ya in y_lit for a in ya)
        hidden = [max(int(np.max(np.abs(a[k].astype(np.int32) - c[k].astype(np.int32)))) for a, c in zip(h_lit, h_tflm))
                  for k in range(len(lstm_outs))]
        result["litert_vs_tflm"] = {"max_lsb": round(max(diffs), 3), "differing": differing, "elements": total,
                                    "lstm_max_lsb": hidden}
    except ReferenceUnavailable as exc:
        y_tflm = None
        result["litert_vs_tflm"] = {"unavailable": str(exc)}

    # int8 vs float: dequantized LiteRT outputs against the (rebuilt, checked) float Keras model
    errs, worst, agree, n_cls = [], 0.0, 0, 0
    for ya, yf in zip(y_lit, y_flt):
        for k, (a, f) in enumerate(zip(ya, yf)):
            if lsbs[k] is None:
                continue
            s, zp = lsbs[k]
            real = (a.astype(np.float64) - zp) * s if a.dtype.kind in "iu" else a.astype(np.float64)
            e = np.abs(real - f) / s
            errs.append(e.ravel())
            worst = max(worst, float(e.max()))
            if f.ndim >= 1 and f.shape[-1] > 1:
                agree += int(np.sum(real.reshape(-1, f.shape[-1]).argmax(-1) == f.reshape(-1, f.shape[-1]).argmax(-1)))
                n_cls += int(np.prod(f.shape[:-1]))
    if errs:
        flat = np.concatenate(errs)
        result["int8_vs_float"] = {"max_lsb": round(worst, 3), "mean_lsb": round(float(flat.mean()), 3)}
        if n_cls:
            result["int8_vs_float"]["argmax_agreement"] = round(agree / n_cls, 4)

    if check_edgelstm:
        result["edgelstm"] = _edgelstm_agreement(model, xs, y_lit, y_tflm)
    return result


def _edgelstm_agreement(model: bytes, xs, y_lit, y_tflm) -> dict:
    from ..model import load

    out: dict[str, Any] = {}
    for flavor, want in (("tflite", y_lit), ("tflm", y_tflm)):
        if want is None:
            continue
        try:
            m = load(model, flavor=flavor)
            got = [m.run(x) for x in xs]
        except EdgeLSTMError as exc:
            out[flavor] = {"unavailable": str(exc)}
            continue
        got = [g if isinstance(g, list) else [g] for g in got]
        differing = sum(int(np.count_nonzero(a != b)) for ya, yb in zip(got, want) for a, b in zip(ya, yb))
        out[flavor] = {"against": "litert" if flavor == "tflite" else "tflm", "differing": differing}
    return out


# -- the whole job ------------------------------------------------------------------------------------
def load_calibration(source: Union[str, Path, np.ndarray]) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return source
    path = Path(source)
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ConversionError(f"calibration file not found: {path}") from None
    except (ValueError, OSError) as exc:
        raise ConversionError(f"cannot read calibration data {path} (a .npy array, no pickles): {exc}") from None
    if not isinstance(data, np.ndarray):
        raise ConversionError(f"{path} holds several arrays (.npz); give one .npy array [N, ...]")
    return data


def read_preprocessing(model_path: Path) -> Optional[tuple[Path, bytes]]:
    """preprocessing.json next to the model, validated and re-serialized compactly, if there is one."""
    path = model_path.parent / "preprocessing.json"
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ConversionError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path} must hold a JSON object")
    return path, json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _check_preprocessing(pre: tuple[Path, bytes], features: int) -> None:
    """The normalisation record must describe the model's input features, one statistic each."""
    path, data = pre
    obj = json.loads(data)
    for key in ("mean", "std", "features"):
        value = obj.get(key)
        if isinstance(value, list) and len(value) != features:
            raise ConversionError(f"{path}: '{key}' has {len(value)} entries but the model takes {features} "
                                  "input features")


@contextlib.contextmanager
def _timer(seconds: dict, key: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    seconds[key] = round(time.perf_counter() - t0, 2)


def convert(model_path: Union[str, Path], calibration: Union[str, Path, np.ndarray], out: Union[str, Path],
            io: str = "int8", verbose: bool = False, check_edgelstm: bool = True,
            progress: Optional[Callable[[str], None]] = None) -> ConversionReport:
    """Convert a .keras model (tf_keras or Keras 3) to a repaired full-int8 .tflite written to `out`.

    Raises ConversionError naming the layer and the reason when the model cannot be converted
    correctly; nothing is written then."""
    if io not in ("int8", "float"):
        raise ConversionError(f"io must be 'int8' or 'float', not {io!r}")
    model_path, out = Path(model_path), Path(out)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edgelstm-convert-") as tmp_name:
        tmp = Path(tmp_name)
        with _StderrLog(tmp / "parent.log", enabled=not verbose) as log:
            say = progress or (lambda msg: log.say(f"[edgelstm convert] {msg}"))
            try:
                with _timer(seconds, "preflight"):
                    say(f"loading {model_path.name} and checking its layers")
                    calib = load_calibration(calibration)
                    pre_json = read_preprocessing(model_path)
                    from .keras3 import load_keras

                    keras_model, source = load_keras(model_path)
                    prepared: Prepared = preflight(keras_model, source, calib, progress=say)
                    if pre_json is not None:
                        _check_preprocessing(pre_json, prepared.calibration.shape[-1])
                    prepared.model.save(tmp / "model.keras")
                    np.save(tmp / "calibration.npy", prepared.calibration)
            except ConversionError:
                raise
            except Exception as exc:  # TensorFlow/Keras failures while rebuilding: say which, with its log
                raise ConversionError(f"preparing {model_path.name} for the converter failed: "
                                      f"{type(exc).__name__}: {exc}\n{log.tail()}") from None
            say(f"running the TFLite converter in a child process "
                f"({len(prepared.calibration)} calibration samples)")
            with _timer(seconds, "converter"):
                int8 = run_converter(tmp / "model.keras", tmp / "calibration.npy", tmp, io=io,
                                          verbose=verbose, what=model_path.name)
            with _timer(seconds, "postcheck"):
                check = postcheck(int8, prepared.lstm_ops)
            if not check["ok"]:
                raise ConversionError(f"the converter's output for {model_path.name} is not a fused full-int8 "
                                      "LSTM model: " + "; ".join(check["problems"]))
            say("repairing the LSTM quantization and measuring LiteRT vs TFLite Micro")
            with _timer(seconds, "repair"):
                repairs = plan(int8, match_ranges(int8, prepared.hidden))
                fixed = apply(int8, repairs)
            with _timer(seconds, "measure"):
                agreement = {}
                if any(r.changes for r in repairs):
                    agreement["converter"] = measure(int8, prepared.calibration, prepared.float_outputs,
                                                     check_edgelstm=False)
                agreement["repaired"] = measure(fixed, prepared.calibration, prepared.float_outputs,
                                                check_edgelstm=check_edgelstm)
            from ..lint import lint

            hazards = lint(fixed)
            errors = [h for h in hazards if h.severity == "error"]
            if errors:
                raise ConversionError(f"{model_path.name}: the repaired model still has hazards: "
                                      + "; ".join(h.message for h in errors))
            pre_path = None
            if pre_json is not None:
                pre_path, data = pre_json
                fixed = with_metadata(fixed, PREPROCESSING_KEY, data)
            out.parent.mkdir(parents=True, exist_ok=True)
            part = out.with_name(out.name + ".part")
            part.write_bytes(fixed)
            part.replace(out)
    return ConversionReport(model=str(model_path), out=str(out), source=prepared.source, io=io,
                            batch_size=prepared.batch_size, calibration_samples=len(prepared.calibration),
                            layers=prepared.layers, rewrites=prepared.rewrites,
                            rebuild_max_abs_diff=prepared.max_abs_diff, postcheck=check, repairs=repairs,
                            agreement=agreement, lint=[h.to_dict() for h in hazards],
                            preprocessing=str(pre_path) if pre_path else None, seconds=seconds)


def render(report: ConversionReport) -> str:
    """The report as a short human-readable table."""
    lines = [f"converted {report.model} ({report.source}) -> {report.out}  [io={report.io}, batch "
             f"{report.batch_size}, {report.calibration_samples} calibration samples]", "", "layers:"]
    for x in report.layers:
        ops = f"  -> {x.lstm_ops} fused LSTM op{'s' if x.lstm_ops > 1 else ''}" if x.lstm_ops else ""
        lines.append(f"  {x.name:<24} {x.kind:<20} {x.detail}{ops}")
    lines.append("rewrites:" if report.rewrites else "rewrites: none")
    for r in report.rewrites:
        lines.append(f"  {r.layer:<24} {r.change}  ({r.why})")
    if report.source == "keras3" or report.rewrites:
        lines.append(f"  rebuilt model vs original: max abs difference {report.rebuild_max_abs_diff:.3g}")
    pc = report.postcheck
    lines.append(f"post-check: {'OK' if pc.get('ok') else 'FAILED'} ({pc.get('lstm_ops')} fused LSTM ops; "
                 f"ops: {', '.join(pc.get('ops', []))})")
    applied = [r for r in report.repairs if r.changes]
    lines.append("repairs:" if report.repairs else "repairs: none needed")
    for r in report.repairs:
        lines.append(f"  ops {r.ops} {r.kind}: {r.why}")
        for c in r.changes:
            lines.append(f"    tensor {c.tensor:<4} {c.name[:40]:<40} scale {c.before[0]:.6g} zp {c.before[1]:>4}"
                         f"  ->  scale {c.after[0]:.6g} zp {c.after[1]:>4}")
    lines.append("agreement on the calibration samples (state reset per sample):")
    for stage in ("converter", "repaired"):
        a = report.agreement.get(stage)
        if not a:
            continue
        label = "as converted" if stage == "converter" else ("repaired" if applied else "final")
        lt = a.get("litert_vs_tflm", {})
        lt_s = (f"max {lt['max_lsb']:g} LSB ({lt['differing']}/{lt['elements']} elements differ; LSTM hidden "
                f"states max {'/'.join(str(v) for v in lt['lstm_max_lsb'])} LSB)"
                if "max_lsb" in lt else f"not measured ({lt.get('unavailable', '?')})")
        fl = a.get("int8_vs_float", {})
        fl_s = (f"max {fl['max_lsb']:g} LSB, mean {fl['mean_lsb']:g}" if fl else "n/a")
        if "argmax_agreement" in fl:
            fl_s += f", argmax agrees {100 * fl['argmax_agreement']:.1f}%"
        lines.append(f"  {label:<13} LiteRT vs TFLite Micro: {lt_s}; int8 vs float: {fl_s}")
        for flavor, e in a.get("edgelstm", {}).items():
            if "differing" in e:
                lines.append(f"  {'':<13} edgelstm flavor={flavor} vs {e['against']}: {e['differing']} differing "
                             "elements")
            else:
                lines.append(f"  {'':<13} edgelstm flavor={flavor}: {e.get('unavailable')}")
    notes = [h for h in report.lint if h["severity"] != "error"]
    lines.append("lint: clean" if not notes else "lint notes: " + "; ".join(h["message"] for h in notes))
    if report.preprocessing:
        lines.append(f"embedded {report.preprocessing} as metadata '{PREPROCESSING_KEY}'")
    return "\n".join(lines)
