#!/usr/bin/env bash
# Every side-by-side benchmark of scripts/bench/ (biud vs the Python peer a user would pick; same
# inputs and threads, alternated, >= 3 repeats, medians), then one JSON and one Markdown table:
#   <out>/<bench>.json, <out>/table.json, <out>/table.md   (docs/performance.md shows the table)
#
#   scripts/bench/all.sh [--quick] [--threads N] [--out DIR] [--only preprocess,tokenizer,...]
#
#   --quick     small shapes and few steps: a smoke run of every script (minutes, numbers meaningless)
#   --threads   intra-op threads of both sides (default: all cores). On a machine shared with other
#               work use 1: OpenMP threads on contended cores slow both sides erratically.
#   --out       results folder (default runs/bench/<date-time>)
#   --only      a comma list of: preprocess tokenizer train_loop fwd_bwd train_step memory allreduce retrieval
# Needs build/bin (scripts/build.sh) and the venv (scripts/setup.sh); the training-loop rows need
# the quickstart's outputs in runs/quickstart (scripts/quickstart.sh), otherwise they are skipped.
# A benchmark that fails is listed in <out>/failures.txt and the others still run. Not a test.
set -uo pipefail
# Both sides run with OpenMP's default wait policy: with ACTIVE (scripts/quickstart.sh's setting)
# the Python harness's idle threads spin beside the biud process it times (scripts/bench/common.py).
unset OMP_WAIT_POLICY
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${BIUD_CACHE:-$HOME/.cache/biud}/venv/bin/python"
quick=0
threads="$(nproc)"
out=""
only="preprocess,tokenizer,train_loop,fwd_bwd,train_step,memory,allreduce,retrieval"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --threads) threads="$2"; shift ;;
    --out) out="$2"; shift ;;
    --only) only="$2"; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "all.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || out="$root/runs/bench/$(date +%Y%m%d-%H%M%S)$([ $quick = 1 ] && echo -quick)"
mkdir -p "$out"
[ -x "$root/build/bin/biud-embed" ] || { echo "all.sh: no build/bin/biud-embed: run scripts/build.sh" >&2; exit 2; }
q=(); [ $quick = 1 ] && q=(--quick)
cd "$root"
: > "$out/failures.txt"
bench() {  # name, script, args...
  local name="$1" script="$2"; shift 2
  case ",$only," in *",$name,"*) ;; *) return 0 ;; esac
  printf '\n==> [%s] %s (load average %s)\n' "$(date +%H:%M:%S)" "$name" "$(cut -d' ' -f1-3 /proc/loadavg)"
  if ! "$py" "$here/$script" "$@" --json "$out/$name.json"; then
    echo "$name: $script $* failed" | tee -a "$out/failures.txt" >&2
  fi
}
start=$(date +%s)
if [ $quick = 1 ]; then
  bench preprocess bench_preprocess.py --threads "$threads" --quick
  bench tokenizer bench_tokenizer.py --quick
  bench train_loop bench_train_loop.py --threads "$threads" --quick
  bench fwd_bwd bench_fwd_bwd.py --threads "$threads" --quick
  bench train_step bench_train_step.py --threads "$threads" --quick --levers
  bench memory bench_memory.py --threads "$threads" --quick --allocators
  bench allreduce bench_allreduce.py --quick
  [ -f "$here/bench_retrieval.py" ] && bench retrieval bench_retrieval.py --threads "$threads" --n 1000 --m 20000 --repeat 3
else
  bench preprocess bench_preprocess.py --threads "$threads" --n 10
  bench tokenizer bench_tokenizer.py
  bench train_loop bench_train_loop.py --threads "$threads"
  bench fwd_bwd bench_fwd_bwd.py --threads "$threads"
  bench train_step bench_train_step.py --threads "$threads" --levers
  bench memory bench_memory.py --threads "$threads" --allocators
  bench allreduce bench_allreduce.py
  [ -f "$here/bench_retrieval.py" ] && bench retrieval bench_retrieval.py --threads "$threads" --repeat 3
fi
"$py" "$here/table.py" "$out" > /dev/null
cat "$out/table.md"
printf '\nall.sh: %s min; results in %s (table.md, table.json)\n' "$(( ($(date +%s) - start) / 60 ))" "$out"
[ -s "$out/failures.txt" ] && { echo "failed:"; cat "$out/failures.txt"; exit 1; }
exit 0
