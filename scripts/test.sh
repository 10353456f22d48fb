#!/usr/bin/env bash
# The README's test command: installs everything the test suite needs, then runs all of it, then
# runs every kernel test again with Numba's bounds checking on (an out-of-bounds access in a JIT
# kernel then raises IndexError instead of reading memory silently). Extra arguments go to pytest
# (e.g. `bash scripts/test.sh -k lstm`); EDGELSTM_BOUNDSCHECK=0 skips the second stage.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --disable-pip-version-check -q -e ".[all]"

# tests/test_firmware.py builds C for the host and for Cortex-M and runs it in QEMU: install the
# Debian toolchain once (about 1.5 min); skipped when the tools are already there.
fw_tools_present() {
  command -v gcc >/dev/null && command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null &&
    [ -f "$(arm-none-eabi-gcc -print-file-name=libc_nano.a)" ]
}
if ! fw_tools_present; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc gcc-arm-none-eabi libnewlib-arm-none-eabi \
    qemu-system-arm >/dev/null
fi

# Numba's on-disk JIT cache: keep it out of the source tree so clean checkouts stay clean.
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$HOME/.cache/edgelstm/numba}"
export TF_CPP_MIN_LOG_LEVEL=3

python -m pytest "$@"

if [ "${EDGELSTM_BOUNDSCHECK:-1}" != "0" ]; then
  echo "== kernels again with NUMBA_BOUNDSCHECK=1 =="
  # bounds-checked code must not share the cache with the fast build
  NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR="$NUMBA_CACHE_DIR-boundscheck" \
    python -m pytest "$@" tests/test_lstm.py tests/test_zoo.py tests/test_tflm.py tests/ops
fi
