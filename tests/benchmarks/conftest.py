"""The benchmark scripts, loaded as modules from `benchmarks/` (not a package) for their tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """benchmarks/step_vs_trl.py."""
    return _load("step_vs_trl")


@pytest.fixture(scope="module")
def floors() -> ModuleType:
    """benchmarks/floors.py."""
    return _load("floors")
