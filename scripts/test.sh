#!/usr/bin/env bash
# One command from a fresh clone: install what is missing, build, run every test with ctest.
# Exits non-zero when anything fails. Extra arguments go to ctest (e.g. -L text, -R Config).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/setup.sh"
"$here/scripts/build.sh"
cd "$here/build"
export BIUD_CACHE="${BIUD_CACHE:-$HOME/.cache/biud}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# A test that fails is run once more before it counts as failed: a handful of tests measure
# timeouts between processes on a shared 2-core machine. A real bug fails both times.
ctest --output-on-failure --timeout 900 -j "${BIUD_TEST_JOBS:-2}" --repeat until-pass:2 "$@"
