"""`rlvr grade`: check one response against a gold answer, or a JSONL file of cases."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from oneshot_rlvr.errors import RlvrError

HELP = "grade a response against a gold answer (or a JSONL file of cases): our rule or the harness's"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gold", help="the gold answer, e.g. '\\frac{4}{3}'")
    parser.add_argument("--response", help="the response (or a bare answer) to grade")
    parser.add_argument(
        "--file", type=Path, help="JSONL with fields gold, prediction and optional expected (true/false)"
    )
    parser.add_argument(
        "--boxed", action="store_true", help="only the last \\boxed{} counts (the training reward rule)"
    )
    parser.add_argument(
        "--rule", choices=("ours", "harness"), default="ours",
        help="ours (default) or harness: the paper's evaluation harness (Qwen2.5-Math), see docs/grading.md",
    )
    parser.add_argument(
        "--benchmark", default="math500",
        help="with --rule harness: whose gold parsing and units rule to use (default math500)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None,
        help="seconds per sympy comparison (default: GraderConfig.timeout, 2.0, for ours; 3 for the harness)",
    )


def _show(text: str | None) -> str:
    return "(none)" if text is None else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _grade_one_harness(args: argparse.Namespace) -> int:
    from oneshot_rlvr.reward import harness

    [result] = harness.grade_batch([args.gold], [args.response], args.benchmark, timeout=args.timeout)
    print(f"verdict: {'equivalent' if result.correct else 'not equivalent'} (harness rule, {args.benchmark})")
    print(f"gold answer: {_show(result.gold)}")
    print(f"graded answer: {_show(result.answer)}")
    if result.timed_out:
        print(f"timed out: the comparison ran past {args.timeout:g}s (counts as wrong)")
    return 0


def _grade_one(args: argparse.Namespace) -> int:
    if args.rule == "harness":
        return _grade_one_harness(args)
    from oneshot_rlvr.reward import explain_batch, extract_answer

    grade = explain_batch([args.gold], [args.response], require_boxed=args.boxed, timeout=args.timeout)[0]
    print(f"verdict: {'equivalent' if grade.ok else 'not equivalent'} ({grade.reason.value})")
    print(f"gold answer: {_show(grade.gold)}")
    print(f"graded answer: {_show(grade.answer)}")
    print(f"lenient extraction: {_show(extract_answer(args.response, mode='lenient'))}")
    print(f"boxed extraction: {_show(extract_answer(args.response, mode='boxed'))}")
    return 0


def _read_cases(path: Path) -> list[tuple[int, str, str, bool | None]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise RlvrError(f"{path}: cannot read it ({err})") from None
    cases = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except json.JSONDecodeError as err:
            raise RlvrError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise RlvrError(f"{path}:{number}: expected a JSON object with gold and prediction")
        for field in ("gold", "prediction"):
            if not isinstance(row.get(field), str):
                raise RlvrError(f"{path}:{number}: field {field!r} must be a string")
        expected = row.get("expected")
        if expected is not None and not isinstance(expected, bool):
            raise RlvrError(f"{path}:{number}: field 'expected' must be true or false")
        cases.append((number, row["gold"], row["prediction"], expected))
    if not cases:
        raise RlvrError(f"{path}: no cases in it")
    return cases


def _verdicts(args: argparse.Namespace, golds: list[str], responses: list[str]) -> list[bool]:
    if args.rule == "harness":
        from oneshot_rlvr.reward import harness

        return [r.correct for r in harness.grade_batch(golds, responses, args.benchmark, timeout=args.timeout)]
    from oneshot_rlvr.reward import verify_batch

    return verify_batch(golds, responses, require_boxed=args.boxed, timeout=args.timeout)


def _grade_file(args: argparse.Namespace) -> int:
    cases = _read_cases(args.file)
    verdicts = _verdicts(args, [c[1] for c in cases], [c[2] for c in cases])
    agree = total = 0
    for (number, _, _, expected), ok in zip(cases, verdicts, strict=True):
        note = ""
        if expected is not None:
            total += 1
            agree += ok == expected
            note = "" if ok == expected else f"  (expected {str(expected).lower()})"
        print(f"line {number}: {str(ok).lower()}{note}")
    if total:
        print(f"agreement: {agree}/{total} ({100.0 * agree / total:.1f}%)")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.timeout is None and args.rule == "harness":
        from oneshot_rlvr.reward.harness import TIMEOUT

        args.timeout = TIMEOUT
    if args.timeout is not None and args.timeout <= 0:
        raise RlvrError(f"--timeout must be positive, got {args.timeout}")
    if args.rule == "harness":
        from oneshot_rlvr.reward.harness import BENCHMARKS

        if args.boxed:
            raise RlvrError("--boxed is a rule of ours; the harness reads answers its own way (drop one)")
        if args.benchmark not in BENCHMARKS:
            raise RlvrError(f"--benchmark {args.benchmark!r}: the harness rule knows {', '.join(BENCHMARKS)}")
    if args.file is not None:
        if args.gold is not None or args.response is not None:
            raise RlvrError("use either --file or --gold with --response, not both")
        return _grade_file(args)
    if args.gold is None or args.response is None:
        raise RlvrError("give --gold and --response, or --file cases.jsonl")
    return _grade_one(args)
