"""Which checkpoint to serve, and the served copy of it.

`pick_checkpoint` reads the run folder only: `best` is the checkpoint with the highest validation accuracy
in RUN/metrics.jsonl (the earlier step on ties), `last` the newest, N that step. `served_copy` writes a
folder any OpenAI-compatible server loads as it is: the weights (linked, not copied; a LoRA adapter merged
into its base model), the config and the tokenizer with a chat template that turns a plain user message
into the prompt the model was trained or evaluated with.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from oneshot_rlvr.data.templates import COT_SYSTEM, TEMPLATES, TRAIN_SUFFIX
from oneshot_rlvr.errors import RlvrError, install_hint
from oneshot_rlvr.eval.curve import checkpoint_steps
from oneshot_rlvr.runfolder import RunFolder, read_jsonl

log = logging.getLogger(__name__)

ADAPTER = "adapter_config.json"
WEIGHT_SUFFIXES = (".safetensors",)
SKIPPED = ("trainer_state", "critic", "optimizer", "rng")  # resume files: never served


@dataclass(frozen=True)
class Choice:
    """The folder to serve and one line saying why it was chosen."""

    folder: Path
    step: int | None
    reason: str
    run: Path | None = None


def _val_accuracy(run: Path) -> dict[int, float]:
    """step -> val_accuracy from RUN/metrics.jsonl (the last row of a step wins: a resumed run rewrites it)."""
    path = RunFolder(run).metrics
    if not path.exists():
        return {}
    return {int(row["step"]): float(row["val_accuracy"]) for row in read_jsonl(path)
            if isinstance(row.get("val_accuracy"), (int, float)) and "step" in row}


def pick_checkpoint(source: str, step: str = "best") -> Choice:
    """A run folder's checkpoint by `step` (best, last or a number), or a model folder as it is."""
    from oneshot_rlvr.models.load import resolve_model_path

    path = Path(resolve_model_path(source)).expanduser()
    if (path / "config.json").exists() or (path / ADAPTER).exists():
        return Choice(path, None, f"serving {path} (a model folder)")
    if not path.is_dir():
        raise RlvrError(f"{source}: not a run folder, a checkpoint folder or builtin:NAME")
    steps = dict(checkpoint_steps(path))
    if not steps:
        raise RlvrError(f"{path}/checkpoints: no step_N/ checkpoint folders")
    if step == "last":
        last = max(steps)
        return Choice(steps[last], last, f"serving step {last} (the last checkpoint)", path)
    if step == "best":
        scores = {s: a for s, a in _val_accuracy(path).items() if s in steps}
        if not scores:
            last = max(steps)
            return Choice(steps[last], last, f"serving step {last} (the last checkpoint: no validation accuracy "
                                              f"recorded for any checkpoint in {path / 'metrics.jsonl'})", path)
        best = min(scores, key=lambda s: (-scores[s], s))
        return Choice(steps[best], best, f"serving step {best} (best validation accuracy "
                                         f"{100 * scores[best]:.1f}% of {len(scores)} validated checkpoints)", path)
    if not step.isdigit() or int(step) not in steps:
        raise RlvrError(f"--step {step}: expected best, last or one of the steps {', '.join(map(str, sorted(steps)))}")
    return Choice(steps[int(step)], int(step), f"serving step {step}", path)


def _literal(text: str) -> str:
    """A Jinja string literal for `text` (Jinja reads JSON's escapes the same way)."""
    return json.dumps(text)


def served_chat_template(template: str, base: str | None) -> str:
    """`base` (the model's chat template) after a prologue that rewrites the messages as `template` does
    for one problem: qwen25-math-cot adds the harness's system turn (unless the client sent one),
    oneshot-train ends each user turn with the training suffix (unless it already does), plain keeps
    them. A model without a chat template gets the plain-text layout `render_prompt` uses for it."""
    if template not in TEMPLATES:
        raise RlvrError(f"unknown prompt template {template!r} (choose from {', '.join(TEMPLATES)})")
    body = base or "{{ messages | map(attribute='content') | join('\\n\\n') }}{{ '\\n' }}"
    if template == "plain":
        return body
    lines = ["{%- set ns = namespace(msgs=[]) -%}"]
    if template == "qwen25-math-cot":
        lines.append("{%- if not messages or messages[0]['role'] != 'system' -%}"
                     f"{{%- set ns.msgs = [{{'role': 'system', 'content': {_literal(COT_SYSTEM)}}}] -%}}"
                     "{%- endif -%}")
        lines.append("{%- set ns.msgs = ns.msgs + messages -%}")
    else:
        lines.append("{%- for m in messages -%}"
                     "{%- if m['role'] == 'user' and m['content'] is string and not m['content'].rstrip()"
                     f".endswith({_literal(TRAIN_SUFFIX.strip())}) -%}}"
                     f"{{%- set ns.msgs = ns.msgs + [{{'role': 'user', 'content': m['content'] ~ "
                     f"{_literal(TRAIN_SUFFIX)}}}] -%}}"
                     "{%- else -%}{%- set ns.msgs = ns.msgs + [m] -%}{%- endif -%}"
                     "{%- endfor -%}")
    lines.append("{%- set messages = ns.msgs -%}")
    return "".join(lines) + body


def _tokenizer_source(choice: Choice) -> str:
    folder = choice.folder
    if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists():
        return str(folder)
    base = _base_model(choice)
    if base:
        return base
    raise RlvrError(f"{folder}: no tokenizer files and no base model to take them from")


def _base_model(choice: Choice) -> str | None:
    """The run's `model` (config.yaml), else the adapter's base_model_name_or_path."""
    if choice.run is not None and (choice.run / "config.yaml").exists():
        import yaml

        model = (yaml.safe_load((choice.run / "config.yaml").read_text(encoding="utf-8")) or {}).get("model")
        if isinstance(model, str) and model:
            return model
    adapter = choice.folder / ADAPTER
    if adapter.exists():
        base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        return str(base) if base else None
    return None


def served_copy(choice: Choice, template: str, out: Path) -> tuple[Path, str]:
    """Write the served copy of `choice` into `out`; returns (out, how the weights got there)."""
    from oneshot_rlvr.models.load import load_tokenizer

    out.mkdir(parents=True, exist_ok=True)
    if (choice.folder / ADAPTER).exists() and not (choice.folder / "config.json").exists():
        how = _merge_lora(choice, out)
    else:
        how = "weights linked from the checkpoint"
        for item in sorted(choice.folder.iterdir()):
            if item.is_dir() or item.name.startswith(SKIPPED) or item.suffix in (".pt", ".bin"):
                continue
            if item.suffix in WEIGHT_SUFFIXES:
                (out / item.name).symlink_to(item.resolve())
            else:
                shutil.copy2(item, out / item.name)  # copies: saving the tokenizer below rewrites them
    tok = load_tokenizer(_tokenizer_source(choice))
    tok.chat_template = served_chat_template(template, getattr(tok, "chat_template", None))
    tok.save_pretrained(out)
    return out, how


def _merge_lora(choice: Choice, out: Path) -> str:
    base = _base_model(choice)
    if not base:
        raise RlvrError(f"{choice.folder}: a LoRA adapter without a base model (no model in the run's config.yaml)")
    try:
        from peft import PeftModel
    except ImportError:
        raise RlvrError(f"serving a LoRA checkpoint needs peft: {install_hint('lora')}") from None
    from oneshot_rlvr.models.load import LoadOptions, load_model

    # float32: merging into bf16 weights would round the adapter's small updates away
    model = load_model(base, LoadOptions(dtype="float32"), "cpu")
    merged = PeftModel.from_pretrained(model, str(choice.folder)).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    return f"LoRA adapter merged into {base} (float32)"
