"""Grader speed and agreement: `verify_batch` and the harness rule against math-verify called directly.

    python benchmarks/grader_speed.py [--workers 2] [--numeric 4000] [--symbolic 600] [--batch 512]

Measures grades per second through `Grader.verify_batch` (worker pool, verdict cache off, distinct
answers so no cache helps) for numeric and for symbolic answers, then math-verify's own
`verify(parse(gold), parse(response))` on the same cases in this process. Also reports the agreement of
both with the hand-written case table in tests/reward/reward_case_table.py. The harness rule
(`reward.harness.grade_batch`, the paper's evaluation rule) is timed on the same cases, sharing the
same worker pool; plain numbers (no fractions) are decided without a worker. The machine's load
average is printed: the numbers are only comparable on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reward"))

from reward_case_table import CASES

from oneshot_rlvr.reward import Grader, GraderConfig, configure, harness

_FILLER = (
    "Let us work through the problem step by step. First we write down what is given, then we "
    "simplify the expression, check the edge cases and compute the final value carefully. "
) * 6


def _response(answer: str) -> str:
    return f"{_FILLER}\nTherefore the final answer is $\\boxed{{{answer}}}$."


def numeric_cases(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Distinct numeric golds in MATH styles; half the responses are right, in another form."""
    cases = []
    for i in range(n):
        a, b = rng.randint(1, 999), rng.randint(2, 97)
        kind = i % 5
        if kind == 0:
            gold, right, wrong = str(a * 1000 + i), str(a * 1000 + i), str(a * 1000 + i + 1)
        elif kind == 1:
            gold, right, wrong = f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{2 * a}}}{{{2 * b}}}", f"\\frac{{{a + 1}}}{{{b}}}"
        elif kind == 2:
            gold, right, wrong = f"{a}.{i % 100:02d}5", f"{a}.{i % 100:02d}50", f"{a}.{i % 100:02d}6"
        elif kind == 3:
            gold, right, wrong = f"{a}\\%", f"{a}", f"{a + 1}\\%"
        else:
            gold, right, wrong = f"{a},{i % 1000:03d}", f"{a}{i % 1000:03d}", f"{a}{i % 1000:03d}1"
        cases.append((gold, _response(right if i % 2 == 0 else wrong)))
    return cases


def symbolic_cases(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Distinct golds that need sympy (polynomials, radicals, pi, equations), right and wrong."""
    cases = []
    squarefree = [2, 3, 5, 6, 7, 10, 11, 13, 14, 15]
    for i in range(n):
        a, b, c = rng.randint(2, 40), rng.randint(1, 60), rng.randint(1, 90)
        r = squarefree[i % len(squarefree)]
        kind = i % 4
        if kind == 0:
            gold, right, wrong = f"{a}x^2+{b}x+{c}", f"{c}+{b}x+{a}x^2", f"{c}+{b}x+{a + 1}x^2"
        elif kind == 1:
            gold, right, wrong = f"{a}\\sqrt{{{r}}}", f"\\sqrt{{{a * a * r}}}", f"\\sqrt{{{a * a * r + 1}}}"
        elif kind == 2:
            gold = f"\\frac{{{b}\\pi}}{{{a}}}"
            right, wrong = f"\\frac{{{b}}}{{{a}}}\\pi", f"\\frac{{{b + 1}}}{{{a}}}\\pi"
        else:
            gold, right, wrong = f"y={a}x+{b}", f"y={b}+{a}x", f"y={b}+{a + 1}x"
        cases.append((gold, _response(right if (i // 4) % 2 == 0 else wrong)))
    return cases


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.0f} grades/s ({seconds:.2f} s for {n})"


def time_grader(grader: Grader, cases: Sequence[tuple[str, str]], batch: int) -> tuple[float, list[bool]]:
    verdicts: list[bool] = []
    start = time.perf_counter()
    for i in range(0, len(cases), batch):
        chunk = cases[i : i + batch]
        verdicts += grader.verify_batch([g for g, _ in chunk], [r for _, r in chunk], require_boxed=True)
    return time.perf_counter() - start, verdicts


def time_harness(cases: Sequence[tuple[str, str]], batch: int) -> tuple[float, list[bool]]:
    verdicts: list[bool] = []
    start = time.perf_counter()
    for i in range(0, len(cases), batch):
        chunk = cases[i : i + batch]
        verdicts += [v.correct for v in harness.grade_batch([g for g, _ in chunk], [r for _, r in chunk])]
    return time.perf_counter() - start, verdicts


def harness_rates(numeric: Sequence[tuple[str, str]], symbolic: Sequence[tuple[str, str]], batch: int) -> None:
    plain = [c for i, c in enumerate(numeric) if i % 5 != 1]  # every kind but \frac, as they were generated
    truth_plain = [i % 2 == 0 for i in range(len(numeric)) if i % 5 != 1]
    print(f"harness rule (reward.harness.grade_batch, batches of {batch}):")
    seconds, verdicts = time_harness(plain, batch)
    print(f"  numeric, plain numbers   {_rate(len(plain), seconds)}")
    # below 100%: the harness's relative 1e-4 accepts the generated near-miss decimals (512.015 for 512.016)
    print(f"    agreement with the generated truth {agreement(verdicts, truth_plain)}")
    seconds, _ = time_harness(numeric, batch)
    print(f"  numeric, with fractions  {_rate(len(numeric), seconds)}")
    seconds, _ = time_harness(symbolic, batch)
    print(f"  symbolic                 {_rate(len(symbolic), seconds)}")


def math_verify_direct(wrap_gold: bool) -> Callable[[str, str], bool]:
    """math-verify as commonly called: parse both strings, verify (its SIGALRM limits on)."""
    from math_verify import parse, verify

    def grade(gold: str, response: str) -> bool:
        gold_text = f"${gold}$" if wrap_gold else gold
        return bool(verify(parse(gold_text), parse(response)))

    return grade


def time_direct(grade: Callable[[str, str], bool], cases: Sequence[tuple[str, str]]) -> tuple[float, list[bool]]:
    start = time.perf_counter()
    verdicts = [grade(g, r) for g, r in cases]
    return time.perf_counter() - start, verdicts


def agreement(verdicts: Sequence[bool], expected: Sequence[bool]) -> str:
    agree = sum(v == e for v, e in zip(verdicts, expected, strict=True))
    return f"{agree}/{len(expected)} ({100 * agree / len(expected):.1f}%)"


def case_table(grader: Grader) -> None:
    expected = [c.expected for c in CASES]
    ours = [grader.verify(c.gold, c.prediction, require_boxed=c.require_boxed) for c in CASES]
    print(f"case table ({len(CASES)} cases, {sum(expected)} equivalent):")
    print(f"  verify_batch (ours):                       {agreement(ours, expected)}")
    for wrap, label in ((False, "gold as given"), (True, "gold wrapped in $...$")):
        grade = math_verify_direct(wrap)
        direct = [
            grade(c.gold, c.prediction if not c.require_boxed or "\\boxed" in c.prediction else "")
            for c in CASES
        ]
        print(f"  math-verify parse+verify, {label:22s} {agreement(direct, expected)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--numeric", type=int, default=4000)
    parser.add_argument("--symbolic", type=int, default=600)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify logs every timeout it hits
    rng = random.Random(0)
    numeric, symbolic = numeric_cases(args.numeric, rng), symbolic_cases(args.symbolic, rng)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {os.getloadavg()}")

    grader = configure(GraderConfig(workers=args.workers, cache_size=0))  # the harness rule uses it too
    start = time.perf_counter()
    grader.pool.start()
    grader.verify("x+1", "1+x")  # workers ready and warmed
    print(f"pool of {args.workers} workers ready in {time.perf_counter() - start:.2f} s")

    print(f"verify_batch (require_boxed=True, batches of {args.batch}):")
    seconds, ours_num = time_grader(grader, numeric, args.batch)
    print(f"  numeric   {_rate(len(numeric), seconds)}")
    seconds, ours_sym = time_grader(grader, symbolic, args.batch)
    print(f"  symbolic  {_rate(len(symbolic), seconds)}")
    one_gold = [(symbolic[0][0], r) for _, r in symbolic[: args.batch]]
    seconds, _ = time_grader(grader, one_gold, args.batch)
    print(f"  symbolic, one gold per batch (the 1-shot training case) {_rate(len(one_gold), seconds)}")

    harness_rates(numeric, symbolic, args.batch)

    print("math-verify called directly in this process (one core), gold wrapped in $...$:")
    grade = math_verify_direct(wrap_gold=True)
    n_num = min(len(numeric), 1000)
    seconds, mv_num = time_direct(grade, numeric[:n_num])
    print(f"  numeric   {_rate(n_num, seconds)}")
    seconds, mv_sym = time_direct(grade, symbolic)
    print(f"  symbolic  {_rate(len(symbolic), seconds)}")
    truth_num = [i % 2 == 0 for i in range(len(numeric))]
    truth_sym = [(i // 4) % 2 == 0 for i in range(len(symbolic))]
    print("agreement with the generated truth:")
    print(f"  ours: numeric {agreement(ours_num, truth_num)}, symbolic {agreement(ours_sym, truth_sym)}")
    print(f"  math-verify: numeric {agreement(mv_num, truth_num[:n_num])}, symbolic {agreement(mv_sym, truth_sym)}")
    case_table(grader)
    grader.close()
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
