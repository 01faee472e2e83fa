#!/usr/bin/env bash
# The BIUD ablation on the synthetic benchmark (issue 8): CLIP baseline, each added component,
# and full BIUD, with several seeds, all with the same data, teacher and retrieval as the
# quickstart (run scripts/quickstart.sh first). Writes runs/ablation/ablation.md (mean ± sd of
# the zero-shot macro AUROC on the test split) and one run folder per (variant, seed).
# SEEDS="0 1 2" and STEPS=600 by default; the CT is cached at 3 x 3 x 6 mm for all variants
# (configs/ablation/base.yaml); about 1.5 min per run on a 2-core CPU, the `full` variant (EFM on
# 8 reports per batch: the frozen MiniLM re-encodes masked reports at every step) about 8 min.
# VARIANTS picks the variants (default: all five). A run folder that holds a zero-shot result is
# not trained again (delete it to rerun); an interrupted run resumes from its last checkpoint.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bin="$here/build/bin"
out="runs/ablation"
seeds="${SEEDS:-0 1 2}"
steps="${STEPS:-600}"
[ -f runs/quickstart/retrieval/pairing.csv ] || { echo "run scripts/quickstart.sh first (teacher and retrieval)"; exit 2; }
mkdir -p "$out"
# One recipe per variant in configs/ablation/ (each includes the quickstart recipe).
order="${VARIANTS:-clip roco roco_pair roco_pair_sem full}"
"$bin/biud-preprocess" --config configs/ablation/base.yaml --manifest runs/quickstart/data/ct/manifest.csv \
  --out runs/ablation/cache --quiet
results="$out/results.tsv"
: > "$results"
for v in $order; do
  for s in $seeds; do
    run="$out/${v}_seed$s"
    if [ ! -f "$run/zeroshot/zeroshot.json" ]; then
      resume=""; [ -e "$run/checkpoints/latest" ] && resume="--resume latest"   # an interrupted run goes on
      "$bin/biud-train" --config "configs/ablation/$v.yaml" --seed "$s" --set trainer.steps="$steps" --out "$run" --quiet $resume
      "$bin/biud-zeroshot" --config "configs/ablation/$v.yaml" --run "$run" --out "$run/zeroshot" --set eval.bootstrap=0 --quiet
    fi
    python3 -c "import json,sys; print('$v', $s, json.load(open('$run/zeroshot/zeroshot.json'))['macro']['auroc'])" >> "$results"
    echo "$v seed $s: $(tail -1 "$results" | cut -d' ' -f3)"
  done
done
python3 - "$results" "$out/ablation.md" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    v, s, a = line.split()
    rows.setdefault(v, []).append(float(a))
with open(sys.argv[2], "w") as f:
    f.write("| variant | zero-shot macro AUROC (mean ± sd) | seeds |\n|---|---|---|\n")
    for v, a in rows.items():
        sd = statistics.stdev(a) if len(a) > 1 else 0.0
        f.write(f"| {v} | {statistics.mean(a):.3f} ± {sd:.3f} | {len(a)} |\n")
print(open(sys.argv[2]).read())
PY
