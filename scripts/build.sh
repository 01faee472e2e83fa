#!/usr/bin/env bash
# Configure and build into ./build (Release, Ninja, ccache under $BIUD_CACHE).
# Extra arguments go to CMake, e.g. scripts/build.sh -DBIUD_SANITIZE=ON
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${BIUD_CACHE:-$HOME/.cache/biud}"
export CCACHE_DIR="${CCACHE_DIR:-$cache/ccache}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$here}"
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-8G}"
build="${BIUD_BUILD_DIR:-$here/build}"
jobs="${BIUD_JOBS:-$(nproc)}"
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BIUD_BUILD_TYPE:-Release}" \
  -DBIUD_PYTHON="$cache/venv/bin/python" "$@" >/dev/null
ninja -C "$build" -j "$jobs"
