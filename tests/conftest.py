"""Shared fixtures: a tiny Qwen2-architecture model and tokenizer made locally (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (a suite that fails one run in N is a defect);
# HYPOTHESIS_PROFILE=explore draws new ones, to look for cases the fixed draw misses.
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "oneshot_rlvr"


def shared_data_or_skip(relative: str) -> Path:
    """Path of a file under ../shared/data/oneshot_rlvr, or skip the test with the reason.

    With REQUIRE_SHARED_DATA=1 (set by CI, where the folder is always there) a missing file fails the test
    instead: a moved file or a wrong path must not pass as a quiet skip."""
    path = SHARED_DATA / relative
    if not path.exists():
        reason = f"shared data not present: {path} (tests that read the published data need it)"
        if os.environ.get("REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{reason}; REQUIRE_SHARED_DATA=1 makes this a failure")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ~100k-parameter Qwen2 model + byte-level BPE tokenizer on disk."""
    from oneshot_rlvr.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), seed=0)


@pytest.fixture(scope="session")
def peaked_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like `tiny_model_dir` but with large initial weights: peaked, prompt-dependent predictions
    (a near-uniform model cannot show entropy rising or greedy outputs differing by prompt)."""
    from oneshot_rlvr.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("peaked_model"), seed=0, initializer_range=0.3)
