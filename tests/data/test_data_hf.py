"""Problems from the datasets library: save_to_disk folders (Dataset and DatasetDict) and hf: hub ids offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from oneshot_rlvr.data import load_problems
from oneshot_rlvr.data.hf import parse_hub_id
from oneshot_rlvr.errors import RlvrError

ROWS = {"problem": ["What is 2+3?", "What is 7*6?"], "solution_answer": ["5", "42"], "unique_id": ["a", "b"]}


def test_hub_ids_parse_config_and_split() -> None:
    assert parse_hub_id("hf:ORG/NAME", "train") == parse_hub_id("ORG/NAME", "train")
    hub = parse_hub_id("hf:allenai/ai2_arc:ARC-Easy@test", "train")
    assert (hub.dataset, hub.config, hub.split) == ("allenai/ai2_arc", "ARC-Easy", "test")
    assert parse_hub_id("hf:gsm8k", "test").split == "test"
    for bad in ("hf:", "hf:a/b/c", "hf:ORG/NAME@", "hf:ORG/NAME:"):
        with pytest.raises(RlvrError, match="expected hf:ORG/NAME"):
            parse_hub_id(bad, "train")


def test_a_save_to_disk_folder_loads_like_a_file(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets is an optional extra: pip install datasets")
    folder = tmp_path / "one"
    datasets.Dataset.from_dict(ROWS).save_to_disk(str(folder))
    problems = load_problems(folder, answer_field="solution_answer")
    assert [(p.id, p.prompt, p.answer) for p in problems] == [("a", "What is 2+3?", "5"), ("b", "What is 7*6?", "42")]
    assert problems[0].source == "one"
    with pytest.raises(RlvrError, match=r"one: row 1 \(id a\) has a missing or empty answer \(field 'answer/"):
        load_problems(folder)  # field names resolve as for files: no usual answer field here
    with pytest.raises(RlvrError, match="holds one dataset without splits"):
        load_problems(f"{folder}@test", answer_field="solution_answer")


def test_a_dataset_dict_folder_picks_its_split(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets is an optional extra: pip install datasets")
    folder = tmp_path / "dict"
    test_rows = {k: v[:1] for k, v in ROWS.items()}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(ROWS),
                          "test": datasets.Dataset.from_dict(test_rows)}).save_to_disk(str(folder))
    assert len(load_problems(folder, answer_field="solution_answer")) == 2  # the default split: train
    assert [p.id for p in load_problems(f"{folder}@test", answer_field="solution_answer")] == ["a"]
    with pytest.raises(RlvrError, match=r"no split 'dev'; it holds train, test \(name one as .*@SPLIT\)"):
        load_problems(f"{folder}@dev")


def test_hub_id_offline_is_one_line_naming_it_and_how_to_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets is an optional extra: pip install datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", "/nonexistent-cache-for-test")
    with pytest.raises(RlvrError) as err:
        load_problems("hf:no-such-org/no-such-dataset:main@validation")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("hf:no-such-org/no-such-dataset:main@validation: cannot load no-such-org/no-such-dataset "
                              "split 'validation'")
    assert "load_dataset('no-such-org/no-such-dataset', 'main', split='validation').save_to_disk('FOLDER')" in message


def test_without_datasets_the_error_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_datasets(name: str, *args: object, **kwargs: object) -> object:
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(RlvrError, match=r"^hf:ORG/NAME: reading it needs the datasets package; pip install"):
        load_problems("hf:ORG/NAME")
