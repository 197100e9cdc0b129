#!/usr/bin/env bash
# The CUDA checks in one go, on one GPU: the step benchmark against TRL (forced lengths, then the pi1 shape), the
# GPU tests, then
# ours alone on long-tailed lengths, then where a decode step's time goes (decode_profile.py) and where the
# reference pass and the update's go, by micro-batch size (update_profile.py; default sizes 16 32 64). Logs and
# the JSON lines go to the folder given (default cuda-results/). Each part has its own time limit so that one
# that hangs does not take the others with it.
#
# With COMPILE_CHECK=1 it ends with the decode step compiled by torch.compile against the eager one
# (decode_profile.py --compile: the compilation takes a minute or more, so it is not run by default).
#
#     bash benchmarks/cuda_checks.sh [out-dir] [timed steps] [micro-batch sizes...]
set -u
out=${1:-cuda-results}
steps=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$out/gpu.txt"
timeout 240 python3 benchmarks/step_vs_trl.py --device cuda --rounds 1 --steps "$steps" --json 2>&1 \
    | grep -v "shards\|Loading weights" | tee "$out/forced.log"
# The paper's shape: 1,024 rows of at most 3,072 long-tailed tokens through 256 slots, TRL on the same workload.
timeout 600 python3 benchmarks/step_vs_trl.py --device cuda --workload pi1 --rounds 1 --warmup 0 --steps 1 --json 2>&1 \
    | grep -v "shards\|Loading weights" | tee "$out/pi1.log"
timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/rollout 2>&1 | tail -n 30 | tee "$out/tests.log"
timeout 100 python3 benchmarks/step_vs_trl.py --device cuda --workload longtail --only ours --rounds 1 \
    --steps "$steps" --json 2>&1 | grep -v "shards\|Loading weights" | tee "$out/longtail.log"
timeout 120 python3 benchmarks/decode_profile.py --device cuda --batch 64 1 --tokens 256 --kernels 2>&1 \
    | grep -v "shards\|Loading weights" | tee "$out/decode_profile.log"
[ $# -gt 0 ] || set -- 16 32 64
timeout 150 python3 benchmarks/update_profile.py --device cuda --micro "$@" 2>&1 \
    | grep -v "shards\|Loading weights" | tee "$out/update_profile.log"
if [ "${COMPILE_CHECK:-0}" = 1 ]; then
    timeout 300 python3 benchmarks/decode_profile.py --device cuda --batch 64 --tokens 256 --compile 2>&1 \
        | grep -v "shards\|Loading weights" | tee "$out/decode_compile.log"
fi
