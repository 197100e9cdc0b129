"""Rows from the `datasets` library: a folder written by `save_to_disk`, or a hub id `hf:ORG/NAME[:CONFIG][@SPLIT]`.

A folder may name its split as `FOLDER@SPLIT` (a `DatasetDict` folder holds several). `datasets` is optional and
imported only here; offline, or for an unknown id, the error is one line naming the id and how to fetch it first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError, install_hint

HUB_PREFIX = "hf:"
INSTALL_HINT = install_hint("datasets") + " (or pip install datasets)"
_FOLDER_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


@dataclass(frozen=True)
class HubId:
    dataset: str
    config: str | None
    split: str

    def fetch_hint(self) -> str:
        config = f", {self.config!r}" if self.config else ""
        return (f"fetch it first where the hub is reachable: python -c \"import datasets; datasets.load_dataset("
                f"'{self.dataset}'{config}, split='{self.split}').save_to_disk('FOLDER')\", then give FOLDER")


def is_hub_spec(spec: str | Path) -> bool:
    return str(spec).startswith(HUB_PREFIX)


def parse_hub_id(spec: str, default_split: str) -> HubId:
    """`hf:ORG/NAME[:CONFIG][@SPLIT]` -> HubId; a malformed one is an error naming it."""
    body = spec[len(HUB_PREFIX):] if is_hub_spec(spec) else spec
    name, _, split = body.partition("@")
    dataset, _, config = name.partition(":")
    if not _HUB_ID.fullmatch(dataset) or (config == "" and ":" in name) or ("@" in body and not split):
        raise RlvrError(f"{spec}: expected hf:ORG/NAME[:CONFIG][@SPLIT]")
    return HubId(dataset, config or None, split or default_split)


def _folder_and_split(spec: str | Path) -> tuple[Path, str | None] | None:
    """(folder, split) when `spec` is a save_to_disk folder, optionally as FOLDER@SPLIT; else None."""
    path = Path(spec)
    if path.is_dir() and any((path / m).exists() for m in _FOLDER_MARKERS):
        return path, None
    head, sep, split = str(spec).rpartition("@")
    if sep and head and split and "/" not in split and Path(head).is_dir():
        return Path(head), split
    return None


def is_dataset_folder(spec: str | Path) -> bool:
    return _folder_and_split(spec) is not None


def _datasets(what: str) -> Any:
    try:
        import datasets
    except ImportError:
        raise RlvrError(f"{what}: reading it needs the datasets package; {INSTALL_HINT}") from None
    return datasets


def folder_rows(spec: str | Path, default_split: str | None = None) -> list[Mapping[str, Any]]:
    """Rows of a save_to_disk folder: a Dataset, or the split of a DatasetDict (named, else `default_split`,
    else its only split)."""
    found = _folder_and_split(spec)
    if found is None:
        raise RlvrError(f"{spec}: not a folder written by datasets' save_to_disk")
    folder, split = found
    datasets = _datasets(str(folder))
    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as err:  # damaged or foreign folder: one line naming it
        raise RlvrError(f"{folder}: not a readable datasets folder ({_first_line(err)})") from None
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        chosen = split or (default_split if default_split in splits else splits[0] if len(splits) == 1 else None)
        if chosen not in splits:
            asked = f"no split {split!r}" if split else "several splits"
            raise RlvrError(f"{folder}: {asked}; it holds {', '.join(splits)} (name one as {folder}@SPLIT)")
        ds = ds[chosen]
    elif split is not None:
        raise RlvrError(f"{folder}@{split}: the folder holds one dataset without splits; give {folder}")
    return [dict(r) for r in ds]


def hub_rows(spec: str, default_split: str) -> list[Mapping[str, Any]]:
    """Rows of a hub dataset split, through the datasets cache (downloading needs the network)."""
    hub = parse_hub_id(spec, default_split)
    datasets = _datasets(spec)
    try:
        ds = datasets.load_dataset(hub.dataset, hub.config, split=hub.split)
    except Exception as err:  # offline, unknown id, missing config or split: one line
        raise RlvrError(f"{spec}: cannot load {hub.dataset} split {hub.split!r} from the Hugging Face hub "
                        f"({_first_line(err)}); {hub.fetch_hint()}") from None
    return [dict(r) for r in ds]


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
