"""The fast rollout path for Llama-family models (Qwen2, Llama, Mistral) on CPU and CUDA.

- `lm`: `FastLM`, a fused sampling forward (one matmul for q, k and v, one for gate and up; static KV buffers);
- `slots`: continuous batching, a finished row's slot refilled at once with the next waiting row;
- `graphs`: each decode step replayed from a CUDA graph;
- `engine`: `FastRolloutEngine`, which runs them.
"""

from oneshot_rlvr.rollout.fast.engine import FastRolloutEngine

__all__ = ["FastRolloutEngine"]
