#!/usr/bin/env bash
# The GPU measurements of issue 13 at 512x512, 16 (+1) frames, 30 DDIM steps, guidance 8, 4 videos per setting:
# videos per hour and peak GPU memory of the official way (fp32, repeated-reference PISA, one video per call), our
# default (fp16, PISA auto = concat on GPU), the fastest exact settings (fp16 + batch 4, PISA concat and lse) and the
# low-memory settings (model offload; sequential offload + VAE slicing/tiling), each setting in its own process.
# Writes benchmarks/results/model_generation_cost_cuda-<gpu>.json / .md (the README's GPU rows come from it).
#
#   bash benchmarks/gpu_inference.sh                 # on a machine with a GPU (duration not measured yet: the
#                                                    # build takes minutes on CPU, then 6 settings x 4 videos)
#   bash benchmarks/gpu_inference.sh --settings official default   # a subset, e.g. to fit a time limit
#   STEPS=10 bash benchmarks/gpu_inference.sh        # fewer steps; the markdown projects to 30 from the measured parts
#   SMOKE=1 OUT=/tmp/smoke bash benchmarks/gpu_inference.sh   # CPU smoke run, tiny components (tests use it)
#
# Extra arguments go to `python -m benchmarks.model_generation_cost` (e.g. --settings official default).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
OUT="${OUT:-benchmarks/results}"
if [[ "${SMOKE:-0}" == "1" ]]; then
  # sequential offload needs a GPU (it streams weights to the device that computes), so the smoke run leaves it out
  exec python -m benchmarks.model_generation_cost --quick --device cpu --suite gpu --threads 1 --repeats 1 \
    --settings official default fp16_concat_batch4 fp16_lse_batch4 offload_model --out "$OUT" "$@"
fi
exec python -m benchmarks.model_generation_cost --device cuda --suite gpu --resolution 512 --frames 16 \
  --steps "${STEPS:-30}" --videos 4 --repeats 1 --warmup 1 --model-dir "${MODEL_DIR:-/tmp/vm-gen-full-model}" \
  --out "$OUT" "$@"
