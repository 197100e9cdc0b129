"""Named prompt templates.

- `qwen25-math-cot`: the evaluation prompt of the Qwen2.5-Math harness (system instruction + raw problem).
- `oneshot-train`: the training prompt of the 1-shot RLVR data (user turn ends with the step-by-step suffix).
- `plain`: the raw problem as the only user turn.
A tokenizer without a chat template gets the same turns as plain text.
"""

from __future__ import annotations

from typing import Any

from oneshot_rlvr.errors import RlvrError

COT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
TRAIN_SUFFIX = " Let's think step by step and output the final answer within \\boxed{}."

TEMPLATES = ("qwen25-math-cot", "oneshot-train", "plain")


def messages_for(problem: str, template: str) -> list[dict[str, str]]:
    if template == "qwen25-math-cot":
        return [{"role": "system", "content": COT_SYSTEM}, {"role": "user", "content": problem}]
    if template == "oneshot-train":
        # Files of the 1-shot data already carry the suffix; never add it twice.
        text = problem if problem.rstrip().endswith(TRAIN_SUFFIX.strip()) else problem + TRAIN_SUFFIX
        return [{"role": "user", "content": text}]
    if template == "plain":
        return [{"role": "user", "content": problem}]
    raise RlvrError(f"unknown prompt template {template!r} (choose from {', '.join(TEMPLATES)})")


def render_prompt(problem: str, template: str, tokenizer: Any = None) -> str:
    """The prompt string the model sees, ending where the assistant's answer begins."""
    messages = messages_for(problem, template)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text)
    return "\n\n".join(m["content"] for m in messages) + "\n"
