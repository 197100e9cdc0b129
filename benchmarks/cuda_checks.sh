#!/usr/bin/env bash
# The CUDA checks in one go, on one GPU: the GPU tests, then the step benchmark against TRL (forced lengths)
# and ours alone on long-tailed lengths. Logs and the JSON lines go to the folder given (default
# cuda-results/). Each part has its own time limit so that one that hangs does not take the others with it.
#
#     bash benchmarks/cuda_checks.sh [out-dir]
set -u
out=${1:-cuda-results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$out/gpu.txt"
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/rollout 2>&1 | tail -n 30 | tee "$out/tests.log"
timeout 300 python3 benchmarks/step_vs_trl.py --device cuda --rounds 1 --steps 3 --json 2>&1 | tee "$out/forced.log"
timeout 150 python3 benchmarks/step_vs_trl.py --device cuda --workload longtail --only ours --rounds 1 --steps 3 \
    --json 2>&1 | tee "$out/longtail.log"
