#!/usr/bin/env bash
# The CUDA checks in one go, on one GPU, sized for a ten-minute slot (time limits 150 + 280 + 100 + 60 s):
#   1. the step benchmark against TRL on the 8 prompts x 8 samples x 512 forced tokens (ratio, decode floor);
#   2. the paper's shape: one prompt x 8 samples x 128 copies, long-tailed lengths up to 3,072, through 256
#      slots, our side with continuous batching and with chunks (--ab-chunked), then TRL on it in a run of its own;
#   3. the GPU tests (CUDA graphs, continuous batching through recorded steps).
# With EXTRA=1 it goes on with ours alone on long-tailed lengths, where a decode step's time goes
# (decode_profile.py) and the reference pass and update by micro-batch size (update_profile.py); with
# COMPILE_CHECK=1 also the decode step compiled by torch.compile. Logs and JSON lines go to the folder given
# (default cuda-results/); each part has its own time limit, so one that hangs does not take the others with it.
#
#     bash benchmarks/cuda_checks.sh [out-dir] [timed steps]
#     TOY=1 bash benchmarks/cuda_checks.sh /tmp/toy     # the same script on a CPU at a toy size (a dry run)
#     PART=pi1 bash benchmarks/cuda_checks.sh            # one part only: forced, pi1 or tests
#
# Without TRL installed (pip install -e ".[bench]"), the TRL side is left out and the log says so.
set -u
out=${1:-cuda-results}
steps=${2:-3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
quiet() { grep -v "shards\|Loading weights"; }
part() { [ -z "${PART:-}" ] || [ "$PART" = "$1" ]; }
sides=()
python3 -c "import trl" 2>/dev/null || { echo "trl is not installed: our side only" | tee "$out/notes.txt"; sides=(--only ours); }
if [ "${TOY:-0}" = 1 ]; then
    device=(--device cpu --autocast none --rollout-dtype fp32 --threads 1)
    forced=(--prompts 2 --samples 2 --tokens 8 --micro 4)
    pi1=(--prompts 2 --samples 4 --tokens 16 --slots 3)
    steps=1
else
    device=(--device cuda)
    forced=()
    pi1=()
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
    | tee -a "$out/gpu.txt"
if part forced; then
    timeout 150 python3 benchmarks/step_vs_trl.py "${device[@]}" "${forced[@]}" "${sides[@]}" --rounds 1 \
        --steps "$steps" --json 2>&1 | quiet | tee "$out/forced.log"
fi
# The paper's shape: 1,024 rows of at most 3,072 long-tailed tokens through 256 slots; ours both ways first, then
# TRL on the same workload in a run of its own: its generate holds the whole batch's KV cache (about 89 GB for
# 1,024 rows of 3,100 positions of Qwen2.5-1.5B), so it may run out of memory, and our figures must not go with it.
if part pi1; then
    timeout 280 python3 benchmarks/step_vs_trl.py "${device[@]}" --workload pi1 "${pi1[@]}" --only ours --ab-chunked \
        --rounds 1 --warmup 0 --steps 1 --json 2>&1 | quiet | tee "$out/pi1.log"
    if [ ${#sides[@]} -eq 0 ]; then
        timeout 100 python3 benchmarks/step_vs_trl.py "${device[@]}" --workload pi1 "${pi1[@]}" --only trl \
            --rounds 1 --warmup 0 --steps 1 --json 2>&1 | quiet | tee "$out/pi1_trl.log"
    fi
fi
if [ "${TOY:-0}" != 1 ] && part tests; then
    timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/rollout 2>&1 | tail -n 30 | tee "$out/tests.log"
fi
if [ "${EXTRA:-0}" = 1 ]; then
    timeout 100 python3 benchmarks/step_vs_trl.py --device cuda --workload longtail --only ours --rounds 1 \
        --steps "$steps" --json 2>&1 | quiet | tee "$out/longtail.log"
    timeout 120 python3 benchmarks/decode_profile.py --device cuda --batch 64 1 --tokens 256 --kernels 2>&1 \
        | quiet | tee "$out/decode_profile.log"
    timeout 150 python3 benchmarks/update_profile.py --device cuda --micro 16 32 64 2>&1 | quiet \
        | tee "$out/update_profile.log"
fi
if [ "${COMPILE_CHECK:-0}" = 1 ]; then
    timeout 300 python3 benchmarks/decode_profile.py --device cuda --batch 64 --tokens 256 --compile 2>&1 \
        | quiet | tee "$out/decode_compile.log"
fi
