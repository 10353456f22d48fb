"""The converter's own process: `python -m edgelstm.convert.child MODEL.keras CALIB.npy OUT_DIR`.

The TFLite converter segfaults on several Keras LSTM configurations (ecosystem_facts.md). Run in a
child, a segfault costs this process only; the parent turns the exit signal into a ConversionError.
The model arriving here was written by the parent (a plain tf_keras model, standard layers only),
and is still loaded with safe_mode=True. Writes OUT_DIR/int8.tflite.
"""
from __future__ import annotations

import argparse
import faulthandler
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgelstm.convert.child")
    p.add_argument("model")
    p.add_argument("calibration")
    p.add_argument("out_dir")
    p.add_argument("--io", default="int8", choices=["int8", "float"])
    args = p.parse_args(argv)
    faulthandler.enable()  # on a segfault, the Python frames that reached it go into the parent's message

    from .stock import convert_int8, keras_module

    K = keras_module()
    model = K.models.load_model(args.model, safe_mode=True, compile=False)
    calibration = np.load(args.calibration, allow_pickle=False)
    out = Path(args.out_dir)
    print("edgelstm-child: converting to full int8", file=sys.stderr, flush=True)
    (out / "int8.tflite").write_bytes(convert_int8(model, calibration, io=args.io))
    return 0


if __name__ == "__main__":
    sys.exit(main())
