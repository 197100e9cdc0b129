"""Small Qwen2-architecture models and byte-level BPE tokenizers made locally.

Nothing here downloads anything: the tokenizer is trained with `tokenizers` on text you pass
(or a small built-in sample), and the model is randomly initialised. Tests, benchmarks and the
bundled tiny world use these to exercise exactly the code path a real Hugging Face model takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Qwen2.5's chat template, reduced to what a base model needs (no tools).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

_SAMPLE_TEXT = (
    "Please reason step by step, and put your final answer within \\boxed{}.\n"
    "What is 12 + 30? Let's think step by step. 12 + 30 = 42. The answer is \\boxed{42}.\n"
    "Solve 3x + 4 = 19. Subtract 4: 3x = 15. Divide by 3: x = 5. So the answer is 5.\n"
    "The remainder of 17 divided by 5 is 2 because 17 = 3 * 5 + 2. \\boxed{2}\n"
    "Compute \\frac{4}{3} + \\frac{1}{3} = \\frac{5}{3}. Let me check: 4 + 1 = 5. Yes.\n"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> Any:
    """Train a byte-level BPE tokenizer (digits one per token) and wrap it for transformers.

    Returns a `PreTrainedTokenizerFast` with Qwen-style special tokens and chat template; EOS is
    `<|im_end|>` (the end of an assistant turn), padding is `<|endoftext|>`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits one per token: arithmetic is then learnable digit by digit, as in Qwen's tokenizer.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_qwen2_config(vocab_size: int, **overrides: Any) -> Any:
    """A Qwen2 config of a few hundred thousand parameters (override any field)."""
    from transformers import Qwen2Config

    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    kwargs.update(overrides)
    return Qwen2Config(**kwargs)


def build_tiny_model(
    out_dir: str | Path,
    *,
    texts: Iterable[str] | None = None,
    vocab_size: int = 512,
    seed: int = 0,
    model_vocab_size: int | None = None,
    **config_overrides: Any,
) -> Path:
    """Write a randomly initialised tiny Qwen2 model and its tokenizer to `out_dir`.

    The folder loads with `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`.
    `model_vocab_size` widens the embedding beyond the tokenizer (e.g. 151936, Qwen2.5's size, for a
    model of a real model's shape; ids the tokenizer lacks decode to nothing).
    """
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts if texts is not None else [_SAMPLE_TEXT] * 4, vocab_size=vocab_size)
    config = tiny_qwen2_config(
        model_vocab_size or len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config_overrides,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
