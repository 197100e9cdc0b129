"""docs/settings.md, generated from `TrainConfig`: every setting by group with its type, default and meaning, then
the presets. `python -m oneshot_rlvr.settingsdoc > docs/settings.md` rewrites it; a test fails when it is stale."""

from __future__ import annotations

import textwrap

from oneshot_rlvr.config import PRESETS, TrainConfig, field_docs, field_groups

HEADER = """# Settings

Every `rlvr train` setting, by group, with its type, default and meaning: what `rlvr train --help-config` prints
(add `--preset NAME` or `--config FILE.yaml` there to see their values). Set any of them as `KEY=VALUE` on the
command line, in a YAML file given with `--config`, or through a preset. A run folder's `config.yaml` records the
resolved values.

This page is generated from `TrainConfig`'s field docstrings (`src/oneshot_rlvr/config.py`):
`python -m oneshot_rlvr.settingsdoc > docs/settings.md` rewrites it, and a test fails when it is stale.
"""


def _one_line(text: str) -> str:
    return " ".join(textwrap.dedent(text).split())


def render() -> str:
    """The whole page, as docs/settings.md holds it."""
    defaults, docs = TrainConfig(), field_docs()
    out = [HEADER]
    for group, names in field_groups().items():
        out.append(f"## {group}\n")
        for name in names:
            default = getattr(defaults, name)
            kind = "bool" if isinstance(default, bool) else type(default).__name__
            out.append(f"- `{name}` ({kind}, default `{default!r}`): {_one_line(docs.get(name, ''))}")
        out.append("")
    out.append("## Presets\n")
    out.append("`--preset NAME` starts from these values; anything given as `KEY=VALUE` or in `--config` wins.\n")
    for preset, values in PRESETS.items():
        settings = ", ".join(f"`{key}={value!r}`" for key, value in values.items())
        out.append(f"- `{preset}`: {settings}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
