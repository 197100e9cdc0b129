"""The bundled tiny math world: a problem generator, a pretraining corpus, and a tiny model made from it.

The world is a synthetic miniature built to have LATENT skill, the situation 1-shot RLVR exploits; it
is not Qwen2.5-Math and its numbers are not the paper's.

- `problems`: five families (arithmetic, linear, word, remainder, function) of two- and three-step
  integer problems with step-by-step solutions; `test` / `val` / `train` / `pretrain` splits fixed by a
  hash of the question text, so no two splits share a problem.
- `corpus`: chat-formatted solutions in a careless style (the most likely; at most two computations,
  so it reports an intermediate value on three-step problems), a careful style and a careful style with
  a self-check; the style is announced by the response's first words; final answers are mostly not
  boxed. The mix is `corpus.CorpusMix`, including how careless the corpus is on each family.
- `pretrain`: the recipe of `rlvr world pretrain`; `measure`: greedy / forced-style / sampled figures
  (`rlvr world measure`).
- `builtin_model_path("tiny")`: the folder of the bundled model, loaded as `builtin:tiny`.

The bundled model (`assets/tiny`, 9.8 MB): Qwen2 architecture, 4.89M parameters (hidden 256, 6 layers,
4 heads, 2 KV heads, tied embeddings), 652-token byte-level BPE with single-digit tokens. Made on a CPU
in three phases, 10.0M tokens and 38 minutes in all (about 4,200-5,000 tokens/s; the record, each phase
nested in the next, is `assets/tiny/pretrain.json`):

    rlvr world pretrain --out phase1 --mix careless=0.6 --mix careful=0.28 --mix check=0.12
    rlvr world pretrain --init phase1 --out phase2 --tokens 1000000 --lr 3e-4 --warmup-steps 20
    rlvr world pretrain --init phase2 --out tiny --tokens 1500000 --lr 3e-4 --warmup-steps 20 \
        --mix careless_linear=1.5 --mix careless_function=1.5 --mix careless_remainder=1.5

Phase 1 (7.5M tokens, lr 2e-3, 1 thread) ended with the careless opener at 47% probability, so greedy
decoding mostly solved carefully; phase 2 (1 thread) continues at a low learning rate on the default mix
(careless weight 0.70) and leaves the careless opener at 64% for every family. Phase 3 (2 threads) makes
the careless style more likely on linear, function and remainder problems (weight 1.5 against 0.7): the
careless opener's probability is then 60-62% on arithmetic and word problems and 74-78% on the other three
(`tests/world/test_world_model.py` checks the order). Every family still answers carelessly when greedy,
but one example's lesson reaches the more careless families later: that lag is what lets test accuracy
keep rising after the training example has saturated.

Measured on 500 validation problems (`rlvr world measure --split val --samples 2`; evaluation prompt
`qwen25-math-cot`):

| decoding                 | strict | lenient | boxed | styles                                |
|--------------------------|--------|---------|-------|---------------------------------------|
| greedy                   | 0.0%   | 29.2%   | 0.0%  | careless 100%                         |
| careless opener forced   | 0.0%   | 29.2%   | 0.0%  |                                       |
| careful opener forced    | 0.0%   | 84.6%   | 0.0%  |                                       |
| sampled, T = 1 (2 each)  | 9.9%   | 34.7%   | 22.5% | careless 70%, careful 21%, check 8%   |

Greedy lenient by family: arithmetic 32%, function 22%, linear 40%, remainder 13%, word 39%; with the
careful opener forced: 88%, 91%, 94%, 64%, 86%. The 55-point gap between the two openers is the latent
skill: one early decision (the opener, then the boxing of the answer) separates a model that scores 29%
from one that scores 85%, on every family.
"""

from __future__ import annotations

from oneshot_rlvr.models.builtin import BUILTIN_MODELS, builtin_model_path

__all__ = ["BUILTIN_MODELS", "builtin_model_path"]
