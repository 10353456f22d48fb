#!/usr/bin/env bash
# The README's test command: installs everything the test suite needs, then runs all of it, then
# runs every kernel test again with Numba's bounds checking on (an out-of-bounds access in a JIT
# kernel then raises IndexError instead of reading memory silently). Extra arguments go to pytest
# (e.g. `bash scripts/test.sh -k lstm`); EDGELSTM_BOUNDSCHECK=0 skips the second stage.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --disable-pip-version-check -q -e ".[all]"

# Numba's on-disk JIT cache: keep it out of the source tree so clean checkouts stay clean.
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$HOME/.cache/edgelstm/numba}"
export TF_CPP_MIN_LOG_LEVEL=3

python -m pytest "$@"

if [ "${EDGELSTM_BOUNDSCHECK:-1}" != "0" ]; then
  echo "== kernels again with NUMBA_BOUNDSCHECK=1 =="
  # bounds-checked code must not share the cache with the fast build
  NUMBA_BOUNDSCHECK=1 NUMBA_CACHE_DIR="$NUMBA_CACHE_DIR-boundscheck" \
    python -m pytest "$@" tests/test_lstm.py tests/test_zoo.py tests/ops
fi
