"""Imports run one way, down the layers: a module never imports from a layer above its own.

Every import counts, also one inside a function (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import oneshot_rlvr

PACKAGE = Path(oneshot_rlvr.__file__).parent

LAYERS: list[set[str]] = [
    {"cli", "commands", "__main__"},  # the `rlvr` command
    {"demo", "demo_controls", "demo_paper", "train", "eval", "select", "export", "report", "serve",
     "settingsdoc"},  # what the commands run (and the settings page, made from config)
    # sampling, the math, the tiny world; and the settings, whose choices come from algo (beside it) and below
    {"rollout", "algo", "world", "config"},
    # the foundations; `tracking` (live loggers for run-folder rows) sits here because config checks its names
    {"models", "data", "reward", "errors", "runfolder", "tracking", "progress", "__init__"},
]
"""Highest first. `__init__` is the package's own front door: its version and names."""


def _layer(part: str) -> int:
    for depth, names in enumerate(LAYERS):
        if part in names:
            return depth
    raise AssertionError(f"oneshot_rlvr.{part}: not placed in any layer; add it to LAYERS")


def _top_part(module: Path, package: Path) -> str:
    relative = module.relative_to(package).with_suffix("")
    return relative.parts[0]


def _own(name: str, package: Path) -> str:
    """The top part a `from oneshot_rlvr import NAME` reaches: a module, or the package's own __init__."""
    return name if (package / name).is_dir() or (package / f"{name}.py").is_file() else "__init__"


def _imported(tree: ast.AST, package: Path) -> list[tuple[int, str]]:
    """(line, first part under oneshot_rlvr) of every import of the package's own modules."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "oneshot_rlvr":
                names = [parts[1]] if len(parts) > 1 else [_own(alias.name, package) for alias in node.names]
                found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "oneshot_rlvr" and len(parts) > 1:
                    found.append((node.lineno, parts[1]))
    return found


def violations(package: Path) -> list[str]:
    bad = []
    for module in sorted(package.rglob("*.py")):
        here = _top_part(module, package)
        for line, target in _imported(ast.parse(module.read_text(encoding="utf-8")), package):
            if _layer(target) < _layer(here):
                bad.append(f"{module.relative_to(package)}:{line} imports oneshot_rlvr.{target} from a layer above")
    return bad


def test_no_module_imports_from_a_layer_above_it() -> None:
    assert violations(PACKAGE) == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "load.py").write_text("def f():\n    from oneshot_rlvr.world import x\n")
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "ok.py").write_text("from oneshot_rlvr.models.load import f\nimport oneshot_rlvr.errors\n")
    assert violations(tmp_path) == ["models/load.py:2 imports oneshot_rlvr.world from a layer above"]
