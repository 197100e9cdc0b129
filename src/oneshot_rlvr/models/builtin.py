"""The built-in models, named `builtin:NAME` wherever a model is: which names exist and where their files are.

It sits below both `models.load` (which resolves the names) and `world` (which makes the bundled model), so
loading a model never imports the world. The files ship inside the package, in the world's `assets/` folder,
where `rlvr world pretrain` writes them; finding them reads package data and runs no world code.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from oneshot_rlvr.errors import RlvrError

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = {"tiny": ("oneshot_rlvr.world", "assets/tiny")}
"""name -> (package, folder inside it) of each bundled model."""


def builtin_model_path(name: str = "tiny") -> Path:
    """The folder of a bundled model (`config.json`, `model.safetensors`, tokenizer files)."""
    if name not in BUILTIN_MODELS:
        raise RlvrError(f"unknown builtin model {name!r} (choose from {', '.join(BUILTIN_MODELS)})")
    package, folder = BUILTIN_MODELS[name]
    path = Path(str(resources.files(package).joinpath(folder)))
    if not (path / "config.json").exists():
        raise RlvrError(f"the bundled model {name!r} is missing from {path} (a broken installation?)")
    return path


def resolve_model_path(name: str) -> str:
    """Map `builtin:NAME` to the bundled folder; other names pass through unchanged."""
    if name.startswith(BUILTIN_PREFIX):
        return str(builtin_model_path(name[len(BUILTIN_PREFIX):]))
    return name
