"""Settings in one place: choice settings take their values from the modules that define them, and the
model-loading options of training are derived from TrainConfig alone."""

from __future__ import annotations

import pytest

from oneshot_rlvr.algo.advantages import ALGOS, NORMS
from oneshot_rlvr.algo.losses import AGG_MODES, KL_KINDS
from oneshot_rlvr.config import TrainConfig, setting_choices
from oneshot_rlvr.data.templates import TEMPLATES
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.precision import AUTOCAST_CHOICES


def test_choices_are_the_defining_modules_own_tuples() -> None:
    choices = setting_choices()
    assert choices["algo"] is ALGOS and choices["adv_norm"] is NORMS
    assert choices["loss_agg"] is AGG_MODES and choices["kl_kind"] is KL_KINDS
    assert choices["template"] is TEMPLATES and choices["val_template"] is TEMPLATES
    assert choices["autocast"] is AUTOCAST_CHOICES
    assert all(getattr(TrainConfig(), key) in allowed for key, allowed in choices.items())  # defaults are valid


def test_a_value_outside_the_choices_names_the_setting_and_its_values() -> None:
    with pytest.raises(RlvrError, match=f"setting loss_agg='mean': choose from {', '.join(AGG_MODES)}$"):
        TrainConfig(loss_agg="mean").validate()


@pytest.mark.parametrize(("device", "expected"), [("cpu", "eager"), ("cuda", "sdpa")])
def test_load_options_come_from_the_training_settings(device: str, expected: str) -> None:
    cfg = TrainConfig(dtype="bfloat16", gradient_checkpointing=True, lora_r=8, lora_alpha=16)
    options = cfg.load_options(device)
    assert (options.dtype, options.gradient_checkpointing, options.lora_r, options.lora_alpha) == (
        "bfloat16", True, 8, 16)
    assert options.attn_implementation == expected  # auto, resolved per device
    assert TrainConfig(attn_implementation="sdpa").load_options("cpu").attn_implementation == "sdpa"


def test_a_retired_setting_in_an_older_run_folder_loads_at_its_old_default(tmp_path) -> None:
    """config.yaml of runs before sampling processes were removed names rollout_processes: 1 (it resumes); any
    other value is refused with the reason, rather than silently sampling another way."""
    import dataclasses

    import yaml

    from oneshot_rlvr.config import RETIRED, load_config

    old = {k: v for k, v in dataclasses.asdict(TrainConfig(problem="1 + 1", answer="2")).items() if v is not None}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**old, "rollout_processes": 1}))
    assert load_config(path) == TrainConfig(problem="1 + 1", answer="2")
    path.write_text(yaml.safe_dump({**old, "rollout_processes": 2}))
    with pytest.raises(RlvrError, match=r"rollout_processes=2 no longer exists \(sampling processes are gone"):
        load_config(path)
    assert "rollout_processes" not in {f.name for f in dataclasses.fields(TrainConfig)} and RETIRED
