"""One RL step of oneshot-rlvr against TRL's GRPOTrainer on the same model, batch and objective.

Both trainers run in fresh subprocesses (so each peak-memory figure is its own), alternately for
`--rounds` rounds; each run does `--warmup` untimed steps and `--steps` timed ones. Same model (random
weights), same 1-shot batch (one prompt x `--prompts` copies x `--samples` samples), same forced response
length, GRPO with KL 0.001 (k3) and entropy 0.001, one update per step.

    python benchmarks/step_vs_trl.py --device cpu            # tiny model: 8 x 8 x 128 tokens
    python benchmarks/step_vs_trl.py --device cuda           # Qwen2.5-1.5B shape, bf16, 8 x 8 x 512
    python benchmarks/step_vs_trl.py --device cpu --workload longtail   # rows stop at long-tailed lengths
    python benchmarks/step_vs_trl.py --device cpu --workload pi1 --only ours --ab-chunked
        # the paper's shape scaled to a CPU: one prompt x 8 samples x 16 copies, long-tailed lengths up to 256
        # tokens, 32 decode slots; our side with continuous batching and with chunks, alternately

`--workload pi1` is the shape a user runs: one prompt, n = 8, many copies, long-tailed lengths capped at
`--tokens`, fewer decode rows (`--slots`, our `rollout_batch_rows`) than rows: on CPU 16 copies (128 rows) of
at most 256 tokens through 32 slots, on CUDA the Qwen2.5-1.5B shape with 128 copies (1,024 rows) of at most
3,072 tokens through 256 slots. `--ab-chunked` runs our side both ways, alternating, and adds
`generate_speedup_vs_chunked` (chunked generate time over continuous).

`--json` makes the last line one JSON object (ratio, ours_step_s, trl_step_s, peak memory, splits, and
ratio_per_round: each round's ratio, which shows how much the machine's drift moves it). With
forced lengths it also gives our generation time against the memory-bandwidth floor of the same decode
(`ours_decode_floor_s`: every step reads each weight and the KV cache once, at the bandwidth a large copy
reaches on the device, `copy_bandwidth_gbs`), and each phase's floor from the device's measured matmul rate
(`floors.py`: `ours_generate_floor_s`, `ours_logprobs_floor_s`, `ours_update_floor_s`, their sum
`ours_step_floor_s`, our step against it, `ours_step_vs_floor`, and with TRL the ratio our step would have at
its floor, `ratio_at_floor`: the lowest ratio this device allows). `ours_vs_floor` gives each phase's time over
its floor, and `ours_below_floor` the phases measured faster than their floor (a floor or a measurement to check).
Needs `pip install -e ".[bench]"` (trl).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from floors import (
    copy_bandwidth_gbs,
    decode_floor_s,
    forward_flops,
    matmul_gflops,
    model_config,
    model_decode_bytes,
    step_floors,
)

PROMPT = "Let p, q be the roots of x^2 - 7x + 3 = 0. Compute p^3 + q^3 and explain every step of the work."


def build_model(device: str, out: Path) -> Path:
    from oneshot_rlvr.models.tiny import build_tiny_model

    text = [PROMPT, "The answer is \\boxed{280}. Let me check: 343 - 63 = 280."] * 50
    if device == "cuda":  # Qwen2.5-1.5B's shape, random weights (nothing is downloaded)
        import torch

        # Initialised on the GPU in bf16 (both trainers load it in bf16): seconds, not minutes on the CPU.
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda"):
                return build_tiny_model(out, texts=text, vocab_size=1024, hidden_size=1536, intermediate_size=8960,
                                        num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                                        max_position_embeddings=4096, model_vocab_size=151936)
        finally:
            torch.set_default_dtype(default)
            torch.cuda.empty_cache()  # (this process stays alive beside the workers)
    return build_tiny_model(out, texts=text, vocab_size=1024, hidden_size=256, intermediate_size=704,
                            num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2)


def length_table(vocab: int, max_len: int, workload: str, seed: int = 0) -> list[int]:
    # (pi1 draws its lengths as longtail does)
    """Response length by first response token: all max_len (forced), or long-tailed draws (most short,
    a few long). Keying on the first sampled token keeps lengths independent of row order, so both
    trainers (and batches that drop finished rows) see the same distribution."""
    if workload == "forced":
        return [max_len] * vocab
    import random

    rng = random.Random(seed)
    return [max(8, min(max_len, int(rng.lognormvariate(0, 1.0) * max_len / 8))) for _ in range(vocab)]


class LengthForcer:
    """A logits processor: no stop token before the row's target length, only the EOS token at it.

    Every token that ends a response for either trainer (EOS, chat end markers) is suppressed before
    the target: otherwise one side could stop early on a marker the other does not stop at.
    """

    def __init__(self, prompt_len: int, table: list[int], stop_id: int, suppress: list[int]):
        import torch

        self.prompt_len, self.table, self.stop_id = prompt_len, torch.tensor(table), stop_id
        self.suppress = torch.tensor(sorted(set(suppress) | {stop_id}))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.table.device != scores.device:  # once: a copy from host memory would wait for the GPU every token
            self.table, self.suppress = self.table.to(scores.device), self.suppress.to(scores.device)
        step = input_ids.shape[1] - self.prompt_len
        scores[:, self.suppress] = -1e9
        if step == 0:
            return scores
        target = self.table[input_ids[:, self.prompt_len].clamp(max=len(self.table) - 1)]
        at_end = (target - 1) <= step
        forced = torch.full_like(scores, -1e9)
        forced[:, self.stop_id] = 0
        return torch.where(at_end[:, None], forced, scores)


class RowLengthForcer:
    """LengthForcer for our decode loops, whose rows may be at different steps (continuous batching): it sees
    each row's response so far and its token count. It also counts the decode steps (one call each)."""

    def __init__(self, table: list[int], stop_id: int, suppress: list[int]):
        import torch

        self.table, self.stop_id = torch.tensor(table), stop_id
        self.suppress = torch.tensor(sorted(set(suppress) | {stop_id}))
        self.calls = 0

    def __call__(self, responses: Any, done: Any, scores: Any) -> Any:
        import torch

        self.calls += 1
        if self.table.device != scores.device:
            self.table, self.suppress = self.table.to(scores.device), self.suppress.to(scores.device)
        scores[:, self.suppress] = -1e9
        target = self.table[responses[:, 0].clamp(min=0, max=len(self.table) - 1)]
        at_end = (done > 0) & ((target - 1) <= done)
        forced = torch.full_like(scores, -1e9)
        forced[:, self.stop_id] = 0
        return torch.where(at_end[:, None], forced, scores)


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker == "ours":
        return run_ours(args)
    return run_trl(args)


def _peak_gb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _vocab(model_dir: str) -> int:
    return int(model_config(model_dir)["vocab_size"])


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from oneshot_rlvr.config import resolve_config
    from oneshot_rlvr.models.load import load_tokenizer, stop_token_ids
    from oneshot_rlvr.rollout.fast import FastRolloutEngine
    from oneshot_rlvr.train import train

    tok = load_tokenizer(args.model_dir)
    rows = args.prompts * args.samples
    table = length_table(_vocab(args.model_dir), args.tokens, args.workload)
    rollout_dtype = {"bf16": torch.bfloat16, "fp32": None}[args.rollout_dtype]
    stops = stop_token_ids(tok)
    forcer = RowLengthForcer(table, tok.eos_token_id, stops)
    engine = FastRolloutEngine(None, tok, max_batch_rows=args.slots, dtype=rollout_dtype,
                               graphs=None if args.cuda_graphs == "on" else False,
                               continuous=not args.chunked, row_processors=[forcer])
    cfg = resolve_config(None, None, [
        f"model={args.model_dir}", f"problem={PROMPT}", "answer=280", f"batch_size={args.prompts}",
        f"mini_batch_size={args.prompts}", f"n={args.samples}", f"max_new_tokens={args.tokens}",
        f"micro_batch_size={args.micro}", f"rollout_batch_rows={args.slots}", "temperature=1.0", "lr=1e-6",
        "kl_coef=0.001", "entropy_coef=0.001", f"steps={args.warmup + args.steps}", "save_every=0",
        f"device={args.device}", f"autocast={args.autocast}",
        f"gradient_checkpointing={str(args.device == 'cuda').lower()}", "template=plain",
        f"dtype={'bfloat16' if args.device == 'cuda' else 'float32'}",
    ])
    with tempfile.TemporaryDirectory() as out:
        train(cfg, Path(out) / "run", engine=engine, reward_fn=lambda p, t: [float(len(x) % 2) for x in t],
              quiet=True, save_final=False)
        engine.close()  # (its helper's peak memory is counted once it has ended)
        metrics = [json.loads(x) for x in (Path(out) / "run/metrics.jsonl").read_text().splitlines()]
    timed = metrics[args.warmup:]
    return {
        "step_s": [m["time_step"] for m in timed],
        "generate_s": [m["time_generate"] for m in timed],
        "logprobs_s": [m["time_logprobs"] for m in timed],
        "update_s": [m["time_update"] for m in timed],
        "new_tokens": [m["response_length_mean"] * rows for m in timed],
        "decode_steps": forcer.calls / (args.warmup + args.steps),  # (per training step, warm-up included)
        "peak_gb": _peak_gb(args.device),
        **_floor_inputs(args, tok),
    }


def _floor_inputs(args: argparse.Namespace, tok: Any) -> dict[str, float]:
    """What the floors (`floors.py`) need, measured or counted in the worker (on the device)."""
    from oneshot_rlvr.data import render_prompt  # (the prompt our side samples from: chat-templated)

    sampling_bf16 = args.rollout_dtype == "bf16" or args.device == "cuda"  # (the cuda model is bf16 itself)
    train_bf16 = args.autocast == "bf16" or args.device == "cuda"
    weight_bytes, kv_bytes = model_decode_bytes(args.model_dir, 2 if sampling_bf16 else 4)
    prompt_tokens = len(tok(render_prompt(PROMPT, "plain", tok), add_special_tokens=False).input_ids)
    rates = {dtype: matmul_gflops(args.device, dtype) for dtype in {"bf16" if b else "fp32"
                                                                    for b in (sampling_bf16, train_bf16)}}
    return {"weight_bytes": weight_bytes, "kv_bytes_per_token": kv_bytes, "prompt_tokens": prompt_tokens,
            "bandwidth_gbs": copy_bandwidth_gbs(args.device),
            "forward_flops": forward_flops(model_config(args.model_dir), args.prompts * args.samples, prompt_tokens,
                                           args.tokens),
            "gflops_sampling": rates["bf16" if sampling_bf16 else "fp32"],
            "gflops_train": rates["bf16" if train_bf16 else "fp32"]}


def run_trl(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from oneshot_rlvr.models.load import stop_token_ids

    tok = AutoTokenizer.from_pretrained(args.model_dir, padding_side="left")
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype)
    rows = args.prompts * args.samples
    table = length_table(_vocab(args.model_dir), args.tokens, args.workload)
    data = Dataset.from_list([{"prompt": PROMPT}] * args.prompts * (args.warmup + args.steps))
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=rows, num_generations=args.samples,
        max_completion_length=args.tokens, temperature=1.0, beta=0.001, entropy_coef=0.001, learning_rate=1e-6,
        max_steps=args.warmup + args.steps, logging_steps=1, report_to=[], save_strategy="no",
        use_cpu=args.device == "cpu", bf16=args.autocast == "bf16",  # TRL's default is bf16
        gradient_checkpointing=args.device == "cuda", gradient_accumulation_steps=1, disable_dropout=True,
        loss_type="grpo", scale_rewards="group", seed=0, dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(model=model, args=config, train_dataset=data, processing_class=tok,
                          reward_funcs=lambda completions, **kw: [float(len(c) % 2) for c in completions])
    times: dict[str, list[float]] = {"step_s": [], "generate_s": [], "new_tokens": []}
    generate = trainer.model.generate
    spent = {"generate": 0.0}

    def timed_generate(*a: Any, **kw: Any) -> Any:
        prompt_len = kw["input_ids"].shape[1] if "input_ids" in kw else a[0].shape[1]
        kw.setdefault("logits_processor", []).append(LengthForcer(prompt_len, table, tok.eos_token_id,
                                                                  stop_token_ids(tok)))
        if args.device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = generate(*a, **kw)
        if args.device == "cuda":
            torch.cuda.synchronize()
        spent["generate"] += time.perf_counter() - start
        is_eos = out[:, prompt_len:] == tok.eos_token_id  # tokens up to and including the first EOS
        spent["new_tokens"] += float(((is_eos.cumsum(1) - is_eos.long()) == 0).sum())
        return out

    trainer.model.generate = timed_generate  # type: ignore[method-assign]

    class Timer(TrainerCallback):
        def on_step_begin(self, *a: Any, **kw: Any) -> None:
            spent["generate"] = spent["new_tokens"] = 0.0
            spent["start"] = time.perf_counter()

        def on_step_end(self, *a: Any, **kw: Any) -> None:
            if args.device == "cuda":
                torch.cuda.synchronize()
            times["step_s"].append(time.perf_counter() - spent["start"])
            times["generate_s"].append(spent["generate"])
            times["new_tokens"].append(spent["new_tokens"])

    trainer.add_callback(Timer())
    trainer.train()
    return {**{k: v[args.warmup:] for k, v in times.items()}, "peak_gb": _peak_gb(args.device)}


def launch(args: argparse.Namespace, which: str, model_dir: Path) -> dict[str, Any]:
    role = "ours" if which.startswith("ours") else which
    cmd = [sys.executable, __file__, "--worker", role, "--model-dir", str(model_dir)] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
        if k not in ("worker", "model_dir", "json", "chunked", "ab_chunked") and v is not None]
    if which == "ours-chunked":
        cmd.append("--chunked")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{which} worker failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--workload", choices=("forced", "longtail", "pi1"), default="forced")
    p.add_argument("--prompts", type=int, default=None,
                   help="copies of the prompt (default 8; pi1: 16 on cpu, 128 on cuda)")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--tokens", type=int, default=None, help="response length (default 128 on cpu, 512 on cuda)")
    p.add_argument("--micro", type=int, default=None,
                   help="our micro-batch rows (default 32 on cpu, the tiny-cpu preset's; 16 on cuda)")
    p.add_argument("--autocast", choices=("bf16", "none"), default=None,
                   help="bf16 mixed precision on both sides (TRL's default) or none (fp32); default: bf16 where "
                        "the device multiplies bf16 natively, none elsewhere (the trainer's autocast=auto)")
    p.add_argument("--rollout-dtype", choices=("bf16", "fp32"), default=None,
                   help="our sampling weights (default: bf16 where it is native, fp32 elsewhere)")
    p.add_argument("--cuda-graphs", choices=("on", "off"), default="on",
                   help="our decode steps replayed from CUDA graphs on CUDA (default) or launched one by one")
    p.add_argument("--threads", type=int, default=0, help="torch threads per side (0 = torch's default)")
    p.add_argument("--slots", type=int, default=None,
                   help="our decode rows, rollout_batch_rows (default: every row; pi1: 32 on cpu, 256 on cuda)")
    p.add_argument("--ab-chunked", action="store_true",
                   help="run our side with continuous batching and with chunks, alternately")
    p.add_argument("--chunked", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--only", choices=("ours", "trl"), default=None, help="run one side only")
    p.add_argument("--json", action="store_true")
    p.add_argument("--worker", choices=("ours", "trl"), help=argparse.SUPPRESS)
    p.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = p.parse_args()
    cuda, pi1 = args.device == "cuda", args.workload == "pi1"
    args.prompts = args.prompts or ((128 if cuda else 16) if pi1 else 8)
    args.tokens = args.tokens or ((3072 if cuda else 256) if pi1 else (512 if cuda else 128))
    args.slots = args.slots or ((256 if cuda else 32) if pi1 else args.prompts * args.samples)
    # On CPU 32 rows of ~170 tokens per pass measured 10% faster than 16 (64: slower again).
    args.micro = args.micro or (16 if args.device == "cuda" else 32)
    if args.autocast is None or args.rollout_dtype is None:  # (resolved here, so both sides get the same)
        import torch

        from oneshot_rlvr.models.precision import resolve_autocast

        chosen = resolve_autocast("auto", torch.device(args.device))  # (the trainer's rule; sampling follows it)
        args.autocast = args.autocast or chosen
        args.rollout_dtype = args.rollout_dtype or ("bf16" if chosen == "bf16" else "fp32")
    if args.worker:
        print(json.dumps(worker(args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(args.device, Path(tmp) / "model")
        results: dict[str, list[dict[str, Any]]] = {"ours": [], "ours-chunked": [], "trl": []}
        sides = [args.only] if args.only else ["ours", "trl"]
        if args.ab_chunked and "ours" in sides:
            sides.insert(sides.index("ours") + 1, "ours-chunked")
        for _ in range(args.rounds):
            for side in sides:
                results[side].append(launch(args, side, model_dir))
    report(args, results)


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    summary: dict[str, Any] = {"device": args.device, "workload": args.workload,
                               "shape": f"{args.prompts}x{args.samples}x{args.tokens}",
                               "slots": getattr(args, "slots", None) or args.prompts * args.samples,
                               "autocast": args.autocast, "rollout_dtype": args.rollout_dtype}
    for side, runs in results.items():
        if not runs:
            continue
        steps = [s for r in runs for s in r["step_s"]]
        summary[f"{side}_step_s"] = statistics.median(steps)
        summary[f"{side}_generate_s"] = statistics.median([s for r in runs for s in r["generate_s"]])
        summary[f"{side}_peak_mem_gb"] = max(r["peak_gb"] for r in runs)
        if side.startswith("ours"):
            for part in ("logprobs_s", "update_s"):
                summary[f"{side}_{part}"] = statistics.median([s for r in runs for s in r[part]])
            if all("decode_steps" in r for r in runs):
                summary[f"{side}_decode_steps"] = statistics.median([r["decode_steps"] for r in runs])
        # Both sides must generate the same number of tokens for the comparison to be fair.
        tokens = statistics.median([t for r in runs for t in r["new_tokens"]])
        summary[f"{side}_new_tokens"] = tokens
        summary[f"{side}_new_tokens_per_s"] = tokens / summary[f"{side}_generate_s"]
    if results.get("ours") and args.workload == "forced":  # (long-tailed rows stop at lengths not recorded here)
        run = results["ours"][0]
        bandwidth = statistics.median([r["bandwidth_gbs"] for r in results["ours"]])
        summary["copy_bandwidth_gbs"] = bandwidth
        summary["ours_decode_floor_s"] = decode_floor_s(run["weight_bytes"], run["kv_bytes_per_token"],
                                                        args.prompts * args.samples, run["prompt_tokens"],
                                                        args.tokens, bandwidth)
        summary["ours_generate_vs_floor"] = summary["ours_generate_s"] / summary["ours_decode_floor_s"]
        for name in ("gflops_sampling", "gflops_train"):
            summary[f"matmul_{name}"] = statistics.median([r[name] for r in results["ours"]])
        floors = step_floors(run["forward_flops"], summary["matmul_gflops_sampling"], summary["matmul_gflops_train"],
                             summary["ours_decode_floor_s"])
        summary.update({f"ours_{phase}_floor_s": seconds for phase, seconds in floors.items()})
        summary["ours_step_vs_floor"] = summary["ours_step_s"] / floors["step"]
        summary.update(_against_floors(summary, floors))
        if results.get("trl"):  # the ratio our step would have if it ran at the floor: the best this device allows
            summary["ratio_at_floor"] = floors["step"] / statistics.median(
                [s for r in results["trl"] for s in r["step_s"]])
    if results.get("ours-chunked"):
        summary["generate_speedup_vs_chunked"] = summary["ours-chunked_generate_s"] / summary["ours_generate_s"]
        summary["generate_speedup_per_round"] = [
            round(statistics.median(c["generate_s"]) / statistics.median(o["generate_s"]), 3)
            for o, c in zip(results["ours"], results["ours-chunked"], strict=True)]
    if "ours_step_s" in summary and "trl_step_s" in summary:
        summary["ratio"] = summary["ours_step_s"] / summary["trl_step_s"]
        # Each round's own ratio (the two sides ran back to back): how far the machine's drift moves it.
        summary["ratio_per_round"] = [round(statistics.median(o["step_s"]) / statistics.median(t["step_s"]), 3)
                                      for o, t in zip(results["ours"], results["trl"], strict=True)]
    for key, value in summary.items():
        print(f"{key:>24}: {value:.4g}" if isinstance(value, float) else f"{key:>24}: {value}")
    if args.json:
        print(json.dumps(summary))


def _against_floors(summary: dict[str, Any], floors: dict[str, float]) -> dict[str, Any]:
    """Each phase's measured time over its floor (`ours_vs_floor`), and the phases that came out faster than
    their floor (`ours_below_floor`). A sound floor leaves every ratio at 1 or above; a phase below it means the
    floor's model or the measurement is off (a loaded machine, work the model leaves out), so it is reported
    here, where a reader judges it, not asserted by a test."""
    ratios = {phase: summary[f"ours_{phase}_s"] / floor for phase, floor in floors.items() if floor > 0}
    below = [phase for phase, ratio in ratios.items() if ratio < 1]
    if below:
        print(f"warning: measured below the floor in {', '.join(below)}: check the floor or rerun on a quiet "
              "machine", file=sys.stderr)
    return {"ours_vs_floor": ratios, "ours_below_floor": below}


if __name__ == "__main__":
    main()
