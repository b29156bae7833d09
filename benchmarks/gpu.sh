#!/usr/bin/env bash
# One-GPU check, about 5 minutes: DDPM++ (vp_cifar) training at batch 128 in fp32 / bf16 /
# bf16 + torch.compile against the official score_sde_pytorch (fp32), side by side in one
# process (benchmarks/train.py: s/step, img/s, ratio, peak memory of each side in a fresh
# process), the sampling throughput of the recipe's sampler, then the CUDA-marked tests.
#
#   benchmarks/gpu.sh              # on a CUDA machine; the official code in .ref/score_sde_pytorch
#   benchmarks/gpu.sh --dry-run    # the same steps on the CPU, tiny network, batch 2 (checks the script)
#
# PYTHON selects the interpreter (default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
case "${1:-}" in
  --dry-run) dry=1 ;;
  "") dry=0 ;;
  *) echo "usage: benchmarks/gpu.sh [--dry-run]" >&2; exit 2 ;;
esac

if [[ $dry == 1 ]]; then
  train=(--device cpu --batch 2 --tiny --steps 1 --warmup 1 --sample-steps 2)
  limit=()   # a loaded CPU may take longer than the GPU's budget
else
  if ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    echo "error: no CUDA GPU visible to torch; use --dry-run to check the script on the CPU" >&2
    exit 2
  fi
  "$PY" -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  train=(--device cuda --batch 128 --steps 20 --warmup 3 --sample-steps 50)
  limit=(timeout 240)
fi

echo "== training step, side by side (benchmarks/train.py ${train[*]})"
"${limit[@]}" "$PY" benchmarks/train.py --variants fp32,bf16,bf16-compile --memory "${train[@]}"

echo "== CUDA-marked tests"
"${limit[@]}" "$PY" -m pytest -q -p no:cacheprovider -m cuda tests
