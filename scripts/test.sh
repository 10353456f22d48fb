#!/usr/bin/env bash
# The README's test command: installs everything the test suite needs, then runs all of it.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k lstm`).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --disable-pip-version-check -q -e ".[all]"

# Numba's on-disk JIT cache: keep it out of the source tree so clean checkouts stay clean.
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$HOME/.cache/edgelstm/numba}"
export TF_CPP_MIN_LOG_LEVEL=3

python -m pytest "$@"
