#!/usr/bin/env bash
# Build biud with AddressSanitizer + UBSan into its own folder (build-asan) and run the whole
# ctest suite there. Exits non-zero when a test fails or when any process (test, app, rank) wrote
# a sanitizer report. Extra arguments go to ctest (e.g. -L text, -R Config).
#   BIUD_SANITIZE_DIR   build folder (default <repo>/build-asan)
#   BIUD_TEST_JOBS      ctest -j (default 2)
#   BIUD_SANITIZE_LEAKS 0 turns LeakSanitizer off (default 1)
# Options, suppressions and the reason for each: docs/reliability-sanitize.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BIUD_SANITIZE_DIR:-$here/build-asan}"
supp="$here/tests/sanitize"
export BIUD_CACHE="${BIUD_CACHE:-$HOME/.cache/biud}"

t0=$(date +%s)
# -O1 -g1 (line tables): what ASan recommends, and much quicker to compile than -O2 -g; the
# reports still name file:line. No benchmarks in this folder.
BIUD_BUILD_DIR="$build" BIUD_BUILD_TYPE=RelWithDebInfo "$here/scripts/build.sh" -DBIUD_SANITIZE=ON -DBIUD_BUILD_BENCH=OFF \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
t1=$(date +%s)

# Every report goes to a file (log_path) as well as failing its process (halt_on_error): a report
# in an app that a test expects to fail would otherwise pass as "the app failed".
logs="$build/sanitizer-logs"
rm -rf "$logs"
mkdir -p "$logs"
common="halt_on_error=1:print_summary=1:log_path=$logs/report:log_exe_name=1:exitcode=86"
export ASAN_OPTIONS="$common:detect_leaks=${BIUD_SANITIZE_LEAKS:-1}:detect_container_overflow=0:allocator_may_return_null=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="$common:print_stacktrace=1:suppressions=$supp/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

cd "$build"
rc=0
# As in scripts/test.sh, a failing test runs once more (timeouts between processes on a shared
# 2-core machine); a sanitizer report in either try still fails the run (see below).
ctest --output-on-failure --timeout 1800 -j "${BIUD_TEST_JOBS:-2}" --repeat until-pass:2 "$@" || rc=$?
t2=$(date +%s)

shopt -s nullglob
reports=("$logs"/report.*)
if ((${#reports[@]})); then
  echo "sanitize: ${#reports[@]} sanitizer report(s) in $logs:"
  for f in "${reports[@]}"; do
    echo "--- $f"
    grep -m1 -E "^SUMMARY:" "$f" || head -n 5 "$f"
  done
  rc=1
fi
echo "sanitize: build $((t1 - t0)) s, tests $((t2 - t1)) s, total $((t2 - t0)) s; $([ $rc -eq 0 ] && echo passed || echo FAILED)"
exit $rc
