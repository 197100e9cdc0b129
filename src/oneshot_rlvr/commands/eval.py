"""`rlvr eval`: the paper's benchmarks (or your own files) on a model, or on every checkpoint of a run."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from oneshot_rlvr.errors import RlvrError

HELP = "evaluate a model (or a run's checkpoints) on MATH500, AIME24/25, AMC23, Minerva, OlympiadBench, ARC"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to evaluate (one of)")
    what.add_argument("--model", help="model folder, Hugging Face hub id, or builtin:tiny")
    what.add_argument("--run", metavar="RUN",
                      help="training run folder: evaluate RUN/checkpoints/step_N/ into RUN/eval/N/")
    what.add_argument("--every", type=int, metavar="K",
                      help="with --run: only steps that are multiples of K")
    what.add_argument("--endpoint", metavar="URL",
                      help="an OpenAI-compatible server (rlvr serve, vllm serve, a hosted API): its base URL; "
                           "see docs/serving.md")
    served = parser.add_argument_group("served model (with --endpoint)")
    served.add_argument("--served-model", metavar="NAME", help="model name to request (default: the server's first)")
    served.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key")
    served.add_argument("--max-in-flight", type=int, default=16, metavar="K",
                        help="requests open at once (default 16)")
    served.add_argument("--serve-engine", choices=("transformers", "vllm"),
                        help="with --run: evaluate each checkpoint through a server of its own (rlvr serve's "
                             "engines), started and stopped per step")
    bench = parser.add_argument_group("benchmarks")
    bench.add_argument("--benchmarks", metavar="LIST",
                       help="comma-separated registry names: math500, aime24, aime25, amc23, minerva_math, "
                            "olympiadbench, arc_easy, arc_challenge; 'paper' = the first six "
                            "(default: paper, unless --benchmark is given)")
    bench.add_argument("--benchmark", action="append", default=[], metavar="NAME=FILE",
                       help="a benchmark from a JSONL/JSON/parquet file (repeatable); "
                            "a registered NAME keeps its protocol and reads FILE")
    bench.add_argument("--question-field", help="field of the question in --benchmark files")
    bench.add_argument("--answer-field", help="field of the gold answer in --benchmark files")
    bench.add_argument("--id-field", help="field of the problem id in --benchmark files")
    bench.add_argument("--data-dir", help="folder of the harness benchmark files "
                                          "(default: $RLVR_EVAL_DATA, else "
                                          "../shared/data/oneshot_rlvr/Qwen2.5-Eval/evaluation/data)")
    bench.add_argument("--limit", type=int, metavar="N", help="only the first N problems of each benchmark")
    bench.add_argument("--grader", choices=("harness", "ours", "both"),
                       help="harness: the paper's evaluation harness rule (for numbers beside the paper's "
                            "tables); ours: this project's grader; both: both verdicts in every record, the "
                            "table as 'harness (ours)' (default: both for the paper's benchmarks, else ours; "
                            "see docs/grading.md)")
    decode = parser.add_argument_group("decoding (default: each benchmark's protocol)")
    decode.add_argument("--template", default="qwen25-math-cot",
                        help="prompt template: qwen25-math-cot (default), oneshot-train or plain")
    decode.add_argument("--n", type=int, help="samples per problem (protocol: 1 greedy, 8 for AIME/AMC)")
    decode.add_argument("--temperature", type=float, help="sampling temperature (protocol: 0 or 0.6)")
    decode.add_argument("--top-p", type=float, help="nucleus sampling mass (default 1.0)")
    decode.add_argument("--max-new-tokens", type=int, help="response length limit (protocol: 3072)")
    decode.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    decode.add_argument("--stop", default="harness",
                        help="what ends a response: harness (default: the EOS ids and </s>, <|im_end|>, "
                             "<|endoftext|>, where the Qwen2.5-Math harness stops), eos, chat, tokens or ids, "
                             "comma-separated (see docs/official-protocol.md)")
    hw = parser.add_argument_group("model and hardware")
    hw.add_argument("--batch-rows", type=int, default=256, help="responses generated together (default 256)")
    hw.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    hw.add_argument("--dtype", default="auto",
                    help="model dtype: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16")
    hw.add_argument("--tokenizer", help="tokenizer to use when a checkpoint folder has none")
    parser.add_argument("--out", help="output folder for results.json and records.jsonl (with --model)")


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RlvrError(f"--device {name}: this PyTorch sees no CUDA GPU (CPU-only build or no driver); "
                        "use --device cpu or auto")
    return name


def _benchmarks(args: argparse.Namespace) -> list[Any]:
    from oneshot_rlvr.eval.benchmarks import parse_benchmark_list, user_benchmark

    if args.benchmarks is None and not args.benchmark:
        args.benchmarks = "paper"
    chosen = parse_benchmark_list(args.benchmarks) if args.benchmarks else []
    for spec in args.benchmark:
        b = user_benchmark(spec, question_field=args.question_field, answer_field=args.answer_field,
                           id_field=args.id_field)
        chosen = [c for c in chosen if c.name != b.name] + [b]
    return chosen


def _grader(args: argparse.Namespace, benchmarks: list[Any]) -> str:
    from oneshot_rlvr.eval.harness_grading import check_grader, default_grader

    names, kinds = [b.name for b in benchmarks], [b.kind for b in benchmarks]
    grader = args.grader or default_grader(names, kinds)
    check_grader(grader, names, kinds)
    return str(grader)


def _check(args: argparse.Namespace) -> None:
    if sum(bool(x) for x in (args.model, args.run, args.endpoint)) != 1:
        raise RlvrError("give exactly one of --model PATH_OR_ID, --run RUN and --endpoint URL")
    if (args.model or args.endpoint) and not args.out:
        raise RlvrError(f"{'--model' if args.model else '--endpoint'} needs --out DIR for results.json and "
                        f"records.jsonl")
    if args.serve_engine and not args.run:
        raise RlvrError("--serve-engine needs --run RUN (to serve one model, use rlvr serve and --endpoint)")
    if args.run and args.out:
        raise RlvrError("--run writes into RUN/eval/<step>/; drop --out (it is for --model and --endpoint)")
    if args.every is not None and (not args.run or args.every < 1):
        raise RlvrError("--every K needs --run and K >= 1")
    for flag in ("limit", "n", "max_new_tokens", "batch_rows", "max_in_flight"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise RlvrError(f"--{flag.replace('_', '-')} must be >= 1 (got {value})")
    if args.temperature is not None and args.temperature < 0:
        raise RlvrError(f"--temperature must be >= 0 (got {args.temperature})")


def _endpoint_options(args: argparse.Namespace) -> Any:
    import os

    from oneshot_rlvr.rollout.endpoint import EndpointOptions

    key = None
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise RlvrError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    # With a tokenizer the prompts are rendered here (as in-process); without one, the server's chat template.
    return EndpointOptions(url=args.endpoint, model=args.served_model, api_key=key, chat=not args.tokenizer,
                           max_in_flight=args.max_in_flight)


def run(args: argparse.Namespace) -> int:
    _check(args)
    from oneshot_rlvr.data.templates import TEMPLATES
    from oneshot_rlvr.eval.curve import evaluate_run
    from oneshot_rlvr.eval.run import EvalOptions, evaluate_benchmarks, format_table, load_benchmarks
    from oneshot_rlvr.models.load import LoadOptions, load_model, load_tokenizer
    from oneshot_rlvr.rollout.engine import make_engine

    if args.template not in TEMPLATES:
        raise RlvrError(f"unknown prompt template {args.template!r} (choose from {', '.join(TEMPLATES)})")
    benchmarks = _benchmarks(args)
    grader = _grader(args, benchmarks)
    options = EvalOptions(
        data_dir=args.data_dir, limit=args.limit, template=args.template, n=args.n,
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed,
        grader=grader, stop=args.stop,
    )
    device = _device(args.device)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    load_options = LoadOptions(dtype=dtype)
    if args.run and args.serve_engine:
        from oneshot_rlvr.serve.run_eval import evaluate_run_served

        curve = evaluate_run_served(args.run, benchmarks, options, engine=args.serve_engine, every=args.every,
                                    device=args.device, max_in_flight=args.max_in_flight)
        print(format_table([(f"step {step}", res) for step, res in curve], grader))
        return 0
    if args.run:
        curve = evaluate_run(args.run, benchmarks, options, every=args.every, device=device,
                             load_options=load_options, batch_rows=args.batch_rows, tokenizer=args.tokenizer)
        print(format_table([(f"step {step}", res) for step, res in curve], grader))
        return 0
    if args.endpoint:
        from oneshot_rlvr.eval.served import evaluate_endpoint

        results = evaluate_endpoint(_endpoint_options(args), benchmarks, options, out_dir=args.out,
                                    tokenizer=args.tokenizer)
        print(format_table([(str(results["model"]), results)], grader))
        print(f"wrote {args.out}/results.json and {args.out}/records.jsonl")
        return 0
    problems = load_benchmarks(benchmarks, options)  # a missing file fails before the model loads
    tokenizer = load_tokenizer(args.tokenizer or args.model)
    model = load_model(args.model, load_options, device)
    engine = make_engine(model, tokenizer, batch_rows=args.batch_rows, stop=options.stop)
    results, _ = evaluate_benchmarks(engine, tokenizer, benchmarks, options, out_dir=args.out,
                                     model=args.model, problems=problems)
    print(format_table([(args.model, results)], grader))
    print(f"wrote {args.out}/results.json and {args.out}/records.jsonl")
    return 0
