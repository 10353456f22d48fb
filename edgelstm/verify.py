"""Cross-check edgelstm against a reference interpreter, element for element.

The comparison is exact: any differing element is a failure. On a mismatch it locates the first
operator whose output differs (both sides keep every tensor) and, for sequence outputs, the first
timestep, because that is where a user starts looking.

The reference runs in a child process (`references.IsolatedReference`) with a time limit per
input, while edgelstm runs here: a reference that segfaults or hangs yields a result with status
"crashed" or "timed_out" naming the input it was working on, and `verify_all` goes on with the
next reference.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .errors import EdgeLSTMError, InputError, ModelError, ReferenceUnavailable
from .model import Model, load
from .references import DEFAULT_TIMEOUT_S, IsolatedReference, ReferenceFailure, available
from .tflite_reader import model_bytes

DEFAULT_TIME_STEPS = 50
STATUSES = ("ok", "crashed", "timed_out", "unavailable")


@dataclass
class OutputDiff:
    name: str
    elements: int = 0
    mismatched_elements: int = 0
    max_abs_diff: int = 0


@dataclass
class FirstMismatch:
    sample: int
    op_index: Optional[int]
    opcode: Optional[str]
    tensor: Optional[str]
    timestep: Optional[int]


@dataclass
class VerifyResult:
    """One reference's verdict. `status`: "ok" (the reference ran every input), "crashed" or
    "timed_out" (its process died or exceeded the time limit on input `failed_input`; `outputs`
    count what was compared before that), "unavailable" (it cannot run this model here; only from
    `verify_all`, `verify` raises ReferenceUnavailable). `detail` says what happened in words: the
    failure, or why the first mismatch could not be located. After a mismatch, `matching_flavors`
    names the other registered flavours that reproduce the reference exactly on the same inputs."""

    reference: dict
    samples: int
    outputs: list[OutputDiff]
    first_mismatch: Optional[FirstMismatch] = None
    state_checked: bool = False
    flavor: str = "tflite"
    status: str = "ok"
    detail: Optional[str] = None
    failed_input: Optional[int] = None
    signal: Optional[int] = None
    matching_flavors: list[str] = field(default_factory=list)

    @property
    def mismatched_elements(self) -> int:
        return sum(o.mismatched_elements for o in self.outputs)

    @property
    def max_abs_diff(self) -> int:
        return max((o.max_abs_diff for o in self.outputs), default=0)

    @property
    def bit_exact(self) -> bool:
        return self.status == "ok" and self.mismatched_elements == 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(bit_exact=self.bit_exact, mismatched_elements=self.mismatched_elements,
                 max_abs_diff=self.max_abs_diff)
        return d


def _concrete_shape(shape: tuple[int, ...], time_steps: int) -> tuple[int, ...]:
    return tuple(time_steps if d == -1 else d for d in shape)


def make_inputs(model: Model, samples: int, seed: int = 0,
                time_steps: int = DEFAULT_TIME_STEPS) -> list[list[np.ndarray]]:
    """Random inputs over the whole input range, then the constant extremes (min, max, zero)."""
    rng = np.random.default_rng(seed)
    out = []
    n_random = max(samples - 3, 1) if samples > 3 else samples
    for k in range(samples):
        xs = []
        for spec in model.inputs:
            shape = _concrete_shape(spec.shape, time_steps)
            if spec.dtype.kind == "f":
                lo, hi = _float_range(model, spec.index)
                if k < n_random:
                    a = rng.uniform(lo, hi, size=shape).astype(spec.dtype)
                else:
                    a = np.full(shape, [lo, hi, 0.0][(k - n_random) % 3], dtype=spec.dtype)
            else:
                info = np.iinfo(spec.dtype)
                if k < n_random:
                    a = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=spec.dtype)
                else:
                    zp = spec.quantization.zp if spec.quantization is not None else 0
                    a = np.full(shape, [info.min, info.max, zp][(k - n_random) % 3], dtype=spec.dtype)
            xs.append(a)
        out.append(xs)
    return out


def _float_range(model: Model, tensor_index: int) -> tuple[float, float]:
    """The real range a float input covers once quantized by its QUANTIZE op (a bit beyond it)."""
    for op in model.graph.operators:
        if op.opcode == "QUANTIZE" and op.inputs and op.inputs[0] == tensor_index:
            q = model.graph.tensors[op.outputs[0]].quant
            if q is not None and q.per_tensor:
                return q.s * (-128 - q.zp) * 1.1, q.s * (127 - q.zp) * 1.1
    return -4.0, 4.0


def load_inputs(path: Union[str, Path], model: Model) -> tuple[list[list[np.ndarray]], bool]:
    """Inputs from a .npy file: one input (the model's shape) or several stacked on a new first axis.

    Returns the samples and whether the file held a stack of them."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic != b"\x93NUMPY":
            # np.load would try to unpickle it and blame pickling; say what the file is not
            kind = "a .npz archive" if magic[:2] == b"PK" else "not a .npy file (no NumPy header)"
            raise InputError(f"{path} is {kind}; expected one .npy array")
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"input file not found: {path}") from None
    except ValueError as exc:
        raise InputError(f"{path} is not a plain .npy array ({exc})") from None
    except OSError as exc:
        raise InputError(f"cannot read {path} as .npy: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path} must hold a single array (.npy), not an archive")
    if len(model.inputs) != 1:
        raise InputError("models with several inputs need one .npy per input; not supported by --inputs yet")
    spec = model.inputs[0]
    if arr.dtype != spec.dtype:
        raise InputError(f"{path}: expected dtype {spec.dtype.name}, got {arr.dtype.name}")
    if arr.ndim == len(spec.shape):
        return [[arr]], False
    if arr.ndim == len(spec.shape) + 1:
        if arr.shape[0] == 0:
            raise InputError(f"{path} is empty: a stack of 0 samples (shape {list(arr.shape)})")
        return [[a] for a in arr], True
    raise InputError(f"{path}: expected shape {list(spec.shape)} or [N, *{list(spec.shape)}], "
                     f"got {list(arr.shape)}")


def _first_timestep(a: np.ndarray, b: np.ndarray, time_axis: int) -> Optional[int]:
    if a.ndim != 3 or a.shape != b.shape:
        return None
    diff = np.moveaxis(a != b, time_axis, 0).reshape(a.shape[time_axis], -1).any(axis=1)
    idx = np.flatnonzero(diff)
    return int(idx[0]) if idx.size else None


def _locate(model: Model, ref_bytes: bytes, ref_name: str, xs: list[np.ndarray], sample: int,
            timeout: Optional[float]) -> tuple[FirstMismatch, Optional[str]]:
    """The first op whose output differs on sample `xs`, from every tensor of both runtimes; when the
    reference cannot keep or give its tensors, an unlocated mismatch and the reason."""
    try:
        with IsolatedReference(ref_name, ref_bytes, preserve_all_tensors=True, timeout=timeout) as ref:
            ref.run(xs, reset=True)
            theirs = ref.tensors()
    except (ReferenceFailure, ReferenceUnavailable) as exc:
        return FirstMismatch(sample, None, None, None, None), f"the first differing op was not located: {exc}"
    ours = model.run_all_tensors(xs, reset=True)
    for op in model.graph.operators:
        for o in op.outputs:
            if o in theirs and o in ours and (theirs[o].shape != ours[o].shape or np.any(unequal(ours[o], theirs[o]))):
                time_axis = 1 if not op.options.get("time_major") else 0
                return FirstMismatch(sample, op.index, op.opcode, model.graph.tensors[o].name,
                                     _first_timestep(ours[o], theirs[o], time_axis)), None
    return FirstMismatch(sample, None, None, None, None), None


def _where(sample: int, carried: bool) -> str:
    return f"on input {sample}" + (" of the pass that carries state across inputs" if carried else "")


def verify(model_source: Union[str, Path, bytes], reference: str = "litert",
           inputs: Optional[list[list[np.ndarray]]] = None, samples: int = 8, seed: int = 0,
           time_steps: int = DEFAULT_TIME_STEPS, check_state: bool = True,
           progress: Optional[Callable[[int, int], None]] = None,
           timeout: Optional[float] = DEFAULT_TIMEOUT_S, flavor: Optional[str] = None) -> VerifyResult:
    """Compare edgelstm with `reference` on the given (or generated) inputs.

    The reference decides edgelstm's flavor unless `flavor` names one (`flavor_for`: "tflm" for
    TFLite Micro, "tflite-runtime" for tflite-runtime, "tflite" for LiteRT and tf.lite); the result
    records which (`flavor`). TFLite Micro runs only the shapes stored in the model, so for it the
    generated inputs of a dynamic model have those (usually a time length of 1). When the outputs
    differ, every other registered flavour is run on the same inputs too, and those that match the
    reference exactly are listed in `matching_flavors`.

    With check_state, the samples are also run back to back without resetting the state, in both
    runtimes, so that state carried across invocations is compared too.

    The reference runs in a child process; loading the model and each input may take it at most
    `timeout` seconds (None: no limit). If it crashes or times out, the result says so (`status`,
    `detail`, `failed_input`, `signal`) and is not bit-exact. A reference that is not installed or
    cannot load or run the model raises ReferenceUnavailable.
    """
    data = model_bytes(model_source)
    flavor = flavor or flavor_for(reference)
    # the child loads its model while edgelstm loads (and compiles) its own
    with IsolatedReference(reference, bytes(data), timeout=timeout) as ref:
        model = load(data, flavor=flavor)
        if inputs is None:
            inputs = make_inputs(model, samples, seed, time_steps)
        diffs = [OutputDiff(o.name) for o in model.outputs]
        result = VerifyResult(reference={"name": reference, "version": None}, samples=len(inputs),
                              outputs=diffs, state_checked=check_state, flavor=flavor)
        try:
            ref.ready()
        except ReferenceFailure as exc:
            return _failed(result, exc, None)
        result.reference["version"] = ref.version
        first_bad: Optional[tuple[int, list[np.ndarray]]] = None
        # every comparison made, so that other flavours can be checked against it after a mismatch
        record: list[tuple[bool, list[np.ndarray], bool, list[np.ndarray]]] = []
        total = len(inputs) * (2 if check_state else 1)
        done = 0
        for pass_no in range(2 if check_state else 1):
            reset_each = pass_no == 0
            model.reset()
            prev_shapes = None
            for s, xs in enumerate(inputs):
                xs = model.check_inputs(xs)
                shapes = [a.shape for a in xs]
                # The reference interpreter reallocates, and so resets its state, when the input shape
                # changes; edgelstm carries state across lengths (streaming chunks), so compare from a reset.
                reset = reset_each or shapes != prev_shapes
                prev_shapes = shapes
                ref.submit(xs, reset=reset, label=_where(s, not reset_each))
                ours = model.run(xs, reset=reset)
                try:
                    theirs = ref.result()
                except ReferenceFailure as exc:
                    if first_bad is not None:
                        result.first_mismatch = FirstMismatch(first_bad[0], None, None, None, None)
                    return _failed(result, exc, s)
                ours = ours if isinstance(ours, list) else [ours]
                record.append((s == 0, xs, reset, theirs))
                for d, a, b in zip(diffs, ours, theirs):
                    d.elements += a.size
                    if a.shape != b.shape:
                        d.mismatched_elements += max(a.size, b.size)
                        continue
                    differ = unequal(a, b)
                    bad = int(np.count_nonzero(differ))
                    if bad:
                        d.mismatched_elements += bad
                        delta = np.abs(a[differ].astype(np.float64) - b[differ].astype(np.float64))
                        d.max_abs_diff = max(d.max_abs_diff, _as_number(np.nan_to_num(delta, nan=np.inf).max()))
                        if first_bad is None and reset:
                            first_bad = (s, xs)
                done += 1
                if progress:
                    progress(done, total)
    if first_bad is not None:
        result.first_mismatch, result.detail = _locate(model, bytes(data), reference, first_bad[1], first_bad[0],
                                                       timeout)
    elif any(d.mismatched_elements for d in diffs):
        result.first_mismatch = FirstMismatch(-1, None, None, None, None)  # only the carried-state pass differed
    if not result.bit_exact:
        result.matching_flavors = _flavors_matching(bytes(data), flavor, record)
    return result


def _flavors_matching(data: bytes, used: str, record: list[tuple[bool, list[np.ndarray], bool, list[np.ndarray]]]
                      ) -> list[str]:
    """The registered flavours other than `used` whose outputs equal the reference's on every
    recorded comparison (pass start, inputs, reset, reference outputs), run in the same order. A
    flavour that refuses the model or the inputs (TFLite Micro's static shapes) does not match."""
    from .ops import flavors

    found = []
    for fl in flavors():
        if fl.name == used:
            continue
        try:
            model = load(data, flavor=fl)
            for starts_pass, xs, reset, theirs in record:
                if starts_pass:
                    model.reset()
                ours = model.run(model.check_inputs(xs), reset=reset)
                ours = ours if isinstance(ours, list) else [ours]
                if any(a.shape != b.shape or np.any(unequal(a, b)) for a, b in zip(ours, theirs)):
                    break
            else:
                found.append(fl.name)
        except (ModelError, InputError):
            continue
    return found


def _failed(result: VerifyResult, exc: ReferenceFailure, sample: Optional[int]) -> VerifyResult:
    result.status, result.detail, result.failed_input, result.signal = exc.status, str(exc), sample, exc.signal
    return result


def verify_all(model_source: Union[str, Path, bytes], references: Optional[Sequence[str]] = None,
               inputs: Optional[list[list[np.ndarray]]] = None, samples: int = 8, seed: int = 0,
               time_steps: int = DEFAULT_TIME_STEPS, check_state: bool = True,
               progress: Optional[Callable[[str, int, int], None]] = None,
               timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> list[VerifyResult]:
    """`verify` against each of `references` (default: every installed one), one result per
    reference in that order. A reference that crashes or hangs is reported with that status and the
    others still run; one that cannot run the model here gets status "unavailable" with the reason
    in `detail`, as does the tflm reference when edgelstm's tflm flavor refuses the model or the
    inputs (TFLite Micro's static shapes). Errors that concern every reference (the model, the
    inputs for the default flavor) are raised."""
    data = model_bytes(model_source)
    names = list(references) if references is not None else available()
    if not names:
        raise ReferenceUnavailable("no reference interpreter is installed (pip install ai-edge-litert)")
    results = []
    for name in names:
        try:
            res = verify(data, reference=name, inputs=inputs, samples=samples, seed=seed, time_steps=time_steps,
                         check_state=check_state, timeout=timeout,
                         progress=None if progress is None else (lambda d, t, n=name: progress(n, d, t)))
        except (ModelError, InputError) as exc:
            if flavor_for(name) == "tflite":
                raise
            res = _unavailable(name, exc)
        except ReferenceUnavailable as exc:  # e.g. TensorFlow's bundled interpreter lacks a newer op version
            res = _unavailable(name, exc)
        results.append(res)
    return results


def _unavailable(name: str, exc: EdgeLSTMError) -> VerifyResult:
    return VerifyResult(reference={"name": name, "version": None}, samples=0, outputs=[], flavor=flavor_for(name),
                        status="unavailable", detail=str(exc))


def flavor_for(reference: str) -> str:
    """The edgelstm flavor whose arithmetic a reference interpreter runs: the first registered
    flavour whose policy names that reference; the LiteRT one for a reference no flavour names
    (tf.lite, TensorFlow's bundled copy of LiteRT's kernels)."""
    from .ops import flavors

    return next((f.name for f in flavors() if f.policy.reference == reference), "tflite")


def unequal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise "differs", where two NaNs are equal and inf equals inf (so floats compare exactly)."""
    differ = a != b
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        differ &= ~(np.isnan(a) & np.isnan(b))
    return differ


def _as_number(v) -> Union[int, float]:
    f = float(v)
    return int(f) if f.is_integer() else f


def stderr_progress(label: str) -> Callable[[int, int], None]:
    """A one-line progress display on stderr (only when it is a terminal)."""
    tty = sys.stderr.isatty()

    def show(done: int, total: int) -> None:
        if not tty:
            return
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
