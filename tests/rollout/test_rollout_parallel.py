"""Sampling processes: the rows of a batch decoded side by side from weights in shared memory."""

from __future__ import annotations

import copy
import multiprocessing
from pathlib import Path

import pytest
import torch

from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.models.load import load_model, load_tokenizer
from oneshot_rlvr.rollout import SamplingParams
from oneshot_rlvr.rollout.hf import HFRolloutEngine
from oneshot_rlvr.rollout.parallel import split_rows

GREEDY = SamplingParams(temperature=0, max_new_tokens=10)
A, B = "What is 2+3?", "What is 9*8?"  # the same token count: no row is padded


@pytest.fixture(scope="module")
def parts(peaked_model_dir: Path) -> tuple:
    return load_model(str(peaked_model_dir)), load_tokenizer(str(peaked_model_dir))


def test_split_rows_covers_every_row_once() -> None:
    assert split_rows(5, 2) == [slice(0, 3), slice(3, 5)]
    assert split_rows(1, 4) == [slice(0, 1)]
    assert [r for s in split_rows(64, 3) for r in range(64)[s]] == list(range(64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_helper_decodes_its_rows_as_this_process_would_and_follows_weight_updates(parts: tuple,
                                                                                  dtype: torch.dtype) -> None:
    model, tok = parts
    policy = copy.deepcopy(model)
    pooled = HFRolloutEngine(policy, tok, fast=True, dtype=dtype, processes=2)
    single = HFRolloutEngine(policy, tok, fast=True, dtype=dtype)
    threads = torch.get_num_threads()
    try:
        for update in range(2):
            # Rows 0-1 (prompt A) decode here, rows 2-3 (prompt B) in the helper, one thread each: each slice
            # must equal the same rows decoded alone in one process on one thread (same batch shape and
            # threads, so the same kernels and rounding).
            out = pooled.generate([A, B], 2, GREEDY)
            torch.set_num_threads(1)
            assert torch.equal(out.response_ids[2:], single.generate([B], 2, GREEDY).response_ids)
            assert torch.equal(out.response_ids[:2], single.generate([A], 2, GREEDY).response_ids)
            torch.set_num_threads(threads)
            assert out.texts[0] != out.texts[2]  # different prompts, different answers: the check can fail
            if update == 0:
                before = out.response_ids
                noise = torch.Generator().manual_seed(0)
                with torch.no_grad():
                    for p in policy.parameters():
                        p.add_(0.3 * torch.randn(p.shape, generator=noise))
                pooled.sync(policy)
                single.sync(policy)
        assert not torch.equal(before[2:], out.response_ids[2:])  # the helper saw the new weights (and repacked)
    finally:
        torch.set_num_threads(threads)
        pooled.close()


def test_sampling_is_reproducible_per_seed_and_varies_with_it(parts: tuple) -> None:
    model, tok = parts
    engine = HFRolloutEngine(model, tok, fast=True, processes=2)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=12)
    try:
        first = engine.generate([A], 8, sampling, seed=3)
        assert torch.equal(first.response_ids, engine.generate([A], 8, sampling, seed=3).response_ids)
        assert not torch.equal(first.response_ids, engine.generate([A], 8, sampling, seed=4).response_ids)
        assert len(set(first.texts[4:])) > 1  # the helper's rows are sampled, not copies of one row
    finally:
        engine.close()


def test_failures_are_raised_and_the_pool_recovers(parts: tuple) -> None:
    model, tok = parts
    policy = copy.deepcopy(model)
    engine = HFRolloutEngine(policy, tok, fast=True, processes=2)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6)
    try:
        saved = [p.detach().clone() for p in policy.parameters()]
        with torch.no_grad():
            policy.get_output_embeddings().weight.fill_(float("nan"))
        engine.sync(policy)
        with pytest.raises(RuntimeError, match="nan"):  # the training loop turns this into TrainingDiverged
            engine.generate([A, B], 2, sampling)
        with torch.no_grad():
            for p, value in zip(policy.parameters(), saved, strict=True):
                p.copy_(value)
        engine.sync(policy)
        assert len(engine.generate([A, B], 2, sampling)) == 4  # no stale answer left in a pipe
        assert engine._pool is not None
        engine._pool._procs[0].kill()
        engine._pool._procs[0].join()
        with pytest.raises(RlvrError, match="sampling process 1 died"):
            engine.generate([A, B], 2, sampling)
        assert len(engine.generate([A, B], 2, sampling)) == 4  # a new pool
    finally:
        engine.close()


def test_training_with_two_sampling_processes_runs_and_stops_them(tiny_model_dir: Path, tmp_path: Path) -> None:
    from oneshot_rlvr.config import resolve_config
    from oneshot_rlvr.train import train

    cfg = resolve_config(None, None, [
        f"model={tiny_model_dir}", "problem=What is 2+3?", "answer=5", "batch_size=2", "mini_batch_size=2", "n=4",
        "max_new_tokens=8", "steps=2", "save_every=0", "device=cpu", "rollout_processes=2", "template=plain",
    ])
    run = train(cfg, tmp_path / "run", quiet=True, save_final=False)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert not multiprocessing.active_children()


def test_models_off_the_fast_path_sample_in_one_process_and_say_so(parts: tuple,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    model, tok = parts
    engine = HFRolloutEngine(model, tok, fast=False, processes=2)
    engine.sync(model)
    out = engine.generate([A, B], 2, GREEDY)
    assert len(out) == 4 and engine._pool is None
    assert sum("processes=2 ignored" in r.getMessage() for r in caplog.records) == 1  # once, not every sync


def test_logits_processors_that_cannot_travel_are_named(parts: tuple) -> None:
    model, tok = parts
    engine = HFRolloutEngine(model, tok, fast=True, processes=2,
                             logits_processor_factory=lambda prompt_len: lambda ids, scores: scores)
    try:
        with pytest.raises(RlvrError, match="picklable logits processors"):
            engine.generate([A, B], 2, GREEDY)
        assert engine._pool is not None and engine._pool.closed
    finally:
        engine.close()
