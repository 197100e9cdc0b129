"""The pretraining recipe on a toy-sized model: rows, loss masks, determinism, and exact resumption."""

from __future__ import annotations

from pathlib import Path

import pytest

from oneshot_rlvr.world.pretrain import PretrainConfig, build_world_tokenizer, pack_batch, pretrain


def _config(**overrides: object) -> PretrainConfig:
    base = dict(tokens=1200, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, seq_len=256, batch_rows=2, tokenizer_docs=300, warmup_steps=2,
                checkpoint_every=1, log_every=1, vocab_size=400, threads=1)
    base.update(overrides)
    return PretrainConfig(**base)  # type: ignore[arg-type]


def _interrupted_at(stop: int):  # type: ignore[no-untyped-def]
    """`pack_batch` that stops the run (as Ctrl-C would) when asked for step `stop`."""

    def pack(tok, config, step):  # type: ignore[no-untyped-def]
        if step == stop:
            raise KeyboardInterrupt
        return pack_batch(tok, config, step)

    return pack


def test_rows_hold_whole_documents_and_only_responses_are_learned() -> None:
    config = _config()
    tok = build_world_tokenizer(config)
    ids, labels, real = pack_batch(tok, config, step=0)
    assert ids.shape == labels.shape == (2, 256)
    assert real == int((ids != tok.pad_token_id).sum())
    start, end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    for row_ids, row_labels in zip(ids.tolist(), labels.tolist(), strict=True):
        assert row_ids[0] == start  # rows begin with a document, never mid-way
        learned = [t for t, lab in zip(row_ids, row_labels, strict=True) if lab != -100]
        assert learned and learned[-1] == end  # each response is learned up to its <|im_end|>
        # Prompts (system/user turns and the assistant header) are never learned.
        assert start not in learned
        assert [lab for lab in row_labels if lab != -100] == learned
    assert pack_batch(tok, config, step=0)[0].equal(ids)
    assert not pack_batch(tok, config, step=1)[0].equal(ids)


def test_resumed_run_matches_an_uninterrupted_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import load_file

    import oneshot_rlvr.world.pretrain as module

    full = pretrain(_config(), tmp_path / "full")
    assert full["steps"] >= 3 and full["tokens"] >= 1200

    monkeypatch.setattr(module, "pack_batch", _interrupted_at(2))
    with pytest.raises(KeyboardInterrupt):
        pretrain(_config(), tmp_path / "resumed")
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    monkeypatch.setattr(module, "pack_batch", pack_batch)
    resumed = pretrain(_config(), tmp_path / "resumed")
    assert resumed["steps"] == full["steps"] and resumed["tokens"] == full["tokens"]
    assert not (tmp_path / "resumed" / "checkpoint.pt").exists()
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(a[k].equal(b[k]) for k in a)
    for name in ("config.json", "tokenizer.json", "generation_config.json", "pretrain.json"):
        assert (tmp_path / "full" / name).exists()


def test_checkpoint_from_other_settings_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oneshot_rlvr.world.pretrain as module
    from oneshot_rlvr.errors import RlvrError

    monkeypatch.setattr(module, "pack_batch", _interrupted_at(1))
    with pytest.raises(KeyboardInterrupt):
        pretrain(_config(), tmp_path)
    monkeypatch.undo()
    with pytest.raises(RlvrError, match="other settings"):
        pretrain(_config(lr=1e-4), tmp_path)


def test_autocast_is_resolved_recorded_and_part_of_the_settings(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """auto becomes bf16 or none before anything is recorded; a checkpoint made in one refuses the other."""
    import oneshot_rlvr.world.pretrain as module
    from oneshot_rlvr.errors import RlvrError
    from oneshot_rlvr.models import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    summary = pretrain(_config(tokens=300), tmp_path / "auto")
    assert summary["settings"]["autocast"] == "none"
    explicit = pretrain(_config(tokens=300, autocast="none"), tmp_path / "none")
    assert explicit["settings"] == summary["settings"]

    monkeypatch.setattr(module, "pack_batch", _interrupted_at(1))
    with pytest.raises(KeyboardInterrupt):
        pretrain(_config(autocast="auto"), tmp_path / "stopped")  # (none here)
    monkeypatch.setattr(module, "pack_batch", pack_batch)
    with pytest.raises(RlvrError, match="other settings"):
        pretrain(_config(autocast="bf16"), tmp_path / "stopped")

    # A checkpoint written before the setting existed ran under bf16: it resumes as bf16, not as none.
    import torch

    ckpt = tmp_path / "stopped" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    del state["settings"]["autocast"]
    torch.save(state, ckpt)
    with pytest.raises(RlvrError, match="other settings"):
        pretrain(_config(autocast="none"), tmp_path / "stopped")
    assert pretrain(_config(autocast="bf16"), tmp_path / "stopped")["settings"]["autocast"] == "bf16"


class _CreatesFile:
    """Unpickling this opens (so creates) `target` for writing: what a crafted checkpoint could do."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self) -> tuple:
        return (open, (str(self.target), "w"))


def test_a_crafted_checkpoint_is_refused_without_running_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    import torch

    import oneshot_rlvr.world.pretrain as module
    from oneshot_rlvr.errors import RlvrError

    monkeypatch.setattr(module, "pack_batch", _interrupted_at(2))
    with pytest.raises(KeyboardInterrupt):
        pretrain(_config(), tmp_path / "run")
    monkeypatch.setattr(module, "pack_batch", pack_batch)
    ckpt, target = tmp_path / "run" / "checkpoint.pt", tmp_path / "created"
    torch.save({**torch.load(ckpt, weights_only=True), "step": _CreatesFile(target)}, ckpt)
    files = sorted((tmp_path / "run").iterdir())
    before = [(p.name, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files]
    with pytest.raises(RlvrError) as err:
        pretrain(_config(), tmp_path / "run")
    message = str(err.value)
    assert message.startswith(f"{ckpt}: refused (it holds a pickled Python object (io.open))") and "\n" not in message
    assert not target.exists()
    after = sorted((tmp_path / "run").iterdir())
    assert [(p.name, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in after] == before
