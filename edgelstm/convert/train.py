"""Train a convertible tf_keras LSTM on a `Dataset` and save what the converter and a device need.

Output directory: model.keras (free batch size), preprocessing.json (see data.Preprocessing) and
train_report.json (the dict `train` returns). Early stopping watches the validation loss and
restores the best epoch's weights; the test split is evaluated once, at the end.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TextIO, Union

import numpy as np

from ..errors import InputError
from .data import Dataset, Preprocessing
from .models import ModelSpec, build_model
from .stock import keras_module

MODEL_FILE, REPORT_FILE = "model.keras", "train_report.json"


@dataclass
class TrainResult:
    model: object               # the trained tf_keras model (free batch size)
    spec: ModelSpec
    preprocessing: Preprocessing
    report: dict


def parse_units(text: str) -> tuple[int, ...]:
    """"32,32" -> (32, 32): one LSTM layer per number."""
    try:
        units = tuple(int(u) for u in str(text).split(","))
    except ValueError:
        raise InputError(f"--units must be comma-separated integers like 32,32, got {text!r}") from None
    if any(u < 1 for u in units):
        raise InputError(f"--units must be positive, got {text!r}")
    return units


def parse_conv(text: Optional[str]) -> Optional[tuple[int, int]]:
    """"16:5" -> (16 filters, kernel size 5); None or "" -> no Conv1D front."""
    if not text:
        return None
    parts = str(text).split(":")
    try:
        filters, kernel = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"--conv must be FILTERS:KERNEL like 16:5, got {text!r}") from None
    if filters < 1 or kernel < 1:
        raise InputError(f"--conv filters and kernel size must be positive, got {text!r}")
    return filters, kernel


def _epoch_lines(task: str, epochs: int, monitor: str, y_scale: float, stream: TextIO):
    """A Keras callback printing one line per epoch; '*' marks a new best of the early-stopping loss."""
    K = keras_module()

    class EpochLines(K.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best, self.t0 = np.inf, time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = [f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}"]
            for prefix in ("", "val_"):
                if f"{prefix}loss" not in logs:
                    continue
                loss = logs[f"{prefix}loss"]
                parts.append(f"{prefix}loss {loss:.4f}")
                if task == "classification":
                    parts.append(f"{prefix}acc {logs.get(f'{prefix}accuracy', np.nan):.3f}")
                else:  # the loss is the MSE of standardised targets
                    parts.append(f"{prefix}rmse {np.sqrt(loss) * y_scale:.4g}")
            current = logs.get(monitor, np.inf)
            mark = " *" if current < self.best else ""
            self.best = min(self.best, current)
            parts.append(f"{time.perf_counter() - self.t0:.1f}s{mark}")
            print("  ".join(parts), file=stream, flush=True)

    return EpochLines()


def _metrics(task: str, pred: np.ndarray, y: np.ndarray) -> dict:
    if len(y) == 0:
        return {}
    if task == "classification":
        return {"accuracy": round(float(np.mean(pred.argmax(axis=1) == y)), 4)}
    err = pred.reshape(len(y), -1) - y.reshape(len(y), -1)
    return {"rmse": float(np.sqrt(np.mean(err.astype(np.float64) ** 2)))}


def train(data: Dataset, out_dir: Union[str, Path, None] = None, *, units: tuple[int, ...] = (32,),
          bidirectional: bool = False, conv: Optional[tuple[int, int]] = None, epochs: int = 200,
          batch_size: int = 16, learning_rate: float = 5e-3, patience: int = 50,
          clipnorm: Optional[float] = 1.0, noise: float = 0.2, seed: int = 0,
          progress: Union[bool, TextIO] = True) -> TrainResult:
    """Fit a `ModelSpec` model to `data`, evaluate it on the test split, and save it to out_dir.

    Inputs are standardised with statistics of the training split only. Regression targets are
    standardised for training too, and the scaling is then folded into the Dense head, so the saved
    model predicts in the data's own units. `noise`: standard deviation of Gaussian noise added to
    the standardised inputs during training only (0 to turn off); with BasicMotions' 32 training
    sequences it is what keeps test accuracy from varying with the seed. `progress`: True for one
    line per epoch on stderr, False for silence, or a stream. Same data, arguments and seed give
    the same weights.
    """
    if epochs < 1 or batch_size < 1 or patience < 0 or not learning_rate > 0:
        raise InputError("epochs and batch_size must be >= 1, patience >= 0, learning_rate > 0")
    K = keras_module()
    t_start = time.perf_counter()
    K.utils.set_random_seed(seed)  # Python, numpy and TF generators: initial weights and shuffling

    spec = ModelSpec(data.timesteps, data.n_features, data.n_outputs, data.task, tuple(units), bidirectional,
                     conv)
    pre = Preprocessing.fit(data)
    x_tr, x_val, x_te = (pre.apply(x) for x in (data.x_train, data.x_val, data.x_test))
    classify = data.task == "classification"
    if classify:
        y_tr, y_val = data.y_train, data.y_val
        y_mean, y_std = np.zeros(1), np.ones(1)
    else:
        y2 = data.y_train.reshape(len(data.y_train), -1).astype(np.float64)
        y_mean, y_std = y2.mean(axis=0), y2.std(axis=0)
        y_std = np.where(y_std > 0, y_std, 1.0)
        y_tr = ((y2 - y_mean) / y_std).astype(np.float32)
        y_val = ((data.y_val.reshape(len(data.y_val), -1) - y_mean) / y_std).astype(np.float32)

    model = build_model(spec, batch_size=None)
    fitted = model
    if noise > 0:
        # augmentation wrapped around the model, not inside it: the saved model holds only
        # layers the converter turns into int8 ops
        inp = K.Input(model.input_shape[1:])
        fitted = K.Model(inp, model(K.layers.GaussianNoise(noise)(inp)))
    fitted.compile(optimizer=K.optimizers.Adam(learning_rate, clipnorm=clipnorm),
                  loss="sparse_categorical_crossentropy" if classify else "mse",
                  metrics=["accuracy"] if classify else None)
    has_val = len(x_val) > 0
    monitor = "val_loss" if has_val else "loss"
    stopper = K.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)
    callbacks = [stopper]
    if progress:
        stream = sys.stderr if progress is True else progress
        callbacks.append(_epoch_lines(data.task, epochs, monitor, float(np.mean(y_std)), stream))
    t0 = time.perf_counter()
    hist = fitted.fit(x_tr, y_tr, validation_data=(x_val, y_val) if has_val else None, epochs=epochs,
                     batch_size=batch_size, shuffle=True, verbose=0, callbacks=callbacks)
    fit_s = time.perf_counter() - t0

    if not classify:
        head = model.get_layer("head")
        kernel, bias = head.get_weights()
        head.set_weights([(kernel * y_std).astype(np.float32), (bias * y_std + y_mean).astype(np.float32)])

    def predict(x: np.ndarray) -> np.ndarray:
        return model.predict(x, batch_size=256, verbose=0) if len(x) else np.zeros((0, spec.outputs))

    epochs_run = len(hist.history.get("loss", []))
    best_epoch = int(stopper.best_epoch) + 1 if stopper.best_weights is not None else epochs_run
    report = {
        "dataset": data.name,
        "task": data.task,
        "classes": data.classes,
        "samples": data.sizes(),
        "model": {**spec.to_dict(), "params": int(model.count_params())},
        "seed": seed,
        "epochs": epochs_run,
        "best_epoch": best_epoch,
        "stopped_early": epochs_run < epochs,
        "val": {"loss": round(float(hist.history[monitor][best_epoch - 1]), 6), "monitor": monitor,
                **_metrics(data.task, predict(x_val), data.y_val)},
        "test": _metrics(data.task, predict(x_te), data.y_test),
        "seconds": round(fit_s, 2),
        "notes": list(data.notes),
    }
    if classify and len(data.y_test):
        # the share of the most frequent test class: what a constant guess would score
        report["test"]["majority_baseline"] = round(float(np.bincount(data.y_test).max() / len(data.y_test)), 4)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        model.save(out / MODEL_FILE)
        pre.save(out)
    report["total_seconds"] = round(time.perf_counter() - t_start, 2)
    if out_dir is not None:
        (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return TrainResult(model, spec, pre, report)


def summary(report: dict) -> str:
    """The report in two lines, for the terminal."""
    test = report["test"]
    metric = f"test accuracy {test['accuracy']:.3f}" if "accuracy" in test else f"test RMSE {test['rmse']:.4g}"
    m = report["model"]
    arch = ("Conv1D({}:{}) + ".format(*m["conv"]) if m["conv"] else "") + \
        " + ".join(("Bi" if m["bidirectional"] else "") + f"LSTM({u})" for u in m["units"])
    return (f"{report['dataset']}: {arch} + Dense({m['outputs']}), {m['params']} parameters\n"
            f"{metric}, best epoch {report['best_epoch']}/{report['epochs']}, trained in {report['seconds']:.1f} s")
