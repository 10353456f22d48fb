"""A/B: this working tree's edgelstm against the one at another git revision, in one process.

    python benchmarks/ab.py --base HEAD~3               # the full grid, both flavours
    python benchmarks/ab.py --base main --grid small --flavors tflite

For a change to a hot path, "as fast as before" is a ratio measured in one run: the revision's package
is extracted next to this one (as `edgelstm_base`), both load the same benchmark models (run.py's
grid and cache), their outputs must be identical, and the two take turns in blocks of calls with
LiteRT's int8 reference interpreter, as run.py does. Printed per grid point and flavour: both
latencies, head/base (median of per-round ratios; below 1 = faster now) and LiteRT int8 / edgelstm
for each.

Numba's on-disk cache is a fresh temporary directory unless NUMBA_CACHE_DIR is set: with a cache in
which the step functions were compiled before the eval that calls them, LLVM cannot inline them and
the eval measured up to 25% slower, which would be a property of the cache, not of the code.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if "NUMBA_CACHE_DIR" not in os.environ:  # before anything imports numba
    os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="edgelstm-ab-numba-")

import numpy as np  # noqa: E402

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # this working tree's edgelstm, whatever pip installed
from run import GRIDS, build_models, interleaved_us  # noqa: E402


def extract_base(rev: str, into: Path) -> None:
    """The package at `rev` as `edgelstm_base` under `into` (its modules import each other relatively)."""
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", "--format=tar", rev, "edgelstm"],
                             capture_output=True, check=True).stdout
    tar_path = into / "base.tar"
    tar_path.write_bytes(archive)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data")
    (into / "edgelstm").rename(into / "edgelstm_base")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD", help="git revision to compare with (default HEAD)")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="full")
    ap.add_argument("--flavors", default="tflite,tflm", help="comma-separated (default tflite,tflm)")
    ap.add_argument("--runs", type=int, default=400, help="timed calls per runtime and point")
    ap.add_argument("--block", type=int, default=20, help="consecutive calls per turn")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args(argv)

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    import edgelstm

    tmp = Path(tempfile.mkdtemp(prefix="edgelstm-ab-"))
    extract_base(args.base, tmp)
    sys.path.insert(0, str(tmp))
    import edgelstm_base

    rows = []
    print(f"base {args.base} vs working tree; Numba cache {os.environ['NUMBA_CACHE_DIR']}")
    print(f"{'point':<18} {'flavor':<7} {'base us':>9} {'head us':>9} {'head/base':>9} {'LiteRT/base':>11} "
          f"{'LiteRT/head':>11}")
    for point in GRIDS[args.grid]:
        path = str(build_models(point)["int8"])
        interp = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                             num_threads=1)
        interp.allocate_tensors()
        idx = interp.get_input_details()[0]["index"]
        for flavor in args.flavors.split(","):
            head, base = edgelstm.load(path, flavor=flavor), edgelstm_base.load(path, flavor=flavor)
            x = np.random.default_rng(0).integers(-128, 128, size=head.inputs[0].shape, dtype=np.int8)
            if not np.array_equal(head.run(x), base.run(x)):
                print(f"{point.key}: the {flavor} outputs differ between base and head", file=sys.stderr)
                return 1

            def litert(x=x):
                interp.reset_all_variables()
                interp.set_tensor(idx, x)
                interp.invoke()

            us = interleaved_us([lambda: base.run(x), lambda: head.run(x), litert], args.runs, args.block)
            row = {"point": point.key, "flavor": flavor, "base_us": float(np.median(us[:, 0])),
                   "head_us": float(np.median(us[:, 1])), "head_over_base": float(np.median(us[:, 1] / us[:, 0])),
                   "litert_over_base": float(np.median(us[:, 2] / us[:, 0])),
                   "litert_over_head": float(np.median(us[:, 2] / us[:, 1]))}
            rows.append(row)
            print(f"{point.key:<18} {flavor:<7} {row['base_us']:>9.1f} {row['head_us']:>9.1f} "
                  f"{row['head_over_base']:>9.3f} {row['litert_over_base']:>11.2f} {row['litert_over_head']:>11.2f}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"base": args.base, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
