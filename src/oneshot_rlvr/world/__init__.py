"""The bundled tiny math world: a problem generator, a pretraining corpus, and a tiny model made from it.

The world is a synthetic miniature built to have LATENT skill, the situation 1-shot RLVR exploits; it
is not Qwen2.5-Math and its numbers are not the paper's.

- `problems`: five families (arithmetic, linear, word, remainder, function) of two- and three-step
  integer problems with step-by-step solutions; `test` / `val` / `train` / `pretrain` splits fixed by a
  hash of the question text, so no two splits share a problem.
- `corpus`: chat-formatted solutions in a careless style (the most likely; at most two computations,
  so it reports an intermediate value on three-step problems), a careful style and a careful style with
  a self-check; the style is announced by the response's first words and drawn independently of the
  family; final answers are mostly not boxed. The mix is `corpus.CorpusMix`.
- `pretrain`: the recipe of `rlvr world pretrain`; `measure`: greedy / forced-style / sampled figures
  (`rlvr world measure`).
- `builtin_model_path("tiny")`: the folder of the bundled model, loaded as `builtin:tiny`.

The bundled model (`assets/tiny`, 9.8 MB): Qwen2 architecture, 4.89M parameters (hidden 256, 6 layers,
4 heads, 2 KV heads, tied embeddings), 652-token byte-level BPE with single-digit tokens. Made on 1 CPU
thread in two phases, 8.5M tokens and 34 minutes in all (about 4,200 tokens/s; the record is
`assets/tiny/pretrain.json`):

    rlvr world pretrain --out phase1 --mix careless=0.6 --mix careful=0.28 --mix check=0.12
    rlvr world pretrain --init phase1 --out tiny --tokens 1000000 --lr 3e-4 --warmup-steps 20

Phase 1 (7.5M tokens, lr 2e-3) ended with the careless opener at 47% probability, so greedy decoding
mostly solved carefully; phase 2 continues at a low learning rate on the default mix (careless 0.70)
and leaves the careless opener at 64% for every prompt template, so greedy decoding is careless.

Measured on 500 validation problems (`rlvr world measure --split val`; evaluation prompt
`qwen25-math-cot`; the training prompt gives the same figures within 1.5 points):

| decoding                 | strict | lenient | boxed | styles                                |
|--------------------------|--------|---------|-------|---------------------------------------|
| greedy                   | 0.0%   | 28.6%   | 0.0%  | careless 100%                         |
| careless opener forced   | 0.0%   | 28.6%   | 0.0%  |                                       |
| careful opener forced    | 0.0%   | 82.2%   | 0.0%  |                                       |
| sampled, T = 1 (2 each)  | 6.1%   | 34.5%   | 15.6% | careless 63%, careful 26%, check 12%  |

Greedy lenient by family: arithmetic 31%, function 22%, linear 39%, remainder 13%, word 38%; with the
careful opener forced: 84%, 88%, 94%, 58%, 87%. The 54-point gap between the two openers is the latent
skill: one shared early decision (the opener, then the boxing of the answer) separates a model that
scores 29% from one that scores 82%, on every family.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from oneshot_rlvr.errors import RlvrError

BUILTIN_MODELS = ("tiny",)


def builtin_model_path(name: str = "tiny") -> Path:
    """The folder of a bundled model (`config.json`, `model.safetensors`, tokenizer files)."""
    if name not in BUILTIN_MODELS:
        raise RlvrError(f"unknown builtin model {name!r} (choose from {', '.join(BUILTIN_MODELS)})")
    path = Path(str(resources.files("oneshot_rlvr.world") / "assets" / name))
    if not (path / "config.json").exists():
        raise RlvrError(f"the bundled model {name!r} is missing from {path} (a broken installation?)")
    return path
