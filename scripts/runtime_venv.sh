#!/usr/bin/env bash
# The runtime-only job (CI, after the main test command): what a Raspberry Pi user with the frozen
# tflite-runtime gets. A fresh venv with numpy 1.26 + tflite-runtime 2.14 + `pip install edgelstm`
# without extras (no TensorFlow), then
#   (a) the tests that need no TensorFlow (fixed-point primitives, tests/test_runtime_only.py), and
#   (b) `edgelstm verify --against tflite-runtime --json` on every zoo model (inside
#       test_runtime_only.py), i.e. flavour "tflite-runtime" against the default
#       `Interpreter(model_path)`: bit-exact on all of them, as on every operator test model; and
#       flavour "tflite" (LiteRT's reference kernels) shown to differ on the few models listed there.
# The zoo models are converted by the MAIN environment (TensorFlow) and handed over as files.
#
#   bash scripts/runtime_venv.sh                 the whole job
#   bash scripts/runtime_venv.sh --export DIR    only write every zoo model to DIR/NAME.tflite and
#                                                the operator test models to DIR/ops/NAME.tflite
#                                                (main environment; scripts/aarch64_emulated.sh uses it)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"

export_models() {
  mkdir -p "$1"
  # TensorFlow's start-up chatter goes to a log, shown only if the export fails
  if ! TF_CPP_MIN_LOG_LEVEL=3 python - "$REPO/tests" "$1" >"$1/.export.log" 2>&1 <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import importlib.util  # noqa: E402

import zoo  # noqa: E402

out = Path(sys.argv[2])
models = zoo.names()
for name in models:
    (out / f"{name}.tflite").write_bytes(zoo.build(name))
# the operator test models, registered by the tests/ops modules that define them
for f in sorted((Path(sys.argv[1]) / "ops").glob("test_*.py")):
    spec = importlib.util.spec_from_file_location(f"_export_{f.stem}", f)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
op_models = [n for n in zoo.names() if n not in models]
(out / "ops").mkdir(exist_ok=True)
for name in op_models:
    (out / "ops" / f"{name}.tflite").write_bytes(zoo.build(name))
print(f"exported {len(models)} zoo models and {len(op_models)} operator models (ops/)")
EOF
  then
    cat "$1/.export.log" >&2
    return 1
  fi
  tail -n 1 "$1/.export.log"
}

if [ "${1:-}" = "--export" ]; then
  [ $# -eq 2 ] || { echo "usage: $0 --export DIR" >&2; exit 2; }
  export_models "$2"
  exit 0
fi

job_start=$(date +%s)
stage_start=$job_start
stage() {  # print how long the previous stage took, then announce the next one
  local now; now=$(date +%s)
  [ -z "${stage_name:-}" ] || echo "runtime-venv: $stage_name took $(( now - stage_start )) s"
  stage_name="$1"; stage_start=$now
  [ -z "$1" ] || echo "== runtime-venv: $1 =="
}

# Never inside the repo: the venv, the copied sources, the models and Numba's cache all live here.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/edgelstm-runtime.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

stage "export the zoo models (main environment)"
export_models "$WORK/models"

stage "fresh venv: numpy 1.26, tflite-runtime 2.14, edgelstm without extras"
# Build from a copy: `pip install .` would write build/ and egg-info into the working tree, and a
# non-editable install leaves the main environment's editable one alone.
mkdir -p "$WORK/src"
cp "$REPO/pyproject.toml" "$REPO/README.md" "$WORK/src/"
cp -r "$REPO/edgelstm" "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
python3.11 -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
# tflite-runtime 2.14 declares numpy>=1.23.2 but crashes under numpy 2, hence the explicit pin.
# numba is left to the resolver: its metadata states which numpy it supports (0.68: numpy>=1.22).
"$VPY" -m pip install -q --disable-pip-version-check \
  "numpy==1.26.*" "tflite-runtime==2.14.*" "pytest>=7" "hypothesis>=6" "$WORK/src" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

stage "check the environment"
cd "$WORK"  # outside the repo, so `import edgelstm` finds the installed package, not the working tree
"$VPY" - <<'EOF'
import importlib.util
from importlib.metadata import PackageNotFoundError, version

for dist in ("tensorflow", "tensorflow-cpu", "tf-keras", "ai-edge-litert", "tflite-micro"):
    try:
        raise SystemExit(f"{dist} {version(dist)} is installed in the runtime venv; it must not be")
    except PackageNotFoundError:
        pass
assert importlib.util.find_spec("tensorflow") is None, "tensorflow is importable in the runtime venv"
import numpy
assert numpy.__version__.startswith("1.26."), numpy.__version__
import edgelstm
print("runtime venv:", ", ".join(f"{d} {version(d)}" for d in
      ("numpy", "numba", "llvmlite", "tflite-runtime", "tflite", "edgelstm")), "| no TensorFlow")
assert "site-packages" in edgelstm.__file__, f"edgelstm imported from {edgelstm.__file__}"
EOF

stage "tests without TensorFlow + edgelstm verify --against tflite-runtime on every zoo model"
NUMBA_CACHE_DIR="$WORK/numba" \
EDGELSTM_RUNTIME_MODELS="$WORK/models" \
EDGELSTM_RUNTIME_REFERENCE=tflite-runtime \
EDGELSTM_RUNTIME_REPORT="$WORK/report.jsonl" \
  "$VPY" -m pytest -q -p no:cacheprovider --rootdir "$REPO" -c "$REPO/pyproject.toml" \
  "$REPO/tests/test_fixedpoint.py" "$REPO/tests/test_runtime_only.py"

stage "summary"
"$VPY" - "$WORK/report.jsonl" <<'EOF'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'model':<22} {'result':<14} {'elements':>9} {'differ':>7}  reason")
for r in sorted(rows, key=lambda r: r["model"]):
    print(f"{r['model']:<22} {r['result']:<14} {r.get('elements', ''):>9} {r.get('differing', ''):>7}  "
          f"{r.get('reason', '')}")
EOF
stage ""
echo "runtime-venv: finished in $(( $(date +%s) - job_start )) s"
