"""The test model zoo: tf_keras models converted to full int8 by the stock converter at test time.

Each entry is a builder function returning (keras_model, calibration_array). Converted flatbuffers
are cached on disk, so a second test run does not pay for TensorFlow again; a cold cache converts
everything (about 4 s per model on 2 cores). The key covers everything that decides the bytes: the
builder's source and I/O type, the helpers here that shape the Keras model and its calibration data,
the conversion recipe's source (RECIPE_MODULES) and the TensorFlow / tf_keras / numpy versions. A
stale key would hand every test a model the current recipe no longer produces; tests/test_zoo_cache.py
checks that the key follows the recipe.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import inspect
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable

import numpy as np

T_DEFAULT, F_DEFAULT = 20, 6
_BUILDERS: dict[str, tuple[Callable, str]] = {}
CACHE_DIR = Path(os.environ.get("EDGELSTM_ZOO_CACHE", Path.home() / ".cache" / "edgelstm" / "zoo"))


def zoo_model(name: str, io: str = "int8"):
    def deco(fn):
        _BUILDERS[name] = (fn, io)
        return fn
    return deco


def names() -> list[str]:
    return list(_BUILDERS)


def _calib(shape, n=24, seed=0, scale=1.0, offset=0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, *shape)) * scale + offset).astype(np.float32)


def _keras():
    from edgelstm.convert import keras_module

    return keras_module()


def _seed(s: int):
    import tensorflow as tf

    tf.random.set_seed(s)
    np.random.seed(s)


def _randomize_biases(model, seed: int = 1, scale: float = 0.3):
    """Fresh Keras layers have zero biases, which the converter drops; real models have biases."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = [w + rng.normal(scale=scale, size=w.shape).astype(w.dtype) if w.ndim == 1 else w for w in ws]
        layer.set_weights(new)
    return model


# -- the zoo ---------------------------------------------------------------------------------------
@zoo_model("basic")
def _basic():
    K = _keras(); L = K.layers; _seed(1)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    m = K.Model(x, L.Dense(4)(L.LSTM(16)(x)))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("tiny")
def _tiny():
    K = _keras(); L = K.layers; _seed(2)
    x = K.Input((1, 1), batch_size=1)
    m = K.Model(x, L.LSTM(1)(x))
    return _randomize_biases(m), _calib((1, 1, 1))


@zoo_model("odd_h7_f5")
def _odd():
    K = _keras(); L = K.layers; _seed(3)
    x = K.Input((13, 5), batch_size=1)
    m = K.Model(x, L.Dense(3)(L.LSTM(7)(x)))
    return _randomize_biases(m), _calib((1, 13, 5), offset=0.7)


@zoo_model("wide_h300")
def _wide():
    K = _keras(); L = K.layers; _seed(4)
    x = K.Input((8, 6), batch_size=1)
    m = K.Model(x, L.Dense(2)(L.LSTM(300)(x)))
    return _randomize_biases(m), _calib((1, 8, 6), n=12)


@zoo_model("long_t500")
def _long():
    K = _keras(); L = K.layers; _seed(5)
    x = K.Input((500, 3), batch_size=1)
    m = K.Model(x, L.Dense(2)(L.LSTM(12)(x)))
    return _randomize_biases(m), _calib((1, 500, 3), n=8)


@zoo_model("stacked3")
def _stacked():
    K = _keras(); L = K.layers; _seed(6)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    y = L.LSTM(24, return_sequences=True)(x)
    y = L.LSTM(16, return_sequences=True)(y)
    y = L.LSTM(8)(y)
    m = K.Model(x, L.Dense(4, activation="softmax")(y))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("seq2seq_td")
def _seq2seq():
    K = _keras(); L = K.layers; _seed(7)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    y = L.LSTM(12, return_sequences=True)(x)
    m = K.Model(x, L.TimeDistributed(L.Dense(3))(y))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("bidirectional")
def _bidir():
    K = _keras(); L = K.layers; _seed(8)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    y = L.Bidirectional(L.LSTM(10))(x)
    m = K.Model(x, L.Dense(3)(y))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("conv1d_lstm")
def _conv():
    K = _keras(); L = K.layers; _seed(9)
    x = K.Input((32, F_DEFAULT), batch_size=1)
    y = L.Conv1D(8, 3, activation="relu")(x)
    y = L.MaxPooling1D(2)(y)
    y = L.LSTM(10, return_sequences=True)(y)
    y = L.AveragePooling1D(2)(y)
    y = L.GlobalAveragePooling1D()(y)
    m = K.Model(x, L.Dense(3, activation="softmax")(y))
    return _randomize_biases(m), _calib((1, 32, F_DEFAULT))


@zoo_model("pool_heads")
def _pool_heads():
    K = _keras(); L = K.layers; _seed(10)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    y = L.LSTM(12, return_sequences=True)(x)
    y = L.GlobalMaxPooling1D()(y)
    y = L.Dropout(0.3)(y)
    y = L.Dense(6, activation="sigmoid")(y)
    m = K.Model(x, L.Dense(2, activation="tanh")(y))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("concat_add_flatten")
def _concat_add():
    K = _keras(); L = K.layers; _seed(11)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    a = L.LSTM(8)(x)
    b = L.LSTM(8)(x)
    y = L.Concatenate()([a, b])
    y = L.Concatenate()([y, L.Add()([a, b])])
    y = L.Flatten()(L.Reshape((4, 6))(y))
    m = K.Model(x, L.Dense(4, activation="relu")(y))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("batchnorm_relu")
def _bn():
    K = _keras(); L = K.layers; _seed(12)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    y = L.LSTM(10, return_sequences=True)(x)
    y = L.BatchNormalization()(y)
    y = L.Activation("relu")(y)
    y = L.LSTM(6)(y)
    y = L.Dense(8)(y)
    y = L.BatchNormalization()(y)
    m = K.Model(x, L.Softmax()(L.Dense(3)(y)))
    m = _randomize_biases(m)
    for layer in m.layers:  # non-trivial normalisation statistics
        if isinstance(layer, L.BatchNormalization):
            g, b, mu, var = layer.get_weights()
            rng = np.random.default_rng(3)
            layer.set_weights([g * rng.uniform(0.5, 1.5, g.shape), b + rng.normal(0, 0.2, b.shape),
                               mu + rng.normal(0, 0.1, mu.shape), var * rng.uniform(0.5, 2, var.shape)])
    return m, _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("batch4")
def _batch4():
    K = _keras(); L = K.layers; _seed(13)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=4)
    m = K.Model(x, L.Dense(4)(L.LSTM(16)(x)))
    return _randomize_biases(m), _calib((4, T_DEFAULT, F_DEFAULT))


@zoo_model("dynamic_time")
def _dyn():
    K = _keras(); L = K.layers; _seed(14)
    x = K.Input((None, F_DEFAULT), batch_size=1)
    m = K.Model(x, L.Dense(4)(L.LSTM(16)(x)))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("small_cell_scale")
def _small_cell():
    """Tiny activations make the converter pick a cell scale below 2^-15 (LiteRT's skipped-tanh path)."""
    K = _keras(); L = K.layers; _seed(17)
    x = K.Input((T_DEFAULT, 4), batch_size=1)
    lstm = L.LSTM(8, kernel_initializer=K.initializers.RandomUniform(-0.05, 0.05),
                  recurrent_initializer=K.initializers.RandomUniform(-0.05, 0.05))
    m = K.Model(x, L.Dense(2)(lstm(x)))
    return _randomize_biases(m, scale=0.01), _calib((1, T_DEFAULT, 4), scale=0.05)


@zoo_model("time_major")
def _time_major():
    K = _keras(); L = K.layers; _seed(18)
    x = K.Input((1, F_DEFAULT), batch_size=T_DEFAULT)  # [T, B=1, F] when time_major
    y = L.LSTM(10, time_major=True, return_sequences=True)(x)
    m = K.Model(x, y)
    return _randomize_biases(m), _calib((T_DEFAULT, 1, F_DEFAULT))


@zoo_model("dynamic_time_dense")
def _dyn_dense():
    """Dense on a dynamic-length sequence: the converter computes a RESHAPE shape at run time (with
    SHAPE, GATHER, REDUCE_PROD and PACK, which tests/ops/test_shape_ops.py and test_reshape.py check
    on this model)."""
    K = _keras(); L = K.layers; _seed(19)
    x = K.Input((None, F_DEFAULT), batch_size=1)
    y = L.LSTM(8, return_sequences=True)(x)
    m = K.Model(x, L.Dense(3)(y))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("float_io", io="float")
def _float_io():
    K = _keras(); L = K.layers; _seed(15)
    x = K.Input((T_DEFAULT, F_DEFAULT), batch_size=1)
    y = L.LSTM(16, return_sequences=True)(x)
    m = K.Model(x, L.TimeDistributed(L.Dense(2))(y))
    return _randomize_biases(m), _calib((1, T_DEFAULT, F_DEFAULT))


@zoo_model("trained")
def _trained():
    """A small LSTM actually trained (sign of the running sum of a noisy signal)."""
    K = _keras(); L = K.layers; _seed(16)
    rng = np.random.default_rng(16)
    X = rng.normal(size=(512, 30, 2)).astype(np.float32)
    y = (np.cumsum(X[:, :, 0] - 0.5 * X[:, :, 1], axis=1)[:, -1] > 0).astype(np.int32)
    x = K.Input((30, 2), batch_size=None)
    h = L.LSTM(20)(x)
    train = K.Model(x, L.Dense(2, activation="softmax")(h))
    train.compile(optimizer=K.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    train.fit(X, y, epochs=6, batch_size=32, verbose=0)
    xf = K.Input((30, 2), batch_size=1)
    fixed = K.Model(xf, L.Dense(2, activation="softmax")(L.LSTM(20)(xf)))
    fixed.set_weights(train.get_weights())
    return fixed, X[:64, None]


# -- building ---------------------------------------------------------------------------------------
#: The modules whose code turns a builder's Keras model into the cached flatbuffer (build() calls
#: edgelstm.convert.convert_int8, which lives in stock.py and calls nothing else of edgelstm's;
#: tests/test_zoo_cache.py checks that this list still covers what convert_int8 reaches).
RECIPE_MODULES = ("edgelstm.convert.stock",)
#: Distributions whose version changes what the recipe produces (numpy: the calibration data).
TOOLCHAIN = ("tensorflow", "tensorflow-cpu", "tf_keras", "numpy")


def recipe_files() -> list[Path]:
    """The source files of RECIPE_MODULES (located without importing them, so no TensorFlow)."""
    return [Path(importlib.util.find_spec(m).origin) for m in RECIPE_MODULES]


@functools.lru_cache(maxsize=None)
def toolchain_versions() -> tuple[str, ...]:
    """'name version' of each installed TOOLCHAIN distribution, read from the package metadata so
    that a cache hit does not import TensorFlow."""
    out = []
    for dist in TOOLCHAIN:
        try:
            out.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:  # tensorflow-cpu or tensorflow: either may be absent
            continue
    return tuple(out)


def cache_key(name: str) -> str:
    """The cache key of zoo model `name` (the part of its file name after the model name)."""
    fn, io = _BUILDERS[name]
    parts = [inspect.getsource(fn), io]
    parts += [inspect.getsource(f) for f in KEY_HELPERS]
    parts += [f"{p.name}\n{p.read_text()}" for p in recipe_files()]
    parts += toolchain_versions()
    h = hashlib.sha256()
    for part in parts:  # length-prefixed: no two different part lists hash the same text
        h.update(f"{len(part)}:".encode() + part.encode())
    return h.hexdigest()[:16]


def build(name: str) -> bytes:
    """The .tflite bytes of a zoo model (converted on first use, then cached)."""
    from edgelstm.convert import convert_int8

    fn, io = _BUILDERS[name]
    path = CACHE_DIR / f"{name}-{cache_key(name)}.tflite"
    if path.exists():
        return path.read_bytes()
    # Same weights whatever was built before in this process: without this, TF's op-level seeds
    # depend on how many random ops ran earlier, so a cold cache would build different models.
    K = _keras()
    K.backend.clear_session()
    K.utils.set_random_seed(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    model, calib = fn()
    data = convert_int8(model, calib, io=io)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # processes building the same model at once
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def missing(names: list[str] | None = None) -> list[str]:
    """Those of `names` (default: every registered model) not in the cache yet."""
    return [n for n in (list(_BUILDERS) if names is None else names) if not (CACHE_DIR / f"{n}-{cache_key(n)}.tflite").exists()]


def build_in_processes(names: list[str], workers: int) -> tuple[list[str], str]:
    """Convert `names` into the cache with `workers` processes at once. Returns the names they did
    not build and the end of the workers' output; a test that needs one of those builds it itself,
    so its error shows where it belongs.

    The converter runs on one core, so a cold cache (about 70 models, 4 s each) is converted in half
    the time on 2 cores. Each worker imports the files that register the builders and claims the
    next unbuilt name (an exclusive file create), so a slow model does not hold a queue up.
    build() seeds per model, so a worker builds the model the test process would have built (the
    converter's unreferenced leftover buffers aside, whose bytes vary with what the process ran
    before; tests/test_zoo_cache.py compares)."""
    files = sorted({inspect.getsourcefile(_BUILDERS[n][0]) for n in names})
    with tempfile.TemporaryDirectory(prefix="edgelstm-zoo-") as claims:
        env = dict(os.environ, EDGELSTM_ZOO_CACHE=str(CACHE_DIR), TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [sys.executable, __file__, claims, *files, "--", *names]
        logs = [Path(claims) / f"worker{k}.log" for k in range(workers)]
        procs = []
        for log in logs:
            with open(log, "w") as out:
                procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env))
        for proc in procs:
            proc.wait()
        left = missing(names)
        tail = "" if not left else "\n".join(log.read_text()[-2000:] for log in logs)
    return left, tail


def _worker(argv: list[str]) -> None:
    """One process of build_in_processes(): argv is CLAIMS_DIR FILE... -- NAME..."""
    claims, rest = Path(argv[0]), argv[1:]
    cut = rest.index("--")
    for i, f in enumerate(rest[:cut]):
        if Path(f).resolve() == Path(__file__).resolve():
            continue
        spec = importlib.util.spec_from_file_location(f"_zoo_worker_{i}_{Path(f).stem}", f)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # registers its builders with this module
    for name in rest[cut + 1:]:
        try:
            os.close(os.open(claims / f"{name}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue  # another worker has it
        try:
            build(name)
        except Exception:  # left to the test that needs it, which builds it again and fails there
            traceback.print_exc()


#: The code here that shapes a model before the recipe sees it (bound once, so the key reads the
#: source as written even where a test stands something in for one of them)
KEY_HELPERS = (_calib, _keras, _seed, _randomize_biases, build)


def sample_inputs(model_bytes: bytes, n_random: int = 3, seed: int = 0, time_steps=None) -> list[list[np.ndarray]]:
    """Random inputs over the full input range, then all -128, all 127 and all zero point
    (all 0.0 for float inputs)."""
    from edgelstm.tflite_reader import read_model

    graph = read_model(model_bytes)
    rng = np.random.default_rng(seed)
    out = []
    specs = [graph.tensors[i] for i in graph.inputs]
    shapes = [tuple(d if d != -1 else (time_steps or T_DEFAULT) for d in s.shape_signature) for s in specs]
    for k in range(n_random + 3):
        xs = []
        for spec, shape in zip(specs, shapes):
            if spec.dtype == np.int8:
                if k < n_random:
                    a = rng.integers(-128, 128, size=shape, dtype=np.int8)
                else:
                    fill = [-128, 127, spec.quant.zp if spec.quant else 0][k - n_random]
                    a = np.full(shape, fill, dtype=np.int8)
            else:
                if k < n_random:
                    a = rng.normal(scale=1.5, size=shape).astype(spec.dtype)
                else:
                    a = np.full(shape, [-4.0, 4.0, 0.0][k - n_random], dtype=spec.dtype)
            xs.append(a)
        out.append(xs)
    return out


if __name__ == "__main__":  # a worker of build_in_processes()
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import zoo  # the module the builders register with (this file runs as __main__)

    zoo._worker(sys.argv[1:])
