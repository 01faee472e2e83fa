#!/usr/bin/env bash
# Run the libFuzzer harnesses of tests/fuzz (docs/reliability-fuzz.md).
#   scripts/fuzz.sh [seconds-per-target] [targets...]      default: 60 s, every target
# Configures and builds ./build-fuzz (clang, -DBIUD_FUZZ=ON: ASan + UBSan + libFuzzer) when
# needed, runs each target on its corpus tests/fuzz/corpus/<target>/ (fork mode: a crash, an
# out-of-memory or a timeout is saved and fuzzing goes on), merges the new interesting inputs
# back into the corpus (minimised with -merge=1), saves findings to tests/fuzz/crashes/<target>/
# and prints per target the executions, the corpus size and the findings.
# Env: BIUD_FUZZ_JOBS (targets run at once, default 1), BIUD_FUZZ_BUILD (build folder),
#      BIUD_FUZZ_NO_BUILD=1 (use the binaries as they are), BIUD_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
build="${BIUD_FUZZ_BUILD:-$here/build-fuzz}"
secs="${1:-60}"
shift || true
all=(config manifest_csv manifest_jsonl safetensors npy npz ctcache volume dicom wordpiece report)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
jobs="${BIUD_FUZZ_JOBS:-1}"

if [ "${BIUD_FUZZ_NO_BUILD:-0}" != 1 ]; then
  if [ ! -f "$build/build.ninja" ]; then
    CC="${CC:-clang}" CXX="${CXX:-clang++}" cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DBIUD_PYTHON="$cache/venv/bin/python" -DBIUD_FUZZ=ON -DBIUD_BUILD_TESTS=OFF -DBIUD_BUILD_BENCH=OFF \
      -DBIUD_USE_PCH=OFF -DBIUD_CUDA=OFF >/dev/null
  fi
  ninja -C "$build" -j "${BIUD_JOBS:-$(nproc)}" "${targets[@]/#/fuzz_}"
fi

# A finding stops only the run of that input; fuzzing goes on (fork mode). Leaks are not
# checked (ITK and LibTorch keep process-lifetime allocations).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

run_one() {
  local t=$1
  local bin="$build/bin/fuzz_$t" corpus="$here/tests/fuzz/corpus/$t" crashes="$here/tests/fuzz/crashes/$t"
  local work="$build/fuzz-work/$t"
  mkdir -p "$corpus" "$crashes" "$work/new"
  rm -rf "$work/new"/* "$work/merged" "$work/found" "$work/tmp"
  mkdir -p "$work/merged" "$work/found" "$work/tmp"
  # The harnesses' temp folders (TempDir in tests/fuzz/FuzzUtil.h): a crashed job leaves its own.
  export TMPDIR="$work/tmp"
  # shellcheck disable=SC2086
  "$bin" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -max_total_time="$secs" -timeout=20 \
    -rss_limit_mb=2560 -malloc_limit_mb=2048 -artifact_prefix="$work/found/" ${BIUD_FUZZ_ARGS:-} \
    "$work/new" "$corpus" >"$work/fuzz.log" 2>&1 || true
  # Minimise: keep only the inputs that add coverage (old corpus first, so it is preferred).
  "$bin" -merge=1 -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048 "$work/merged" "$corpus" "$work/new" \
    >"$work/merge.log" 2>&1 || true
  rm -rf "$work/tmp"
  mkdir -p "$work/tmp"
  if [ -n "$(ls -A "$work/merged")" ]; then
    rm -f "$corpus"/*
    cp "$work/merged"/* "$corpus"/
  fi
  # Findings: crash-*, oom-*, timeout-*, leak-* go to crashes/<target>/ with a one-line summary
  # (reproduced once: the error and the first frame in biud's own sources); slow-unit-* (inputs
  # over 10 s that did finish) are listed only.
  local found=0 slow=0
  : >"$work/findings.txt"
  rm -f "$work/findings.tsv"
  for f in "$work/found"/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in
      slow-unit-*)
        slow=$((slow + 1))
        continue
        ;;
    esac
    cp "$f" "$crashes/"
    found=$((found + 1))
    local why
    why=$(timeout 120 "$bin" -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048 "$f" 2>&1 |
      grep -E 'ERROR: |FUZZ FINDING|runtime error|^ +#[0-9]+ .* (/[^ ]*/(src|include|tests)/[^ ]*)' |
      grep -vE 'tests/fuzz/|libFuzzer: deadly signal' | head -2 | sed -E 's/ +/ /g; s/0x[0-9a-fA-F]+//g; s/==[0-9]+==//g; s/[0-9]+/N/g' | tr '\n' ' ' || true)
    echo "${why:-?}|$(basename "$f")" >>"$work/findings.tsv"
  done
  # One line per distinct finding (its summary with numbers as N), a count and one example input.
  if [ -f "$work/findings.tsv" ]; then
    sort -t'|' -k1,1 "$work/findings.tsv" | awk -F'|' '{n[$1]++; if (!($1 in ex)) ex[$1] = $2}
      END {for (k in n) printf "  %4d x %s(e.g. %s)\n", n[k], substr(k, 1, 300), ex[k]}' >>"$work/findings.txt"
  fi
  [ "$slow" -gt 0 ] && echo "  $slow slow input(s) over 10 s (not findings): $work/found/slow-unit-*" >>"$work/findings.txt"
  rm -rf "$work/tmp"
  local last execs
  last=$(grep -E '^#[0-9]+: cov:' "$work/fuzz.log" | tail -1 || true)
  execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$last")
  printf '%-15s %4ss  execs %-10s corpus %4s files %7s bytes  findings %s (%s)\n' "$t" "$secs" "${execs:-?}" \
    "$(ls "$corpus" | wc -l)" "$(cat "$corpus"/* 2>/dev/null | wc -c)" "$found" \
    "$(grep -oE 'oom/timeout/crash: [0-9/]+' <<<"$last" || echo '-')"
  cat "$work/findings.txt"
}

echo "target          time   executions        corpus                      findings (fuzzer's count)"
if [ "$jobs" -le 1 ]; then
  for t in "${targets[@]}"; do run_one "$t"; done
else
  running=0
  for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
      wait -n
      running=$((running - 1))
    fi
  done
  wait
fi
echo "logs: $build/fuzz-work/<target>/fuzz.log; findings: tests/fuzz/crashes/<target>/ (replayed by ctest -L fuzz:" \
  "move an input whose fix is still open to tests/fuzz/pending/<target>/)"
