"""Seeded synthetic math problems in five families, each with a step-by-step solution.

Every problem is a short chain of two or three integer computations (`Step`s). The chain length matters
to the world's design: the careless solving style of the pretraining corpus writes at most two
computations, so it is right on two-step problems and systematically wrong on three-step ones.

Splits are fixed by a stable hash of the question text, so a question belongs to one split whatever
the seed: `test`, `val` and `train` (the RL pool) take 5% of the question space each, and `pretrain`
(the corpus the tiny model learns from) the remaining 85%. No two splits can share a question.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from oneshot_rlvr.errors import RlvrError

FAMILIES = ("arithmetic", "linear", "word", "remainder", "function")
SPLITS = ("test", "val", "train", "pretrain")
# Upper bounds (exclusive) of each split's share of the 100 hash buckets.
_SPLIT_BUCKETS = (("test", 5), ("val", 10), ("train", 15), ("pretrain", 100))
THREE_STEP_SHARE = 0.6
"""Fraction of problems whose solution has three computations (careless solving fails on those)."""
# Numbers stay small (products within the 9 x 9 table or a little beyond, sums below about 120):
# a model of a few million parameters can then learn the arithmetic from a CPU-sized corpus, and
# what separates its careful answers from its careless ones is the solving style, not luck.


@dataclass(frozen=True)
class Step:
    """One computation of a solution."""

    expr: str
    """The computation written compactly, e.g. `3 * 6`; `expr = value` is what a careless solver writes."""
    value: int
    say: str
    """The careful sentence, with `{v}` where the result goes, e.g. `Multiply: 3 * 6 = {v}.`"""

    def careful(self, value: int | None = None) -> str:
        return self.say.format(v=self.value if value is None else value)

    def compact(self) -> str:
        return f"{self.expr} = {self.value}"


@dataclass(frozen=True)
class WorldProblem:
    """A generated problem; `answer` is the value of the last step."""

    id: str
    family: str
    question: str
    answer: str
    steps: tuple[Step, ...]
    split: str

    def row(self) -> dict[str, str]:
        """The JSONL row written by `rlvr world export`."""
        return {"id": self.id, "question": self.question, "answer": self.answer,
                "family": self.family, "split": self.split}


def split_of(question: str) -> str:
    """The split a question belongs to: a stable hash of its text (independent of seeds and order)."""
    bucket = int(hashlib.sha256(question.encode("utf-8")).hexdigest()[:8], 16) % 100
    return next(name for name, upper in _SPLIT_BUCKETS if bucket < upper)


# --- families: each draws (question, steps) from an rng; `three` asks for a three-step chain ---------

_NAMES = ("Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Ivy", "Max", "Eva", "Ben", "Lily", "Omar")
_ITEMS = ("apples", "marbles", "stickers", "books", "pencils", "cards", "shells", "coins")


def _arithmetic(rng: random.Random, three: bool) -> tuple[str, list[Step]]:
    if three and rng.random() < 0.5:
        a = rng.randint(1, 9)
        b, c = rng.randint(1, min(9, 15 - a)), rng.randint(2, 6)
        s, p = a + b, (a + b) * c
        d = rng.randint(1, min(30, p - 1))
        text = f"({a} + {b}) * {c} - {d}"
        steps = [Step(f"{a} + {b}", s, f"First the parentheses: {a} + {b} = {{v}}."),
                 Step(f"{s} * {c}", p, f"Then multiply: {s} * {c} = {{v}}."),
                 Step(f"{p} - {d}", p - d, f"Finally subtract: {p} - {d} = {{v}}.")]
    elif three:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
        p = a * b
        d = rng.randint(1, min(30, p + c - 1))
        text = f"{a} * {b} + {c} - {d}"
        steps = [Step(f"{a} * {b}", p, f"First multiply: {a} * {b} = {{v}}."),
                 Step(f"{p} + {c}", p + c, f"Then add: {p} + {c} = {{v}}."),
                 Step(f"{p + c} - {d}", p + c - d, f"Finally subtract: {p + c} - {d} = {{v}}.")]
    else:
        a, b, c = rng.randint(1, 30), rng.randint(2, 9), rng.randint(2, 9)
        p = b * c
        text = f"{a} + {b} * {c}"
        steps = [Step(f"{b} * {c}", p, f"Multiplication comes first: {b} * {c} = {{v}}."),
                 Step(f"{a} + {p}", a + p, f"Then add: {a} + {p} = {{v}}.")]
    ask = rng.choice(("Compute {}.", "What is {}?", "Evaluate {}.", "Calculate {}."))
    return ask.format(text), steps


def _linear(rng: random.Random, three: bool) -> tuple[str, list[Step]]:
    if three:
        a, x, b, c = rng.randint(2, 5), rng.randint(1, 9), rng.randint(1, 6), rng.randint(1, 20)
        e = a * (x + b)
        eq = f"{a}(x + {b}) - {c} = {e - c}" if c < e else f"{a}(x + {b}) + {c} = {e + c}"
        first = (Step(f"{e - c} + {c}", e, f"Add {c} to both sides: {a}(x + {b}) = {e - c} + {c} = {{v}}.")
                 if c < e else
                 Step(f"{e + c} - {c}", e, f"Subtract {c} from both sides: {a}(x + {b}) = {e + c} - {c} = {{v}}."))
        steps = [first,
                 Step(f"{e} / {a}", x + b, f"Divide both sides by {a}: x + {b} = {e} / {a} = {{v}}."),
                 Step(f"{x + b} - {b}", x, f"Subtract {b}: x = {x + b} - {b} = {{v}}.")]
    else:
        a, x, b = rng.randint(2, 9), rng.randint(1, 10), rng.randint(1, 20)
        if rng.random() < 0.5:
            eq = f"{a}x + {b} = {a * x + b}"
            first = Step(f"{a * x + b} - {b}", a * x,
                         f"Subtract {b} from both sides: {a}x = {a * x + b} - {b} = {{v}}.")
        else:
            b = rng.randint(1, a * x) if a * x > 1 else 1
            eq = f"{a}x - {b} = {a * x - b}"
            first = Step(f"{a * x - b} + {b}", a * x, f"Add {b} to both sides: {a}x = {a * x - b} + {b} = {{v}}.")
        steps = [first, Step(f"{a * x} / {a}", x, f"Divide both sides by {a}: x = {a * x} / {a} = {{v}}.")]
    ask = rng.choice(("Solve for x: {}.", "Find x if {}.", "What value of x satisfies {}?"))
    return ask.format(eq), steps


def _word(rng: random.Random, three: bool) -> tuple[str, list[Step]]:
    name, items = rng.choice(_NAMES), rng.choice(_ITEMS)
    if three and rng.random() < 0.5:
        a, b, c = rng.randint(2, 20), rng.randint(2, 9), rng.randint(2, 9)
        p = b * c
        d = rng.randint(2, min(30, a + p - 1))
        q = (f"{name} has {a} {items}. {name} buys {b} packs with {c} {items} in each pack and then gives "
             f"away {d} {items}. How many {items} does {name} have now?")
        steps = [Step(f"{b} * {c}", p, f"The packs hold {b} * {c} = {{v}} {items}."),
                 Step(f"{a} + {p}", a + p, f"After buying, {name} has {a} + {p} = {{v}} {items}."),
                 Step(f"{a + p} - {d}", a + p - d, f"After giving some away, {a + p} - {d} = {{v}} {items} are left.")]
    elif three:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        p = a * b
        c = rng.randint(2, min(20, p - 1))
        d = rng.randint(2, 20)
        q = (f"A garden has {a} rows with {b} plants in each row. {c} plants die and then {d} new plants "
             f"are planted. How many plants are in the garden now?")
        steps = [Step(f"{a} * {b}", p, f"At first there are {a} * {b} = {{v}} plants."),
                 Step(f"{p} - {c}", p - c, f"After {c} die, there are {p} - {c} = {{v}} plants."),
                 Step(f"{p - c} + {d}", p - c + d, f"With the new ones, there are {p - c} + {d} = {{v}} plants.")]
    elif rng.random() < 0.5:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)
        q = (f"{name} buys {a} boxes of {items} for {b} dollars each and pays with a {a * b + c} dollar "
             f"note. How much change does {name} get?")
        steps = [Step(f"{a} * {b}", a * b, f"The boxes cost {a} * {b} = {{v}} dollars."),
                 Step(f"{a * b + c} - {a * b}", c, f"The change is {a * b + c} - {a * b} = {{v}} dollars.")]
    else:
        a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 30)
        p = a * b
        q = f"{name} reads {b} pages a day for {a} days and then {c} more pages. How many pages is that in total?"
        steps = [Step(f"{b} * {a}", p, f"In {a} days {name} reads {b} * {a} = {{v}} pages."),
                 Step(f"{p} + {c}", p + c, f"Adding the rest gives {p} + {c} = {{v}} pages.")]
    return q, steps


def _remainder(rng: random.Random, three: bool) -> tuple[str, list[Step]]:
    m = rng.randint(3, 9)
    if three:
        if rng.random() < 0.5:
            a, c, op = rng.randint(3, 12), rng.randint(2, 9), "*"
            n = a * c
        else:
            a, c, op = rng.randint(10, 60), rng.randint(10, 40), "+"
            n = a + c
        q, r = divmod(n, m)
        text = rng.choice((f"What is the remainder when {a} {op} {c} is divided by {m}?",
                           f"Find the remainder of {a} {op} {c} divided by {m}."))
        steps = [Step(f"{a} {op} {c}", n, f"First, {a} {op} {c} = {{v}}."),
                 Step(f"{n} ÷ {m}", q, f"Next, {n} ÷ {m} = {{v}} with something left over."),
                 Step(f"{n} - {m} * {q}", r, f"The remainder is {n} - {m} * {q} = {n} - {m * q} = {{v}}.")]
    else:
        n = rng.randint(10, 99)
        q, r = divmod(n, m)
        text = rng.choice((f"What is the remainder when {n} is divided by {m}?",
                           f"Find the remainder of {n} divided by {m}."))
        steps = [Step(f"{n} ÷ {m}", q, f"{n} ÷ {m} = {{v}} with something left over."),
                 Step(f"{n} - {m} * {q}", r, f"The remainder is {n} - {m} * {q} = {n} - {m * q} = {{v}}.")]
    return text, steps


def _function(rng: random.Random, three: bool) -> tuple[str, list[Step]]:
    a, b = rng.randint(2, 4 if three else 3), rng.randint(1, 9)
    f = f"f(x) = {a}x + {b}"
    ask = rng.choice(("What is {}?", "Find {}.", "Compute {}."))

    def at(n: int) -> Step:
        return Step(f"{a} * {n} + {b}", a * n + b, f"f({n}) = {a} * {n} + {b} = {{v}}.")

    if three:
        n, m = rng.sample(range(1, 10), 2)
        fn, fm = at(n), at(m)
        steps = [fn, fm, Step(f"{fn.value} + {fm.value}", fn.value + fm.value,
                              f"So f({n}) + f({m}) = {fn.value} + {fm.value} = {{v}}.")]
        return f"Let {f}. " + ask.format(f"f({n}) + f({m})"), steps
    n = rng.randint(1, 6)
    first = at(n)
    if rng.random() < 0.5:
        return f"Let {f}. " + ask.format(f"f(f({n}))"), [first, at(first.value)]
    c, d = rng.randint(2, 3), rng.randint(1, 9)
    second = Step(f"{c} * {first.value} + {d}", c * first.value + d,
                  f"g({first.value}) = {c} * {first.value} + {d} = {{v}}.")
    return f"Let {f} and g(x) = {c}x + {d}. " + ask.format(f"g(f({n}))"), [first, second]


_MAKERS: dict[str, Callable[[random.Random, bool], tuple[str, list[Step]]]] = {
    "arithmetic": _arithmetic, "linear": _linear, "word": _word, "remainder": _remainder,
    "function": _function,
}


def draw_problem(rng: random.Random, family: str) -> tuple[str, tuple[Step, ...]]:
    """One (question, steps) of `family`, whatever its split."""
    if family not in _MAKERS:
        raise RlvrError(f"unknown problem family {family!r} (choose from {', '.join(FAMILIES)})")
    question, steps = _MAKERS[family](rng, rng.random() < THREE_STEP_SHARE)
    return question, tuple(steps)


def iter_problems(split: str, seed: int = 0, families: tuple[str, ...] = FAMILIES) -> Iterator[WorldProblem]:
    """An endless, deterministic stream of distinct problems of one split, families in turn."""
    if split not in SPLITS:
        raise RlvrError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    rng = random.Random(f"oneshot-rlvr-world/{split}/{seed}")
    seen: set[str] = set()
    index = misses = 0
    while True:
        family = families[index % len(families)]
        question, steps = draw_problem(rng, family)
        if question in seen or split_of(question) != split:
            misses += 1
            if misses > 100_000:  # the family's question space is exhausted for this split
                raise RlvrError(f"no new {family} problems left in split {split!r} after {index} problems")
            continue
        misses = 0
        seen.add(question)
        yield WorldProblem(f"{split}-{index:05d}", family, question, str(steps[-1].value), steps, split)
        index += 1


def generate_problems(split: str, n: int, seed: int = 0) -> list[WorldProblem]:
    """`n` distinct problems of `split`, families balanced (round robin); deterministic for a seed."""
    if n < 0:
        raise RlvrError(f"number of problems must be >= 0, got {n}")
    stream = iter_problems(split, seed)
    return [next(stream) for _ in range(n)]
