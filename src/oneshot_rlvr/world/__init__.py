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
- `pretrain`: the recipe of `rlvr world pretrain`; `measure`: greedy / forced-style / sampled figures.
- `builtin_model_path("tiny")`: the folder of the bundled model, loaded as `builtin:tiny`.
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
