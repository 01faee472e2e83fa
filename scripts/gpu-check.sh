#!/usr/bin/env bash
# GPU readiness in one run (issue 24): on a machine with an NVIDIA GPU and a CUDA build of biud,
#   1. the tests with CUDA paths (ctest -R Cuda|Gpu|Nccl),
#   2. every recipe's training steps on the GPU in bf16 (the real-release recipes test with
#      BIUD_TEST_DEVICE=cuda: teacher, BIUD, fine-tune, report, X2CT on tiny networks),
#   3. a one-GPU NCCL process group (biud-launch --nproc 1 -- biud-dist-selftest --backend nccl),
#   4. ViT3D-base forward+backward at 96 x 224 x 224 in bf16: volumes/s, TFLOP/s and MFU
#      (model FLOPs counted analytically / the GPU's dense bf16 peak),
# then one table (and gpu-check.json in BIUD_GPU_CHECK_OUT, default build/gpu-check).
# Without a GPU it says so and exits 0. Usage: scripts/gpu-check.sh [--batch 4] [--iters 10]
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${BIUD_BIN:-$here/build/bin}"
py="${BIUD_CACHE:-$HOME/.cache/biud}/venv/bin/python"
out="${BIUD_GPU_CHECK_OUT:-$here/build/gpu-check}"
batch=4
iters=10
while (($#)); do
  case "$1" in
    --batch) batch="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing to check."
  exit 0
fi
if [ ! -x "$bin/biud-embed" ]; then
  echo "gpu-check: $bin/biud-embed is missing: build first (scripts/build.sh)" >&2
  exit 2
fi
if ! "$bin/biud-embed" --version 2>&1 | grep -qi "cuda[^ ]* *\(yes\|on\|[0-9]\)"; then
  echo "gpu-check: this build of biud has no CUDA support ($("$bin/biud-embed" --version 2>&1 | head -n 1)):" \
       "configure with the CUDA toolkit present (scripts/build.sh)" >&2
  exit 2
fi
mkdir -p "$out"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
echo "gpu-check: $gpu"
declare -A status

# 1. tests with CUDA code paths
(cd "$here/build" && ctest -R "Cuda|Gpu|Nccl|CUDA" --output-on-failure) > "$out/cuda-tests.log" 2>&1 \
  && status[cuda_tests]=passed || status[cuda_tests]="FAILED ($out/cuda-tests.log)"

# 2. every recipe's steps on the GPU in bf16
(cd "$here/build" && BIUD_TEST_DEVICE=cuda ctest -R RealReleasesRecipes --output-on-failure --timeout 1800) \
  > "$out/recipes-bf16.log" 2>&1 && status[recipes_bf16]=passed || status[recipes_bf16]="FAILED ($out/recipes-bf16.log)"

# 3. one-GPU NCCL process group
"$bin/biud-launch" --nproc 1 -- "$bin/biud-dist-selftest" --backend nccl --device cuda --bench --iters 5 \
  --json "$out/nccl.json" > "$out/nccl.log" 2>&1 && status[nccl]=passed || status[nccl]="FAILED ($out/nccl.log)"

# 4. ViT3D-base throughput and MFU at 96 x 224 x 224 (bf16 autocast, as trainer.precision=bf16)
for prec in bf16 fp32; do
  "$bin/biud-embed" --bench --bench-net ct --config "$here/configs/presets/models-base.yaml" --device cuda \
    --bench-input 96 224 224 --bench-batch "$batch" --bench-iters "$iters" --bench-warmup 3 --bench-precision "$prec" \
    > "$out/vit3d-$prec.json" 2> "$out/vit3d-$prec.log" && status[vit3d_$prec]=measured || status[vit3d_$prec]="FAILED ($out/vit3d-$prec.log)"
done

"$py" - "$out" "$gpu" "$batch" <<'EOF'
import json, os, sys
out, gpu, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
# Dense bf16 peak (TFLOP/s, no sparsity) of the cards we expect; others print MFU as n/a.
PEAK = {"H100 SXM": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4,
        "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.2}
peak = next((v for k, v in PEAK.items() if k in gpu), None)
# ViT3D-base at 96x224x224 in 16^3 patches: T = 6*14*14 = 1176 tokens (+1 cls), width 768, 12 blocks,
# MLP 3072. Forward FLOPs per volume: patch embedding 2*T*(16^3)*768, per block 2*T*(4*768^2 + 2*768*3072)
# for the matmuls and 4*T^2*768 for attention scores and values; fwd+bwd = 3x forward.
T, D, L, M, P = 1177, 768, 12, 3072, 16 ** 3
fwd = 2 * (T - 1) * P * D + L * (2 * T * (4 * D * D + 2 * D * M) + 4 * T * T * D)
rows = []
for prec in ("bf16", "fp32"):
    try:
        r = json.load(open(os.path.join(out, f"vit3d-{prec}.json")))
    except Exception:
        continue
    s = r["ms_fwd_bwd"] / 1000.0
    tflops = 3 * fwd * batch / s / 1e12
    rows.append((prec, r["ms_fwd_bwd"], batch / s, tflops, tflops / peak if peak else None))
res = {"gpu": gpu, "batch": batch, "model_gflop_fwd_per_volume": fwd / 1e9, "peak_bf16_tflops": peak,
       "vit3d_base": [dict(precision=p, ms=m, volumes_per_s=v, tflops=t, mfu=u) for p, m, v, t, u in rows]}
json.dump(res, open(os.path.join(out, "gpu-check-vit3d.json"), "w"), indent=1)
print(f"\nViT3D-base fwd+bwd, 96x224x224, batch {batch} ({fwd / 1e9:.0f} GFLOP forward per volume):")
print("| precision | ms/step | volumes/s | TFLOP/s | MFU (vs dense bf16 peak) |")
print("|---|---|---|---|---|")
for p, m, v, t, u in rows:
    print(f"| {p} | {m:.1f} | {v:.2f} | {t:.1f} | {'n/a' if u is None else f'{100 * u:.1f} %'} |")
EOF

echo
echo "| check | result |"
echo "|---|---|"
rc=0
for k in cuda_tests recipes_bf16 nccl vit3d_bf16 vit3d_fp32; do
  echo "| $k | ${status[$k]} |"
  case "${status[$k]}" in FAILED*) rc=1 ;; esac
done
exit $rc
