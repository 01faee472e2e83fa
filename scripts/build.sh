#!/usr/bin/env bash
# Configure and build into ./build (Release, Ninja, ccache under $BIUD_CACHE).
# Extra arguments go to CMake, e.g. scripts/build.sh -DBIUD_SANITIZE=ON
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
build="${BIUD_BUILD_DIR:-$here/build}"
jobs="${BIUD_JOBS:-$(nproc)}"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BIUD_BUILD_TYPE:-Release}" \
  -DBIUD_PYTHON="$cache/venv/bin/python" "$@" >/dev/null
ninja -C "$build" -j "$jobs"
