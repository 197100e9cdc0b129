"""Progress output shared by long commands: one bar per command, nested library bars silenced inside it.

transformers draws its own bars while it writes or loads weights ("Writing model shards", "Loading weights");
under our bar each would print a line of its own per checkpoint. `nested_bars_off` hides them for a block and
restores the previous setting after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def nested_bars_off() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def bar(total: int, desc: str, unit: str, *, initial: int = 0, disable: bool | None = None) -> Any:
    """A tqdm bar like training's; `disable=None` turns it off where stderr is not a terminal (logs, CI)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=disable)
