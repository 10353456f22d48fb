#!/usr/bin/env bash
# aarch64 proof (Raspberry Pi 4/5 class) under QEMU user-mode emulation. Not part of CI: a cold run
# takes tens of minutes (see docs/aarch64_run.md for the last one).
#
# Builds a Debian 12 (bookworm) arm64 root file system with debootstrap, installs into a venv there
# what a Pi user installs from PyPI (the runtime-only edgelstm wheel, i.e. numpy + numba + tflite,
# plus ai-edge-litert, pytest and hypothesis; aarch64 wheels), and runs inside it
#   (a) the tests that need no TensorFlow (tests/test_fixedpoint.py, tests/test_runtime_only.py), and
#   (b) `edgelstm verify MODEL --against litert --json` on every zoo model (test_runtime_only.py),
# the zoo models being converted beforehand by the main (x86, TensorFlow) environment.
#
#   bash scripts/aarch64_emulated.sh [OUT_DIR]      as root (apt-get, debootstrap, mount, chroot)
#
# EDGELSTM_AARCH64_BASE (default /var/tmp/edgelstm-aarch64) holds rootfs/ (kept and reused: delete it
# for a cold run) and out/ (logs, versions.txt, stages.tsv, report.jsonl, summary.md).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BASE="${EDGELSTM_AARCH64_BASE:-/var/tmp/edgelstm-aarch64}"
ROOT="$BASE/rootfs"
OUT="$(mkdir -p "${1:-$BASE/out}" && cd "${1:-$BASE/out}" && pwd)"
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap, mount, chroot)" >&2; exit 2; }

: >"$OUT/stages.tsv"
job_start=$(date +%s)
stage_start=$job_start
stage() {  # record how long the previous stage took, then announce the next one
  local now; now=$(date +%s)
  if [ -n "${stage_name:-}" ]; then
    printf '%s\t%s\n' "$stage_name" "$(( now - stage_start ))" >>"$OUT/stages.tsv"
    echo "aarch64: $stage_name took $(( now - stage_start )) s"
  fi
  stage_name="$1"; stage_start=$now
  [ -z "$1" ] || echo "== aarch64: $1 ($(date -u +%H:%M:%S) UTC) =="
}

# A clean environment inside the chroot: the host's PIP_* settings point at host paths.
in_root() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/opt/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    NUMBA_CACHE_DIR=/work/numba "$@"
}

mounted=()
cleanup() {
  local i
  for (( i=${#mounted[@]}-1; i>=0; i-- )); do umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" || true; done
}
trap cleanup EXIT

stage "host tools: qemu-user-static, debootstrap, binfmt_misc"
if ! command -v debootstrap >/dev/null || [ ! -x /usr/bin/qemu-aarch64-static ] || ! command -v update-binfmts >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static debootstrap binfmt-support >/dev/null
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "qemu-aarch64 binfmt handler not registered" >&2; exit 1; }

stage "debootstrap bookworm arm64 (minbase + python3, python3-venv, python3-pip)"
if [ -x "$ROOT/usr/bin/python3" ]; then
  echo "reusing $ROOT (delete it for a cold run)"
else
  rm -rf "$ROOT"
  mkdir -p "$BASE"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
    bookworm "$ROOT" http://deb.debian.org/debian >"$OUT/debootstrap.log" 2>&1 \
    || { tail -n 30 "$OUT/debootstrap.log" >&2; exit 1; }
fi
mkdir -p "$ROOT/etc/ssl/certs" "$ROOT/work"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc" && mounted+=("$ROOT/proc")
# No /sys: with the host's sysfs mounted, LiteRT's Interpreter() segfaulted under qemu-user (its
# cpuinfo then reads the x86 host's CPU topology); without it cpuinfo only prints parse errors.
if [ ! -c "$ROOT/dev/null" ]; then mount --bind /dev "$ROOT/dev" && mounted+=("$ROOT/dev"); fi

stage "export the zoo models and build the edgelstm wheel (host, main environment)"
rm -rf "$ROOT/work/models" "$ROOT/work/tests" "$ROOT/work/dist" "$ROOT/work/numba" "$ROOT/work/report.jsonl"
bash "$REPO/scripts/runtime_venv.sh" --export "$ROOT/work/models"
src="$(mktemp -d "${TMPDIR:-/tmp}/edgelstm-src.XXXXXX")"
cp "$REPO/pyproject.toml" "$REPO/README.md" "$src/"
cp -r "$REPO/edgelstm" "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +
python -m pip wheel -q --no-deps -w "$ROOT/work/dist" "$src"  # pure Python: py3-none-any
rm -rf "$src"
mkdir -p "$ROOT/work/tests"
cp "$REPO/tests/conftest.py" "$REPO/tests/test_fixedpoint.py" "$REPO/tests/test_runtime_only.py" "$ROOT/work/tests/"
# Hypothesis' per-example deadline measures wall time, which emulation stretches 10-50x.
cat >"$ROOT/work/emulated_hypothesis.py" <<'EOF'
from hypothesis import HealthCheck, settings

settings.register_profile("emulated", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("emulated")
EOF

stage "venv + pip install edgelstm (no extras), ai-edge-litert, pytest, hypothesis (aarch64 wheels)"
in_root /usr/bin/python3 -m venv --clear /opt/venv
wheel="$(cd "$ROOT/work/dist" && ls edgelstm-*.whl)"
in_root pip install -q --only-binary=:all: "/work/dist/$wheel" ai-edge-litert pytest hypothesis \
  >"$OUT/pip.log" 2>&1 || { tail -n 30 "$OUT/pip.log" >&2; exit 1; }

stage "versions"
in_root python - >"$OUT/versions.txt" <<'EOF'
import importlib.util, os, platform
from importlib.metadata import version

print("uname -m:", os.uname().machine)
print("os:", open("/etc/debian_version").read().strip(), "(Debian)")
print("glibc:", platform.libc_ver()[1])
print("python:", platform.python_version())
for d in ("numpy", "numba", "llvmlite", "ai-edge-litert", "tflite", "flatbuffers", "edgelstm", "pytest", "hypothesis"):
    print(f"{d}:", version(d))
print("tensorflow importable:", importlib.util.find_spec("tensorflow") is not None)
EOF
cat "$OUT/versions.txt"
grep -q '^uname -m: aarch64$' "$OUT/versions.txt"
grep -q '^tensorflow importable: False$' "$OUT/versions.txt"

pytest_in_root() {
  in_root sh -c 'cd /work && PYTHONPATH=/work EDGELSTM_RUNTIME_MODELS=/work/models \
    EDGELSTM_RUNTIME_REFERENCE=litert EDGELSTM_RUNTIME_REPORT=/work/report.jsonl \
    python -m pytest -v -p no:cacheprovider -p emulated_hypothesis "$@"' sh "$@"
}

stage "runtime tests (fixed point; load/run/run_batch vs LiteRT; Numba JIT cold)"
set +e  # a failure still gets its summary
pytest_in_root tests/test_fixedpoint.py tests/test_runtime_only.py -k "not test_cli_verify" 2>&1 | tee "$OUT/tests.log"
rc_tests=${PIPESTATUS[0]}

stage "edgelstm verify --against litert --json on every zoo model"
pytest_in_root tests/test_runtime_only.py -k test_cli_verify 2>&1 | tee "$OUT/verify.log"
rc_verify=${PIPESTATUS[0]}
set -e
cp "$ROOT/work/report.jsonl" "$OUT/report.jsonl"

stage "summary"
python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = sorted((json.loads(l) for l in (out / "report.jsonl").read_text().splitlines()), key=lambda r: r["model"])
lines = ["| model | result | elements compared | differing |", "|---|---|---:|---:|"]
lines += [f"| {r['model']} | {r['result']} | {r.get('elements', '')} | {r.get('differing', '')} |" for r in rows]
lines.append(f"\n{sum(r['result'] == 'bit-exact' for r in rows)}/{len(rows)} bit-exact, "
             f"{sum(r.get('elements', 0) for r in rows)} elements compared, "
             f"{sum(r.get('differing', 0) for r in rows)} differing")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
stage ""
echo "aarch64: finished in $(( $(date +%s) - job_start )) s; results in $OUT (tests exit $rc_tests, verify exit $rc_verify)"
[ "$rc_tests" = 0 ] && [ "$rc_verify" = 0 ]
