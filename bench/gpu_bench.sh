#!/usr/bin/env bash
# GPU benchmark: tiled-inference MP/s and peak VRAM of `base` and `lite` at 1, 4 and 16 MP in
# fp32 and bf16 (one command, a few minutes on one data-centre GPU). Run from the repository
# root on a machine with CUDA torch installed (make setup TORCH_SPEC=... , see the Makefile):
#   bench/gpu_bench.sh            # or: bench/gpu_bench.sh --batch 32
#   bench/gpu_bench.sh --compile --presets base --precisions bf16   # torch.compile, one row set
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec timeout 300 "$PYTHON" -m bench.gpu_speed --device cuda --presets base lite --mp 1 4 16 \
    --precisions fp32 bf16 --repeats 2 "$@"
