"""docs/settings.md is the page `oneshot_rlvr.settingsdoc` renders from `TrainConfig` today."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from oneshot_rlvr.config import TrainConfig
from oneshot_rlvr.settingsdoc import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def test_the_settings_page_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/settings.md is stale: run `python -m oneshot_rlvr.settingsdoc > docs/settings.md`")


def test_every_setting_is_on_the_page_with_its_default() -> None:
    page = render()
    for f in dataclasses.fields(TrainConfig):
        assert f"- `{f.name}` (" in page and f"default `{getattr(TrainConfig(), f.name)!r}`" in page, f.name
