"""Serving a tuned model: pick a run's checkpoint, write a served copy with the chosen prompt template as its
chat template (LoRA merged), and run an existing OpenAI-compatible server on it (`transformers serve`, `vllm
serve`). Evaluating a served model lives in `oneshot_rlvr.eval.served`."""
