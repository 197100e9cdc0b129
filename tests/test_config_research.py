"""The research settings and presets: documented (what --help-config shows), validated, resolvable."""

from __future__ import annotations

import pytest

from oneshot_rlvr.config import field_docs, resolve_config
from oneshot_rlvr.errors import RlvrError

NEW = ("random_reward_p", "entropy_reward_level", "loss", "ratio_level", "pos_weight", "entropy_token_quantile",
       "mask_truncated", "overlong_penalty", "overlong_buffer")


def test_every_research_setting_has_a_docstring() -> None:
    docs = field_docs()
    assert all(docs.get(name) for name in NEW)
    assert "majority" in docs["reward"] and "self_certainty" in docs["reward"]


@pytest.mark.parametrize(("preset", "expected"), [
    ("one-shot-em-qwen2.5-math-7b", {"loss": "em", "lr": 2e-5, "temperature": 0.5, "kl_coef": 0.0}),
    ("spurious-random-qwen2.5-math-7b", {"reward": "random", "lr": 5e-7, "kl_coef": 0.0, "temperature": 1.0}),
])
def test_presets_resolve_and_validate(preset: str, expected: dict) -> None:
    cfg = resolve_config(preset, None, ["pool=x.parquet", "index=124"])
    cfg.validate()
    assert {k: getattr(cfg, k) for k in expected} == expected
    if preset.startswith("spurious"):
        assert cfg.batch_size // cfg.mini_batch_size > 1  # several updates per rollout batch: the clip can act


@pytest.mark.parametrize(("setting", "message"), [
    ("loss=ce", "setting loss='ce'"), ("ratio_level=row", "setting ratio_level"),
    ("random_reward_p=2", "random_reward_p=2.0"), ("entropy_token_quantile=1", "entropy_token_quantile"),
    ("pos_weight=-1", "pos_weight"), ("overlong_penalty=1", "overlong_buffer=0"),
])
def test_bad_research_settings_name_the_setting(setting: str, message: str) -> None:
    with pytest.raises(RlvrError, match=message):
        resolve_config(None, None, ["problem=q", "answer=1", setting]).validate()
