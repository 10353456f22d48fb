"""Training data: BasicMotions, synthetic sets, user .npy/.npz/CSV files, splits and normalisation."""
import json

import numpy as np
import pytest

from edgelstm.convert.data import (BASICMOTIONS_FEATURES, Preprocessing, block_split, load_arrays,
                                   load_basicmotions, load_csv, load_dataset, load_preprocessing, make_windows,
                                   read_csv, stratified_split, synthetic)
from edgelstm.errors import InputError


def test_basicmotions_official_split_and_stratified_validation():
    d = load_basicmotions(seed=0)
    assert d.classes == ["Badminton", "Running", "Standing", "Walking"]
    assert d.features == BASICMOTIONS_FEATURES and d.task == "classification"
    assert d.x_train.dtype == np.float32 and d.x_train.shape[1:] == (100, 6)
    assert d.x_test.shape == (40, 100, 6) and np.bincount(d.y_test).tolist() == [10, 10, 10, 10]
    # 40 official training sequences: 2 per class to validation, the rest to training
    assert len(d.x_train) == 32 and np.bincount(d.y_val).tolist() == [2, 2, 2, 2]
    whole = load_basicmotions(val_fraction=0)
    assert len(whole.x_train) == 40 and len(whole.x_val) == 0
    # train and validation partition the official training set
    rows = {r.tobytes() for r in np.concatenate([d.x_train, d.x_val])}
    assert rows == {r.tobytes() for r in whole.x_train}
    again, other = load_basicmotions(seed=0), load_basicmotions(seed=1)
    assert np.array_equal(again.x_val, d.x_val) and not np.array_equal(other.x_val, d.x_val)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_synthetic_is_deterministic(task):
    a, b, c = synthetic(task, seed=3), synthetic(task, seed=3), synthetic(task, seed=4)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.sizes() == {"train": 144, "val": 48, "test": 48} and a.x_train.shape[1:] == (24, 3)
    if task == "classification":
        assert a.y_train.dtype == np.int64 and a.n_outputs == 3
    else:
        assert a.y_train.dtype == np.float32 and a.classes is None and a.n_outputs == 1


def test_stratified_split_keeps_each_class_on_both_sides():
    y = np.repeat([0, 1, 2], [10, 5, 2])
    keep, take = stratified_split(y, 0.2, seed=0)
    assert sorted(np.concatenate([keep, take]).tolist()) == list(range(17))
    assert np.bincount(y[take]).tolist() == [2, 1, 1]
    with pytest.raises(InputError, match="too few"):
        stratified_split(np.array([0]), 0.2, seed=0)


# ----------------------------------------------------------------------------------------- .npy / .npz

def _xy(n=50, t=7, f=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, t, f)), np.arange(n) % 3


@pytest.mark.parametrize("xkey", ["x", "X"])
def test_npz_with_x_and_y(tmp_path, xkey):
    x, y = _xy()
    np.savez(tmp_path / "d.npz", **{xkey: x, "y": y + 5})
    d = load_arrays(tmp_path / "d.npz")
    assert d.task == "classification" and d.classes == ["5", "6", "7"]
    # per class (17, 17, 16 members): round(0.2 * n) to test
    assert sum(d.sizes().values()) == 50 and d.sizes()["test"] == 3 + 3 + 3
    assert d.x_train.dtype == np.float32 and d.features == ["f0", "f1"]
    # every sequence lands in exactly one split, with its own label
    lookup = {x[i].astype(np.float32).tobytes(): y[i] for i in range(50)}
    for xs, ys in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert all(lookup[xi.tobytes()] == yi for xi, yi in zip(xs, ys))


def test_npz_own_test_split_text_labels_and_regression(tmp_path):
    x, _ = _xy()
    names = np.array(["walk", "run"])[np.arange(50) % 2]
    np.savez(tmp_path / "t.npz", x=x, y=names, x_test=x[:6], y_test=names[:6])
    d = load_arrays(tmp_path / "t.npz")
    assert d.classes == ["run", "walk"] and np.array_equal(d.x_test, x[:6].astype(np.float32))
    assert sum(d.sizes().values()) == 56
    np.savez(tmp_path / "r.npz", x=x, y=np.linspace(0, 1, 50))
    r = load_arrays(tmp_path / "r.npz")
    assert r.task == "regression" and r.y_train.dtype == np.float32 and r.classes is None
    assert load_arrays(tmp_path / "r.npz", task="regression").task == "regression"


def test_npy_with_labels_file(tmp_path):
    x, y = _xy()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    d = load_dataset(str(tmp_path / "x.npy"), labels=tmp_path / "y.npy")
    assert d.task == "classification" and d.n_outputs == 3
    with pytest.raises(InputError, match="--labels"):
        load_arrays(tmp_path / "x.npy")


def _save(path, **arrays):
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        np.save(path, arrays["x"])
    return path


@pytest.mark.parametrize("case,message", [
    ("nan", "NaN/inf"),
    ("inf", "NaN/inf"),
    ("huge", "NaN/inf"),          # beyond float32's range
    ("mismatch", "50 sequences but y has 49"),
    ("2d", "must be 3-D"),
    ("missing_key", "must hold arrays named x"),
    ("float_labels_as_classes", "non-integer"),
    ("one_class", "single class"),
])
def test_npz_errors(tmp_path, case, message):
    x, y = _xy()
    kw = {"x": x, "y": y}
    task = None
    if case == "nan":
        x[3, 2, 1] = np.nan
    elif case == "inf":
        x[0, 0, 0] = -np.inf
    elif case == "huge":
        x[1, 1, 1] = 1e300
    elif case == "mismatch":
        kw["y"] = y[:-1]
    elif case == "2d":
        kw["x"] = x[:, :, 0]
    elif case == "missing_key":
        kw = {"data": x, "y": y}
    elif case == "float_labels_as_classes":
        kw["y"], task = np.linspace(0, 1, 50), "classification"
    elif case == "one_class":
        kw["y"] = np.zeros(50, dtype=np.int64)
    with pytest.raises(InputError, match=message):
        load_arrays(_save(tmp_path / "d.npz", **kw), task=task)


def test_pickles_are_refused_and_empty_files_too(tmp_path):
    obj = np.empty(2, dtype=object)
    obj[:] = [np.zeros((3, 2)), "evil"]
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    np.save(tmp_path / "y.npy", np.arange(2))
    with pytest.raises(InputError, match="pickle"):
        load_arrays(tmp_path / "obj.npy", labels=tmp_path / "y.npy")
    np.savez(tmp_path / "obj.npz", x=obj, y=np.arange(2))
    with pytest.raises(InputError, match="pickle"):
        load_arrays(tmp_path / "obj.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_arrays(tmp_path / "empty.npz")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(InputError, match="not a"):
        load_arrays(tmp_path / "junk.npy", labels=tmp_path / "y.npy")
    with pytest.raises(InputError, match="not found"):
        load_arrays(tmp_path / "nothing.npz")


# ----------------------------------------------------------------------------------------- CSV

def _write(path, text):
    path.write_text(text)
    return path


def test_windowing_arithmetic_on_a_tiny_csv(tmp_path):
    # 10 rows: feature a = row number, b = 10 * row number, label = row number % 2
    lines = ["a,b,label"] + [f"{r},{10 * r},{r % 2}" for r in range(10)]
    table = read_csv(_write(tmp_path / "t.csv", "\n".join(lines) + "\n"))
    assert table.features == ["a", "b"] and table.label_name == "label" and table.task == "classification"
    x, y = make_windows(table.values, table.labels, window=4, stride=3)
    # (10 - 4) // 3 + 1 = 3 windows starting at rows 0, 3, 6, labelled by rows 3, 6, 9
    assert x.shape == (3, 4, 2)
    assert x[:, :, 0].tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert np.array_equal(x[:, :, 1], 10 * x[:, :, 0])
    assert y.tolist() == [1, 0, 1]
    x, y = make_windows(table.values, table.labels, window=4, stride=4)  # rows 8, 9 left over
    assert x[:, 0, 0].tolist() == [0, 4] and y.tolist() == [1, 1]
    x, y = make_windows(table.values, table.labels, window=10, stride=1)
    assert x.shape == (1, 10, 2) and y.tolist() == [1]


def test_csv_columns_headerless_and_label_kinds(tmp_path):
    rows = "\n".join(f"{r},{r * 0.5},{'up' if r % 3 else 'down'},{r / 7:.4f}" for r in range(30))
    path = _write(tmp_path / "n.csv", rows)
    t = read_csv(path, label_column=2)               # no header: columns are indices
    assert t.features == ["0", "1", "3"] and t.classes == ["down", "up"]
    assert t.labels[:4].tolist() == [0, 1, 1, 0]
    r = read_csv(path, label_column="3", feature_columns=["0", "1"])
    assert r.task == "regression" and r.labels.dtype == np.float32 and r.values.shape == (30, 2)
    assert read_csv(path, label_column=-1, feature_columns=[0]).task == "regression"  # last column
    ints = read_csv(path, label_column=0, feature_columns=[1])
    assert ints.task == "classification" and len(ints.classes) == 30
    assert read_csv(path, label_column=0, feature_columns=[1], task="regression").task == "regression"


@pytest.mark.parametrize("text,kwargs,message", [
    ("", {}, "empty"),
    ("\n\n", {}, "empty"),
    ("a,b,label\n", {}, "no data rows"),
    ("a,b,label\n1,2,0\n3,nan,1\n", {}, "line 3: feature column 'b' is nan"),
    ("a,b,label\n1,inf,0\n3,4,1\n", {}, "NaN/inf"),
    ("a,b,label\n1,2,0\n3,x,1\n", {}, "feature column 'b' holds 'x'"),
    ("a,b,label\n1,,0\n3,4,1\n", {}, "feature column 'b' is empty"),
    ("a,b,label\n1,2\n", {}, "2 fields, expected 3"),
    ("a,b,c\n1,2,0\n3,4,1\n", {"label_column": "label"}, "not a column"),
    ("a,b,c\n1,2,0\n3,4,1\n", {"label_column": 7}, "out of range"),
    ("a,b,label\n1,2,\n3,4,1\n", {}, "label column 'label' is empty"),
    ("a,b,label\n1,2,0.5\n3,4,nan\n", {}, "not finite"),
    ("a,b,label\n1,2,x\n3,4,y\n", {"task": "regression"}, "text labels"),
    ("a,b,label\n1,2,0\n3,4,1\n", {"feature_columns": ["a", "label"]}, "both the label and a feature"),
])
def test_csv_errors(tmp_path, text, kwargs, message):
    with pytest.raises(InputError, match=message):
        read_csv(_write(tmp_path / "bad.csv", text), **kwargs)


def test_csv_fewer_rows_than_a_window(tmp_path):
    path = _write(tmp_path / "s.csv", "a,label\n" + "\n".join(f"{r},{r % 2}" for r in range(5)))
    with pytest.raises(InputError, match="5 row.* fewer than one window of 6"):
        load_csv(path, window=6)
    with pytest.raises(InputError, match="window length"):
        load_dataset(str(path))
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("data.parquet")


def test_block_split_never_shares_a_row_between_splits():
    window, stride, n = 10, 3, 400
    tr, va, te = block_split(n, window, stride, seed=0)
    assert len(set(tr) | set(va) | set(te)) == len(tr) + len(va) + len(te)
    assert min(len(tr), len(va), len(te)) > 0 and len(te) > len(va)
    rows = [set(np.concatenate([np.arange(i * stride, i * stride + window) for i in s])) for s in (tr, va, te)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    dropped = n - len(tr) - len(va) - len(te)
    assert 0 < dropped <= 19 * (-(-window // stride) - 1)
    assert all(np.array_equal(a, b) for a, b in zip(block_split(n, window, stride, 0), (tr, va, te)))
    with pytest.raises(InputError, match="at least 80"):
        block_split(60, 4, 1, seed=0)


def test_load_csv_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["t,ax,ay,activity"] + [f"{i},{rng.normal():.5f},{rng.normal():.5f},{['sit', 'walk'][(i // 50) % 2]}"
                                   for i in range(600)]
    path = _write(tmp_path / "rec.csv", "\n".join(rows))
    d = load_csv(path, window=20, stride=5, label_column="activity", feature_columns=["ax", "ay"])
    assert d.name == "rec" and d.classes == ["sit", "walk"] and d.features == ["ax", "ay"]
    assert d.x_train.shape[1:] == (20, 2) and sum(d.sizes().values()) <= (600 - 20) // 5 + 1
    assert d.timesteps == 20 and d.n_outputs == 2


# ----------------------------------------------------------------------------------------- normalisation

def test_normalisation_uses_the_training_split_only(tmp_path):
    d = synthetic(seed=1)
    d.x_test = d.x_test * 100 + 7          # a wildly different test split must not move the statistics
    d.x_val = d.x_val - 50
    pre = Preprocessing.fit(d)
    assert np.allclose(pre.mean, d.x_train.mean(axis=(0, 1)), atol=1e-6)
    assert np.allclose(pre.std, d.x_train.std(axis=(0, 1)), atol=1e-6)
    z = pre.apply(d.x_train)
    assert z.dtype == np.float32 and np.allclose(z.mean(axis=(0, 1)), 0, atol=1e-5)
    assert np.allclose(z.std(axis=(0, 1)), 1, atol=1e-4)


def test_constant_feature_is_centred_not_blown_up():
    d = synthetic(seed=0)
    d.x_train[:, :, 1] = 4.0
    pre = Preprocessing.fit(d)
    assert pre.std[1] == 1.0 and pre.mean[1] == 4.0
    assert np.allclose(pre.apply(np.full((2, 5, 3), 4.5))[:, :, 1], 0.5)


def test_preprocessing_json_round_trip_and_schema(tmp_path):
    pre = Preprocessing.fit(load_basicmotions())
    path = pre.save(tmp_path)
    assert path.name == "preprocessing.json"
    raw = json.loads(path.read_text())
    assert set(raw) == {"mean", "std", "features", "task", "classes", "timesteps", "dataset"}
    assert raw["task"] == "classification" and raw["timesteps"] == 100 and raw["dataset"] == "basicmotions"
    back = load_preprocessing(tmp_path)
    assert np.array_equal(back.mean, pre.mean) and np.array_equal(back.std, pre.std)  # bit for bit
    assert back.to_dict() == pre.to_dict()
    x = np.random.default_rng(0).standard_normal((3, 100, 6)).astype(np.float32)
    assert np.array_equal(back.apply(x), pre.apply(x))
    reg = Preprocessing.fit(synthetic("regression"))
    assert load_preprocessing(reg.save(tmp_path / "r.json")).classes is None


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.pop("std"), "missing key"),
    (lambda d: d.update(std=[1.0] * 5), "same length"),
    (lambda d: d.update(std=[0.0] * 6), "positive"),
    (lambda d: d.update(task="ranking"), "task must be"),
    (lambda d: d.update(classes=None), "classes must be"),
    (lambda d: d.update(timesteps=0), "timesteps"),
])
def test_preprocessing_json_errors(tmp_path, edit, message):
    d = Preprocessing.fit(load_basicmotions()).to_dict()
    edit(d)
    (tmp_path / "preprocessing.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=message):
        load_preprocessing(tmp_path)


def test_apply_checks_its_input():
    pre = Preprocessing.fit(synthetic())
    with pytest.raises(InputError, match="3"):
        pre.apply(np.zeros((2, 5, 4)))
    with pytest.raises(InputError, match="NaN"):
        pre.apply(np.full((1, 5, 3), np.nan))
    with pytest.raises(InputError, match="not found"):
        load_preprocessing("/nonexistent/preprocessing.json")
