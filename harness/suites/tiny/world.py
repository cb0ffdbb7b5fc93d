"""The tiny world: instruction families, gold quality, response generators and split building.

The world is a laboratory for the phenomenon RLP studies (a reward model trained on biased labels loses accuracy
where the policy samples), so every part of it is small enough for a ~1 M-parameter model to learn on a CPU in
seconds, and every judgement in it is a program.

Instruction families (six; each instruction names its family by its template, so the judge parses it back):

- ``capital``:    "What is the capital of Vorfelland?"      -> "The capital of Vorfelland is Ruskavburg."
- ``colour``:     "What colour is the belsilble?"            -> "The belsilble is purple."
- ``arithmetic``: "What is 3 plus 4?" / "Compute 7 * 2."     -> "3 + 4 = 7." (single digits; ``-`` never negative)
- ``reverse``:    "Reverse the words: key sun tree."         -> "tree sun key." (2-4 distinct words)
- ``repeat``:     "Repeat the word moon 3 times."            -> "moon moon moon." (2-5 times)
- ``describe``:   "Write a short sentence about a small fox." -> "The small fox sleeps under the tree."
  This one is open-ended: any sentence of 3-14 words that names "small fox" and no other animal is right, so
  several samples of a good policy disagree, while they agree on the five closed families.

Facts: a fixed table (independent of every seed) of 60 invented countries with capitals and 60 invented objects
with colours. The last 12 of each are *rare*: the pretraining corpus states them less often and never asks them in
question/answer form, and only the ``bar`` set asks about them.

Mistakes: a wrong answer to a fact question names another subject ("The capital of Tordraia is ...", checkable
against the question) or gives the asked subject a wrong value (checkable only by knowing the fact); arithmetic gets
the result wrong, ``reverse`` loses or misorders words, ``repeat`` miscounts, ``describe`` names another animal.

Form: a response is its answer (the "core") with optional filler phrases around it: a preamble ("Sure!", "Of
course!", ...) and a closing ("I hope this helps!", ...). Filler is the superficial feature: it makes an output
longer in words without making it better. A hesitation ("...") before the core marks, in the world's own text,
mostly wrong answers (:data:`HESITATION_PROB`); it changes neither the gold quality nor the length in words.

Why these cues: a ~1 M-parameter reward model trained for a few hundred steps on 25%-noisy labels does not learn to
check an answer against its question (measured: chance on held-out pairs, even for "names another animal"), but it
does learn one-token cues at once. Filler (preferred by the biased annotator) and hesitation (dispreferred because
it goes with wrong answers) are such cues, so the reward model's accuracy on held-out pairs is well above chance
while resting largely on cues that PPO can change without changing correctness: the situation RLP studies.

Gold quality (:func:`gold_quality`): correctness first, then form. For a closed family the core must equal the
one right answer after normalisation (case, punctuation, spacing); ``describe`` checks its rule. The form score is
minus the number of filler phrases. Qualities compare lexicographically, so a right padded answer beats a wrong
concise one, a right concise answer beats a right padded one, and equal qualities are a tie.

Splits (:func:`build_splits`), spread evenly over the families, drawn from ``random.Random(world_seed)``:

- ``farm`` and ``val`` take disjoint instructions from each family's pool; the rest of the pool is shared out
  (:func:`fair_shares`) into three disjoint parts for ``sft``, ``preference`` and ``unlabeled``, which cycle
  through their part when it is smaller than the split (the capital, colour and repeat pools hold under 200
  instructions each). The pretraining corpus draws from the same templates without knowing the splits, so the
  base model has seen some evaluation instructions in raw question/answer form, with answers of mixed quality.
- ``bar`` is harder and disjoint from all of them by construction: rare facts, 5-6 words to reverse, 6-8 repeats,
  three-operand arithmetic, sentences about two animals at once.
- ``sft``: mostly right, mostly concise demonstrations. ``preference``: two responses that mix right and wrong,
  concise and padded, labelled by the training annotator; in half of the pairs (``pair_same_filler_prob``) the
  second copies the first one's filler, so the pair differs in its answers only. ``val``: such pairs with
  different gold quality, labelled by the gold judge. ``farm``/``bar`` carry a reference output from
  :func:`reference_output`, a fixed generator (seeded by the instruction alone) that is right about 75% of the time
  and mostly concise.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple, Protocol, Sequence

from harness.suites.annotators import stable_seed
from harness.suites.base import Preference

if TYPE_CHECKING:
    from harness.suites.base import Annotator
    from harness.suites.tiny.config import BaseModelConfig, TinyWorldConfig

REFERENCE_GENERATOR = "tiny-reference"
KNOWLEDGE_JSONL = Path(__file__).parent / "knowledge" / "tiny_knowledge.jsonl"

PREAMBLES = ("Sure!", "Of course!", "Great question!", "Here is the answer:")
CLOSINGS = ("I hope this helps!", "Let me know if you need more help.")

COLOURS = ("red", "blue", "green", "yellow", "white", "black", "orange", "purple")
WORDS = (
    "apple", "book", "cloud", "door", "egg", "fish", "glass", "hat", "ink", "jar", "key", "lamp",
    "moon", "nut", "pen", "rain", "sun", "tree", "wall", "box", "cup", "star", "leaf", "road",
)
ANIMALS = (
    "fox", "cat", "dog", "bird", "horse", "mouse", "bear", "frog",
    "goat", "duck", "wolf", "sheep", "rabbit", "owl", "pig", "cow",
)
ADJECTIVES = ("small", "big", "happy", "sleepy", "brown", "young")
ACTIONS = (
    "runs across the field", "sleeps under the tree", "sits by the river", "eats an apple",
    "looks at the sky", "jumps over the fence", "hides in the grass", "walks up the hill",
    "plays in the snow", "drinks from the lake", "waits by the door", "sings in the morning",
)

# How often the world's writers hesitate ("...The capital of ...") before an answer, by whether the answer is right:
# mostly when they are wrong. The gold judge ignores punctuation and the annotator counts words, so a hesitation is
# never quality, only a cue: one token a tiny reward model picks up in a few steps. It comes first, so a model
# trained on the world's text learns that hesitant answers tend to be wrong, and a policy's own hesitations mark its
# likely mistakes until PPO teaches it to stop hesitating.
HESITATION_PROB = {True: 0.05, False: 0.7}
HESITATION = "..."

N_FACTS_PER_RELATION = 60
N_RARE_FACTS_PER_RELATION = 12
_FACT_TABLE_SEED = 20240319  # fixed: the facts (and the committed knowledge task) never change with a run's seed


# --------------------------------------------------------------------------------------------------------------
# Text normalisation and filler


_NOT_ANSWER_CHARS = re.compile(r"[^a-z0-9+\-*=\s]")
_SIGNS = re.compile(r"([+\-*=])")


def normalise(text: str) -> str:
    """Lower-cases, drops punctuation, spaces out the arithmetic signs ("3+4=7" -> "3 + 4 = 7") and collapses
    whitespace."""
    return " ".join(_SIGNS.sub(r" \1 ", _NOT_ANSWER_CHARS.sub(" ", text.lower())).split())


_FILLER = re.compile(r"\b(?:" + "|".join(re.escape(normalise(p)) for p in PREAMBLES + CLOSINGS) + r")\b")


def strip_filler(text: str) -> tuple[str, int]:
    """Returns the normalised answer with every filler phrase removed, and how many filler phrases there were."""
    core, count = _FILLER.subn(" ", normalise(text))
    return " ".join(core.split()), count


def canonical_answer(output: str) -> str:
    """The answer an output gives, so that two outputs that say the same thing compare equal."""
    return strip_filler(output)[0]


# --------------------------------------------------------------------------------------------------------------
# Facts


class Fact(NamedTuple):
    relation: str  # "capital" or "colour"
    subject: str
    value: str
    rare: bool


def _invent_names(rng: random.Random, count: int, suffixes: Sequence[str], taken: set[str]) -> list[str]:
    syllables = ("bar", "cor", "dun", "fel", "gar", "hol", "kav", "lim", "mor", "nel", "pav", "rus", "sil", "tam",
                 "vor", "wen", "zel", "tor", "bel", "mar", "quo", "lun", "dra", "fen")
    names: list[str] = []
    while len(names) < count:
        name = rng.choice(syllables) + rng.choice(syllables) + rng.choice(suffixes)
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _fact_table() -> tuple[Fact, ...]:
    rng = random.Random(_FACT_TABLE_SEED)
    taken: set[str] = set()
    countries = [n.capitalize() for n in _invent_names(rng, N_FACTS_PER_RELATION, ("ia", "ova", "land"), taken)]
    cities = [n.capitalize() for n in _invent_names(rng, N_FACTS_PER_RELATION, ("ton", "burg", "mouth"), taken)]
    objects = _invent_names(rng, N_FACTS_PER_RELATION, ("ket", "ble", "o"), taken)
    first_rare = N_FACTS_PER_RELATION - N_RARE_FACTS_PER_RELATION
    capitals = [Fact("capital", c, city, i >= first_rare) for i, (c, city) in enumerate(zip(countries, cities))]
    colours = [Fact("colour", o, rng.choice(COLOURS), i >= first_rare) for i, o in enumerate(objects)]
    return tuple(capitals + colours)


FACTS = _fact_table()


# --------------------------------------------------------------------------------------------------------------
# Instruction families


@dataclass(frozen=True)
class Task:
    """One instruction and the family-specific arguments its answers depend on."""

    family: str
    instruction: str
    args: tuple


class Family(Protocol):
    """An instruction family: its instructions, right and wrong answers, and its correctness rule."""

    name: str

    def tasks(self, hard: bool, rng: random.Random) -> list[Task]:
        """Distinct tasks of the family (the ``bar`` difficulty when ``hard``), in random order."""
        ...

    def parse(self, instruction: str) -> Task | None:
        """The task an instruction states, or None if the instruction is not of this family."""
        ...

    def right(self, args: tuple, rng: random.Random) -> str:
        """A right concise answer (always the same one for a closed family)."""
        ...

    def wrong(self, args: tuple, rng: random.Random) -> str:
        """A plausible wrong concise answer."""
        ...

    def is_correct(self, args: tuple, core: str) -> bool:
        """Whether a normalised, filler-free answer is right."""
        ...


def _template_regex(template: str, **groups: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name, group in groups.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{group})")
    return re.compile(pattern + r"\Z")


def _match(patterns: Sequence[re.Pattern[str]], instruction: str) -> re.Match[str] | None:
    return next((m for p in patterns if (m := p.match(instruction))), None)


class _ClosedFamily:
    """Correctness for the families with exactly one right answer: the normalised core equals it."""

    def is_correct(self, args: tuple, core: str) -> bool:
        return core == normalise(self.right(args, random.Random(0)))  # type: ignore[attr-defined]


class FactFamily(_ClosedFamily):
    """Look up one relation of the fact table ("capital" or "colour")."""

    def __init__(self, relation: str, templates: Sequence[str], answer: str, subject_group: str) -> None:
        self.name = relation
        self.templates = tuple(templates)
        self.answer = answer
        self.facts = {f.subject: f for f in FACTS if f.relation == relation}
        self.values = sorted({f.value for f in self.facts.values()})
        self._patterns = [_template_regex(t, subject=subject_group) for t in self.templates]

    def tasks(self, hard: bool, rng: random.Random) -> list[Task]:
        # Ordinary instructions ask common facts; the hard (bar) ones ask the rare facts.
        tasks = [
            Task(self.name, t.format(subject=f.subject), (f.subject,))
            for f in self.facts.values() if f.rare == hard for t in self.templates
        ]
        rng.shuffle(tasks)
        return tasks

    def parse(self, instruction: str) -> Task | None:
        m = _match(self._patterns, instruction)
        if m is None or m["subject"] not in self.facts:
            return None
        return Task(self.name, instruction, (m["subject"],))

    def right(self, args: tuple, rng: random.Random) -> str:
        return self.answer.format(subject=args[0], value=self.facts[args[0]].value)

    def wrong(self, args: tuple, rng: random.Random) -> str:
        # Half the mistakes answer about another subject (visible by comparing the answer with the question), half
        # give this subject a wrong value (visible only to whoever knows the fact).
        if rng.random() < 0.5:
            other = self.facts[rng.choice([s for s in self.facts if s != args[0]])]
            return self.answer.format(subject=other.subject, value=other.value)
        true = self.facts[args[0]].value
        return self.answer.format(subject=args[0], value=rng.choice([v for v in self.values if v != true]))


class ArithmeticFamily(_ClosedFamily):
    """Single-digit arithmetic; the bar set chains three operands with + and -."""

    name = "arithmetic"
    _WORDS = {"+": "plus", "-": "minus", "*": "times"}
    _FROM_WORDS = {w: s for s, w in _WORDS.items()}

    def __init__(self) -> None:
        self._patterns = [
            re.compile(r"What is (?P<expr>[a-z0-9 ]+)\?\Z"),  # "What is 3 plus 4?"
            re.compile(r"Compute (?P<expr>[0-9+\-* ]+)\.\Z"),  # "Compute 3 + 4."
        ]

    @staticmethod
    def evaluate(args: tuple) -> int:
        value = args[0]
        for op, operand in zip(args[1::2], args[2::2]):
            value = value + operand if op == "+" else value - operand if op == "-" else value * operand
        return value

    def _instructions(self, args: tuple) -> tuple[str, str]:
        words = " ".join(self._WORDS.get(str(a), str(a)) for a in args)
        return f"What is {words}?", f"Compute {' '.join(map(str, args))}."

    def tasks(self, hard: bool, rng: random.Random) -> list[Task]:
        digits = range(10)
        if hard:
            exprs = [(a, o1, b, o2, c) for a, b, c in itertools.product(digits, repeat=3)
                     for o1, o2 in itertools.product("+-", repeat=2)]
        else:
            exprs = [(a, op, b) for a, b in itertools.product(digits, repeat=2) for op in "+-*"]
        exprs = [e for e in exprs if self.evaluate(e) >= 0 and (len(e) == 3 or self.evaluate(e[:3]) >= 0)]
        tasks = [Task(self.name, text, e) for e in exprs for text in self._instructions(e)]
        rng.shuffle(tasks)
        return tasks

    def parse(self, instruction: str) -> Task | None:
        m = _match(self._patterns, instruction)
        if m is None:
            return None
        tokens = [self._FROM_WORDS.get(t, t) for t in m["expr"].split()]
        operands, ops = tokens[0::2], tokens[1::2]
        if (len(tokens) not in (3, 5) or not all(t.isdigit() and len(t) == 1 for t in operands)
                or not all(o in self._WORDS for o in ops)):
            return None
        args = tuple(int(t) if t.isdigit() else t for t in tokens)
        return Task(self.name, instruction, args)

    def right(self, args: tuple, rng: random.Random) -> str:
        return f"{' '.join(map(str, args))} = {self.evaluate(args)}."

    def wrong(self, args: tuple, rng: random.Random) -> str:
        return f"{' '.join(map(str, args))} = {self.evaluate(args) + rng.choice((-2, -1, 1, 2))}."


class ReverseFamily(_ClosedFamily):
    """Reverse a list of distinct short words: 2-4 words, 5-6 in the bar set."""

    name = "reverse"
    templates = ("Reverse the words: {words}.", "Write these words in reverse order: {words}.")
    pool_size = 3000  # the combinatorial pool is sampled down to this many distinct instructions

    def __init__(self) -> None:
        self._patterns = [_template_regex(t, words=r"[a-z ]+") for t in self.templates]

    def tasks(self, hard: bool, rng: random.Random) -> list[Task]:
        lengths = (5, 6) if hard else (2, 3, 4)
        seen: dict[str, Task] = {}
        while len(seen) < self.pool_size:
            words = tuple(rng.sample(WORDS, rng.choice(lengths)))
            text = rng.choice(self.templates).format(words=" ".join(words))
            seen.setdefault(text, Task(self.name, text, words))
        return list(seen.values())

    def parse(self, instruction: str) -> Task | None:
        m = _match(self._patterns, instruction)
        if m is None:
            return None
        words = tuple(m["words"].split())
        if len(words) < 2 or not all(w in WORDS for w in words):
            return None
        return Task(self.name, instruction, words)

    def right(self, args: tuple, rng: random.Random) -> str:
        return " ".join(reversed(args)) + "."

    def wrong(self, args: tuple, rng: random.Random) -> str:
        backwards = list(reversed(args))
        mistakes = (
            list(args),  # not reversed at all
            backwards[1:],  # a word lost
            [backwards[1], backwards[0], *backwards[2:]],  # first two swapped
        )
        return " ".join(rng.choice(mistakes)) + "."


class RepeatFamily(_ClosedFamily):
    """Repeat a word k times: 2-5 times, 6-8 in the bar set."""

    name = "repeat"
    templates = ("Repeat the word {word} {k} times.", "Say {word} {k} times.")

    def __init__(self) -> None:
        self._patterns = [_template_regex(t, word="[a-z]+", k="[0-9]") for t in self.templates]

    def tasks(self, hard: bool, rng: random.Random) -> list[Task]:
        counts = range(6, 9) if hard else range(2, 6)
        tasks = [Task(self.name, t.format(word=w, k=k), (w, k)) for w in WORDS for k in counts for t in self.templates]
        rng.shuffle(tasks)
        return tasks

    def parse(self, instruction: str) -> Task | None:
        m = _match(self._patterns, instruction)
        if m is None or m["word"] not in WORDS or int(m["k"]) < 1:
            return None
        return Task(self.name, instruction, (m["word"], int(m["k"])))

    def right(self, args: tuple, rng: random.Random) -> str:
        word, k = args
        return " ".join([word] * k) + "."

    def wrong(self, args: tuple, rng: random.Random) -> str:
        word, k = args
        return " ".join([word] * (k + rng.choice((-1, 1) if k > 1 else (1,)))) + "."


class DescribeFamily:
    """Open-ended: a short sentence about an animal (two animals in the bar set); many answers are right."""

    name = "describe"
    templates = (
        "Write a short sentence about a {topic}.",
        "Describe a {topic} in one sentence.",
        "Tell me something about a {topic}.",
    )
    min_words, max_words = 3, 14

    def __init__(self) -> None:
        adjectives, animals = "|".join(ADJECTIVES), "|".join(ANIMALS)
        topic = rf"(?P<adj>{adjectives}) (?P<animal>{animals})(?: and a (?P<other>{animals}))?"
        self._patterns = [_template_regex(t, topic=topic) for t in self.templates]

    def tasks(self, hard: bool, rng: random.Random) -> list[Task]:
        if hard:
            topics = [(a, x, y) for a in ADJECTIVES for x in ANIMALS for y in ANIMALS if x != y]
        else:
            topics = [(a, x) for a in ADJECTIVES for x in ANIMALS]
        tasks = [Task(self.name, t.format(topic=self._topic(args)), args) for args in topics for t in self.templates]
        rng.shuffle(tasks)
        return tasks

    @staticmethod
    def _topic(args: tuple) -> str:
        return f"{args[0]} {args[1]}" + (f" and a {args[2]}" if len(args) == 3 else "")

    def parse(self, instruction: str) -> Task | None:
        m = _match(self._patterns, instruction)
        if m is None or m["animal"] == m["other"]:
            return None
        args = (m["adj"], m["animal"]) + ((m["other"],) if m["other"] else ())
        return Task(self.name, instruction, args)

    def right(self, args: tuple, rng: random.Random) -> str:
        sentence = f"The {args[0]} {args[1]} {rng.choice(ACTIONS)}"
        return sentence + (f" with the {args[2]}." if len(args) == 3 else ".")

    def wrong(self, args: tuple, rng: random.Random) -> str:
        if len(args) == 3 and rng.random() < 0.5:
            return f"The {args[0]} {args[1]} {rng.choice(ACTIONS)}."  # forgets the second animal
        other = rng.choice([a for a in ANIMALS if a not in args])
        return self.right((args[0], other, *args[2:]), rng)  # about the wrong animal

    def is_correct(self, args: tuple, core: str) -> bool:
        words = core.split()
        named = [w for w in words if w in ANIMALS]
        return (
            self.min_words <= len(words) <= self.max_words
            and f" {args[0]} {args[1]} " in f" {core} "
            and sorted(set(named)) == sorted(args[1:])
        )


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        FactFamily(
            "capital",
            ("What is the capital of {subject}?", "Name the capital of {subject}.",
             "Which city is the capital of {subject}?", "Tell me the capital of {subject}."),
            "The capital of {subject} is {value}.",
            subject_group="[A-Z][a-z]+",
        ),
        FactFamily(
            "colour",
            ("What colour is the {subject}?", "What is the colour of the {subject}?",
             "Tell me the colour of the {subject}.", "Which colour is the {subject}?"),
            "The {subject} is {value}.",
            subject_group="[a-z]+",
        ),
        ArithmeticFamily(),
        ReverseFamily(),
        RepeatFamily(),
        DescribeFamily(),
    )
}


@lru_cache(maxsize=65536)
def parse_instruction(instruction: str) -> Task:
    """The task an instruction of the tiny world states.

    Raises:
        ValueError: if the instruction belongs to no family of the tiny world.
    """
    for family in FAMILIES.values():
        if (task := family.parse(instruction)) is not None:
            return task
    raise ValueError(f"instruction is not one of the tiny world's: {instruction!r}")


# --------------------------------------------------------------------------------------------------------------
# Gold quality


class Quality(NamedTuple):
    """Gold quality of an output; tuples compare lexicographically: correctness first, then less filler."""

    correct: bool
    form: int  # minus the number of filler phrases


def gold_quality(instruction: str, output: str) -> Quality:
    """Scores an output for an instruction: is its answer right, and how much filler surrounds it.

    Raises:
        ValueError: if the instruction belongs to no family of the tiny world.
    """
    task = parse_instruction(instruction)
    core, filler = strip_filler(output)
    return Quality(FAMILIES[task.family].is_correct(task.args, core), -filler)


def gold_preference(instruction: str, output_1: str, output_2: str) -> float:
    """The noise-free preference between two outputs: Preference.FIRST, SECOND or TIE."""
    q1, q2 = gold_quality(instruction, output_1), gold_quality(instruction, output_2)
    return Preference.FIRST if q1 > q2 else Preference.SECOND if q2 > q1 else Preference.TIE


# --------------------------------------------------------------------------------------------------------------
# Response generators


class Response(NamedTuple):
    """A generated response in its parts; an empty preamble or closing is no filler in that slot."""

    preamble: str
    core: str
    closing: str

    def text(self) -> str:
        return " ".join(part for part in self if part)


def draw_response(task: Task, rng: random.Random, correct_prob: float, pad_prob: float) -> Response:
    """A response of the world's generator: right with ``correct_prob``, each filler slot with ``pad_prob``, and
    hesitant with :data:`HESITATION_PROB` of its correctness."""
    family = FAMILIES[task.family]
    right = rng.random() < correct_prob
    core = family.right(task.args, rng) if right else family.wrong(task.args, rng)
    if rng.random() < HESITATION_PROB[right]:
        core = HESITATION + core
    preamble = rng.choice(PREAMBLES) if rng.random() < pad_prob else ""
    closing = rng.choice(CLOSINGS) if rng.random() < pad_prob else ""
    return Response(preamble, core, closing)


def respond(task: Task, rng: random.Random, correct_prob: float, pad_prob: float) -> str:
    """The text of :func:`draw_response`."""
    return draw_response(task, rng, correct_prob, pad_prob).text()


def reference_output(task: Task, config: TinyWorldConfig) -> str:
    """The fixed reference generator of the evaluation sets: decent but imperfect, deterministic per instruction."""
    rng = random.Random(stable_seed(REFERENCE_GENERATOR, task.instruction))
    return respond(task, rng, config.reference_correct_prob, config.reference_pad_prob)


# --------------------------------------------------------------------------------------------------------------
# Splits


def _spread(total: int, parts: int) -> list[int]:
    """``total`` items over ``parts`` families as evenly as possible (the first ones get the remainder)."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def fair_shares(available: int, needs: Sequence[int]) -> list[int]:
    """Shares ``available`` distinct instructions among splits that need ``needs`` items (water-filling).

    A split gets what it needs or an equal share of what the others leave, whichever is smaller, so a small split
    (unlabeled) gets all-distinct instructions and the big ones repeat theirs as little as the pool allows.
    """
    shares = [0] * len(needs)
    waiting = sorted(range(len(needs)), key=lambda i: needs[i])
    while waiting:
        fair = available // len(waiting)
        if needs[waiting[0]] <= fair:
            smallest = waiting.pop(0)
            shares[smallest] = needs[smallest]
            available -= needs[smallest]
        else:
            for rank, i in enumerate(waiting):
                shares[i] = fair + (rank < available % len(waiting))
            break
    return shares


def _cycle(items: list[Task], n: int) -> list[Task]:
    return [items[i % len(items)] for i in range(n)]


def _pair(task: Task, rng: random.Random, config: TinyWorldConfig, differ_in_quality: bool) -> tuple[str, str]:
    """Two different responses to a task (with different gold quality when ``differ_in_quality``)."""
    for _ in range(100):
        first, second = (draw_response(task, rng, config.pair_correct_prob, config.pair_pad_prob) for _ in range(2))
        if rng.random() < config.pair_same_filler_prob:
            second = second._replace(preamble=first.preamble, closing=first.closing)
        first, second = first.text(), second.text()
        if first != second and (
            not differ_in_quality or gold_quality(task.instruction, first) != gold_quality(task.instruction, second)
        ):
            return first, second
    raise ValueError(
        "TinyWorldConfig.pair_correct_prob and pair_pad_prob leave (almost) no pair of different responses; "
        "keep them strictly between 0 and 1"
    )


def build_splits(
    config: TinyWorldConfig, training_annotator: Annotator, gold_annotator: Annotator
) -> dict[str, list[dict]]:
    """Builds every split of the tiny world as lists of records (see ``harness.suites.base`` for the schemas).

    Args:
        config: sizes, generator probabilities and ``world_seed``.
        training_annotator: labels the ``preference`` pairs.
        gold_annotator: labels the ``val`` pairs.

    Returns:
        Records per split name: sft, preference, unlabeled, val, farm, bar.

    Raises:
        ValueError: if an evaluation split asks a family for more instructions than its pool holds.
    """
    rng = random.Random(config.world_seed)
    n = len(FAMILIES)
    sizes = {
        name: _spread(getattr(config, f"{name}_size"), n)
        for name in ("sft", "preference", "unlabeled", "val", "farm", "bar")
    }
    tasks: dict[str, list[Task]] = {name: [] for name in sizes}
    for i, family in enumerate(FAMILIES.values()):
        pool, hard_pool = family.tasks(False, rng), family.tasks(True, rng)
        n_farm, n_val = sizes["farm"][i], sizes["val"][i]
        if n_farm + n_val + 3 > len(pool) or sizes["bar"][i] > len(hard_pool):
            raise ValueError(
                f"TinyWorldConfig.farm_size/val_size/bar_size are too large: family {family.name!r} holds "
                f"{len(pool)} ordinary and {len(hard_pool)} hard instructions, and farm + val must leave at least 3 "
                "for training"
            )
        tasks["farm"] += pool[:n_farm]
        tasks["val"] += pool[n_farm : n_farm + n_val]
        tasks["bar"] += hard_pool[: sizes["bar"][i]]
        training = ("sft", "preference", "unlabeled")
        shares = fair_shares(len(pool) - n_farm - n_val, [sizes[s][i] for s in training])
        starts = itertools.accumulate(shares, initial=n_farm + n_val)
        for split, start, share in zip(training, starts, shares):
            tasks[split] += _cycle(pool[start : start + share], sizes[split][i])
    for split_tasks in tasks.values():
        rng.shuffle(split_tasks)

    pairs = [_pair(t, rng, config, differ_in_quality=False) for t in tasks["preference"]]
    val_pairs = [_pair(t, rng, config, differ_in_quality=True) for t in tasks["val"]]
    return {
        "sft": [
            {"instruction": t.instruction, "output": respond(t, rng, config.sft_correct_prob, config.sft_pad_prob)}
            for t in tasks["sft"]
        ],
        "preference": _labelled(tasks["preference"], pairs, training_annotator),
        "unlabeled": [{"instruction": t.instruction} for t in tasks["unlabeled"]],
        "val": _labelled(tasks["val"], val_pairs, gold_annotator),
        **{
            name: [
                {"instruction": t.instruction, "output": reference_output(t, config), "generator": REFERENCE_GENERATOR}
                for t in tasks[name]
            ]
            for name in ("farm", "bar")
        },
    }


def _labelled(tasks: list[Task], pairs: list[tuple[str, str]], annotator: Annotator) -> list[dict]:
    instructions = [t.instruction for t in tasks]
    labels = annotator.annotate(instructions, [p[0] for p in pairs], [p[1] for p in pairs])
    return [
        {"instruction": x, "output_1": o1, "output_2": o2, "preference": int(label)}
        for x, (o1, o2), label in zip(instructions, pairs, labels)
    ]


# --------------------------------------------------------------------------------------------------------------
# Raw pretraining text and the knowledge task


_FACT_SENTENCES = {
    "capital": ("The capital of {subject} is {value}.", "{value} is the capital of {subject}.",
                "{subject} is a country. Its capital is {value}."),
    "colour": ("The {subject} is {value}.", "Every {subject} is {value}.", "A {subject} is always {value}."),
}


def pretraining_documents(config: BaseModelConfig) -> Iterator[str]:
    """An endless stream of raw, non-chat text for pretraining the base model, drawn with ``config.seed``.

    A third of the documents state facts (rare facts ``config.rare_fact_weight`` times as often as common ones),
    the rest are "Question: ... / Answer: ..." documents over every family with answers of mixed quality (right
    with ``config.qa_correct_prob``, each filler slot with ``config.qa_pad_prob``; rare facts are never asked,
    a fifth of the other questions are of the bar's difficulty). No chat marker appears, so the base model learns
    the world but not the chat format. (Free sentences about random animals, once a sixth of the corpus, taught
    the model that any animal may follow "The small": it never learned to name the animal it was asked about.)
    """
    rng = random.Random(config.seed)
    fact_weights = [config.rare_fact_weight if f.rare else 1.0 for f in FACTS]
    pools = {name: family.tasks(False, rng) for name, family in FAMILIES.items()}
    hard_pools = {name: f.tasks(True, rng) for name, f in FAMILIES.items() if not isinstance(f, FactFamily)}
    while True:
        kind = rng.random()
        if kind < 1 / 3:
            fact = rng.choices(FACTS, weights=fact_weights)[0]
            yield rng.choice(_FACT_SENTENCES[fact.relation]).format(subject=fact.subject, value=fact.value)
        else:
            name = rng.choice(list(FAMILIES))
            hard = name in hard_pools and rng.random() < 0.2
            task = rng.choice(hard_pools[name] if hard else pools[name])
            answer = respond(task, rng, config.qa_correct_prob, config.qa_pad_prob)
            yield f"Question: {task.instruction}\nAnswer: {answer}"


def knowledge_questions() -> list[dict]:
    """The multiple-choice knowledge task: one question per fact, four answer sentences, one right.

    Fixed (it depends on no seed), so the jsonl committed beside the task's YAML is exactly this list.
    """
    questions = []
    for fact in FACTS:
        family: FactFamily = FAMILIES[fact.relation]  # type: ignore[assignment]
        rng = random.Random(stable_seed("knowledge", fact.subject))
        values = [fact.value, *rng.sample([v for v in family.values if v != fact.value], 3)]
        rng.shuffle(values)
        questions.append({
            "question": family.templates[0].format(subject=fact.subject),
            "choices": [family.answer.format(subject=fact.subject, value=v) for v in values],
            "answer": values.index(fact.value),
        })
    return questions


def knowledge_jsonl() -> str:
    """The exact text of :data:`KNOWLEDGE_JSONL`."""
    return "".join(json.dumps(q) + "\n" for q in knowledge_questions())


def write_knowledge_jsonl() -> None:
    """Regenerates the committed jsonl after a change to the facts or the question format."""
    KNOWLEDGE_JSONL.write_text(knowledge_jsonl())
