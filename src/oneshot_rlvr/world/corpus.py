"""The pretraining corpus: chat-formatted solutions in three styles, imitating a base model with latent
but unreliable skill.

Each document is one problem of the `pretrain` split and one response, drawn in a STYLE that is
announced by the response's first words (the careless style's weight may differ by family,
`CorpusMix.careless_<family>`; nothing else about the style depends on the problem):

- careless ("This is simple."): one line of compact computations, at most two of them. On a
  three-step problem it therefore stops one step early and reports the intermediate value (a
  systematic error, unlike random slips that greedy decoding would mostly hide); it rarely boxes.
- careful ("Let's solve this step by step."): one sentence per step, rarely wrong (a small slip in
  the last step), boxes more often.
- careful with a self-check (same opener): one step is written, sometimes wrongly, then re-computed
  after "Let me check:"; a wrong value is corrected before going on.

Because the decision between the styles is taken in the first tokens and is shared by every family,
a reward that favours careful, boxed answers on ONE problem moves a decision that all problems use.
With careless as the most likely opener, greedy decoding of the base model shows the careless accuracy;
forcing the careful opener shows the latent skill.

Final answers are mostly not boxed ("The answer is 7." or a bare "7"); boxing is a separate late
decision ("The answer is \\boxed{7}." or "\\boxed{7}"). Prompts use the project's templates: the
evaluation prompt (`qwen25-math-cot`), the training prompt (`oneshot-train`) and a plain one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

from oneshot_rlvr.data.templates import messages_for
from oneshot_rlvr.errors import RlvrError
from oneshot_rlvr.world.problems import FAMILIES, Step, draw_problem, split_of

STYLES = ("careless", "careful", "check")
OPENERS = {"careless": "This is simple.", "careful": "Let's solve this step by step."}
"""The first words of a response in each style (the self-check style shares the careful opener)."""
CHECK_PHRASE = "Let me check:"
CARELESS_MAX_STEPS = 2
"""A careless solution writes at most this many computations."""


@dataclass(frozen=True)
class CorpusMix:
    """How often each behaviour appears in the pretraining corpus (style weights need not sum to 1)."""

    careless: float = 0.70
    """Weight of the careless style (the most likely opener, so greedy decoding picks it)."""
    careful: float = 0.21
    """Weight of the careful style without a self-check."""
    check: float = 0.09
    """Weight of the careful style with one self-check."""
    careless_finish: float = 0.15
    """Chance that a careless solution of a three-step problem writes the last step anyway."""
    careful_slip: float = 0.03
    """Chance that a careful (or checking) solution gets its last computation wrong."""
    check_error: float = 0.6
    """Chance that the checked step was first written wrongly (the check then corrects it)."""
    boxed_careless: float = 0.10
    """Chance that a careless solution boxes its final answer."""
    boxed_careful: float = 0.35
    """Chance that a careful solution boxes its final answer."""
    boxed_check: float = 0.45
    """Chance that a self-checking solution boxes its final answer."""
    bare_answer: float = 0.3
    """Among unboxed answers, the share given as a bare number instead of "The answer is N."."""
    template_eval: float = 0.45
    """Weight of the evaluation prompt (system instruction + problem, `qwen25-math-cot`)."""
    template_train: float = 0.45
    """Weight of the training prompt (problem + step-by-step suffix, `oneshot-train`)."""
    template_plain: float = 0.10
    """Weight of the bare problem as prompt (`plain`)."""
    careless_arithmetic: float | None = None
    """Weight of the careless style on arithmetic problems (None: `careless`); likewise for each family
    below. Unequal weights make the base model more careless on some families than on others."""
    careless_linear: float | None = None
    careless_word: float | None = None
    careless_remainder: float | None = None
    careless_function: float | None = None

    def careless_for(self, family: str) -> float:
        """The careless weight on problems of `family`."""
        value = getattr(self, f"careless_{family}", None)
        return self.careless if value is None else value

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            is_weight = f.name in _WEIGHTS
            if value < 0 or (not is_weight and value > 1):
                kind = "a weight >= 0" if is_weight else "a probability in [0, 1]"
                raise RlvrError(f"corpus mix: {f.name} must be {kind}, got {value}")
        for family in FAMILIES:
            if self.careless_for(family) + self.careful + self.check <= 0:
                raise RlvrError(f"corpus mix: the style weights careless + careful + check must sum to more than 0"
                                f" (on {family} problems)")
        if self.template_eval + self.template_train + self.template_plain <= 0:
            raise RlvrError("corpus mix: the template weights must sum to more than 0")


_WEIGHTS = frozenset({"careless", "careful", "check", "template_eval", "template_train", "template_plain",
                      *(f"careless_{family}" for family in FAMILIES)})


@dataclass(frozen=True)
class Document:
    """One pretraining document: a rendered prompt and the response that follows it."""

    prompt: str
    """Chat-rendered turns ending with `<|im_start|>assistant\\n`."""
    response: str
    """The assistant's text, ending with `<|im_end|>`."""
    question: str
    family: str
    style: str
    template: str
    boxed: bool
    correct: bool


def render_chat(messages: Sequence[dict[str, str]]) -> str:
    """The tiny model's chat template (`models.tiny.CHAT_TEMPLATE`) with the generation prompt, in Python."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


def _wrong(rng: random.Random, value: int) -> int:
    candidates = [value + d for d in (-10, -2, -1, 1, 2, 10) if value + d >= 0]
    return rng.choice(candidates)


def _final_line(rng: random.Random, answer: int, boxed: bool, bare_share: float) -> str:
    if boxed:
        return f"The answer is \\boxed{{{answer}}}." if rng.random() < 0.7 else f"\\boxed{{{answer}}}"
    return str(answer) if rng.random() < bare_share else f"The answer is {answer}."


def careless_text(rng: random.Random, steps: Sequence[Step], mix: CorpusMix) -> tuple[str, int]:
    """A careless response body and the value it reports."""
    n = len(steps) if rng.random() < mix.careless_finish else min(len(steps), CARELESS_MAX_STEPS)
    done = steps[:n]
    line = ", ".join(s.compact() for s in done)
    return f"{OPENERS['careless']} {line}.", done[-1].value


def careful_text(rng: random.Random, steps: Sequence[Step], mix: CorpusMix, check: bool) -> tuple[str, int]:
    """A careful response body (one sentence per step, optionally one self-check) and its reported value."""
    lines = [OPENERS["careful"]]
    checked = rng.randrange(len(steps)) if check else -1
    reported = steps[-1].value
    for i, step in enumerate(steps):
        if i == checked:
            wrong = rng.random() < mix.check_error
            written = _wrong(rng, step.value) if wrong else step.value
            verdict = f"not {written}. So it is {step.value}." if wrong else "that is right."
            lines.append(f"{step.careful(written)} {CHECK_PHRASE} {step.expr} = {step.value}, {verdict}")
        elif i == len(steps) - 1 and rng.random() < mix.careful_slip:
            reported = _wrong(rng, step.value)
            lines.append(step.careful(reported))
        else:
            lines.append(step.careful())
    return "\n".join(lines), reported


def make_document(question: str, family: str, steps: Sequence[Step], rng: random.Random, mix: CorpusMix) -> Document:
    """Draw a style, a prompt template and a final-answer format for one problem, and render them."""
    style = rng.choices(STYLES, weights=(mix.careless_for(family), mix.careful, mix.check))[0]
    template = rng.choices(("qwen25-math-cot", "oneshot-train", "plain"),
                           weights=(mix.template_eval, mix.template_train, mix.template_plain))[0]
    if style == "careless":
        body, value = careless_text(rng, steps, mix)
        boxed, sep = rng.random() < mix.boxed_careless, " "
    else:
        body, value = careful_text(rng, steps, mix, check=style == "check")
        boxed = rng.random() < (mix.boxed_check if style == "check" else mix.boxed_careful)
        sep = "\n"
    response = body + sep + _final_line(rng, value, boxed, mix.bare_answer) + "<|im_end|>"
    prompt = render_chat(messages_for(question, template))
    return Document(prompt, response, question, family, style, template, boxed, value == steps[-1].value)


def iter_documents(seed: int | str = 0, mix: CorpusMix | None = None, split: str = "pretrain") -> Iterator[Document]:
    """An endless, deterministic stream of documents on problems of `split`, families drawn uniformly.

    Problems may repeat (as they do in real corpora); they never come from another split.
    """
    mix = mix or CorpusMix()
    rng = random.Random(f"oneshot-rlvr-world/corpus/{split}/{seed}")
    while True:
        family = rng.choice(FAMILIES)
        question, steps = draw_problem(rng, family)
        if split_of(question) == split:
            yield make_document(question, family, steps, rng, mix)
