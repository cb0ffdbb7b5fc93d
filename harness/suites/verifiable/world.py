"""The ``verifiable`` world: topics, instructions with checkable constraints, the template writer, gold quality and
the splits.

Instructions are a writing task about a topic followed by one to three constraint phrases
(:mod:`harness.suites.verifiable.constraints`)::

    Describe the moon. Answer in at most 20 words. Include the keyword 'craters'.

Topics and the sentences the writer uses live in ``topics.yaml``. Keywords to include and words to forbid are
drawn from each topic's content words, so a careless answer about the topic is likely to break them.

The template writer (:func:`write`) answers with real sentences about the topic, then makes the answer satisfy
the constraints it is told to respect: it drops sentences that hold a forbidden word or a comma, puts sentences
with the required keywords first, picks how many sentences to use, and formats (bullets, title, end phrase, JSON,
case). Respecting only some constraints, and adding filler ("Sure! Here is a short text about ..."), is how it
writes the imperfect responses of preference pairs and references.

Gold quality (:func:`gold_quality`) is lexicographic: an answer must first be about the topic (name one of the
topic's ``mentions``), then the share of the instruction's constraints it meets decides, and between equally
compliant answers the one with less filler wins (the writer's stock phrases, :data:`FILLER_PHRASES`: words that
say nothing, which the training annotator's bias toward longer outputs rewards). Equal qualities are a tie. Length
itself is no part of gold: among equally compliant answers without filler, a shorter answer is not a better one,
so a reward model cannot score well on the policy's pairs by reading length (a gold that preferred fewer words
made "prefer the shorter" agree with it on 0.65 of the SmolLM2 policy's val pairs, a third of them decided by
word count alone).

Splits (:func:`build_splits`): every instruction is distinct across all splits. The combinations of constraint
kinds of the largest size (``max_constraints``) are split by ``world_seed`` into two disjoint pools: the ``bar``
set draws only from its pool, every other split (sft, preference, unlabeled, val, farm) from the smaller
combinations and the rest, so no ``bar`` combination is ever seen in training. ``sft`` demonstrations satisfy all
their constraints; ``preference`` and ``val`` hold instructions whose pairs the run draws from the SFT policy
(``pairs_from_policy``), or else pairs of a writer that respects each constraint with ``pair_comply_prob``;
``farm``/``bar`` references come from :func:`reference_output`, the writer with a fixed
error rate, seeded by the instruction alone.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Sequence

import yaml

from harness.core.types import Preference
from harness.suites.annotators import labelled_pairs, stable_seed
from harness.suites.verifiable.constraints import (
    KINDS,
    Arg,
    Constraint,
    compatible,
    describe,
    forbidden_words,
    has_word,
    is_met,
    no_commas,
    read_constraints,
)

if TYPE_CHECKING:
    from harness.suites.base import Annotator
    from harness.suites.verifiable.config import VerifiableConfig

TOPICS_FILE = Path(__file__).with_name("topics.yaml")
REFERENCE_GENERATOR = "verifiable-reference"

TASK_TEMPLATES = (
    "Write a short text about {name}.",
    "Tell me about {name}.",
    "Describe {name}.",
    "Write a few sentences about {name}.",
)
PREAMBLES = ("Sure! Here is a short text about {name}.", "Of course!", "Great question!")
CLOSINGS = ("I hope this helps!", "Let me know if you want to learn more.")
END_PHRASES = (
    "Is there anything else I can help with?",
    "Let me know if you have any other questions.",
    "That is all for today.",
    "Thank you for reading.",
)
# What gold's form term counts: the preambles' fixed words and the closings, lower-cased (the end phrases are not
# filler: an instruction may ask for one).
FILLER_PHRASES = ("here is a short text about", "of course!", "great question!", *(c.lower() for c in CLOSINGS))
# Arguments of the counted constraints. The shortest word limit still fits the longest topic sentence.
WORD_LIMITS = {"max_words": (15, 20, 30), "min_words": (25, 35)}
SENTENCE_COUNTS = (1, 2, 3)
BULLET_COUNTS = (2, 3, 4)

_STOPWORDS = frozenset(
    "about above across after again almost along also although always among another around because been before "
    "being below between called cannot could different during each every first found from have into large later "
    "little long made make many more most much never often only other over really same several should since some "
    "still such than that their them there these they thing things this those through today together toward under "
    "until very were what when where which while whole will with without would years".split()
)


# --------------------------------------------------------------------------------------------------------------
# Topics


@dataclass(frozen=True)
class Topic:
    """A topic: the name instructions use, the words that show an answer is about it, and sentences about it."""

    name: str
    mentions: tuple[str, ...]
    sentences: tuple[str, ...]

    @property
    def title(self) -> str:
        return " ".join(w.capitalize() for w in self.name.split())

    @cached_property
    def content_words(self) -> tuple[str, ...]:
        """Words of 5+ letters of the topic's sentences that are neither stop words nor mentions, sorted.

        These are the keywords an instruction may require or forbid: a forbidden mention would forbid the topic.
        """
        words = {w.lower() for s in self.sentences for w in re.findall(r"[A-Za-z]+", s)}
        return tuple(sorted(w for w in words if len(w) >= 5 and w not in _STOPWORDS and w not in self.mentions))

    def is_mentioned(self, text: str) -> bool:
        """Whether ``text`` names the topic (one of its mentions as a whole word, in any case)."""
        return any(has_word(text, m) for m in self.mentions)


def _load_topics() -> dict[str, Topic]:
    entries = yaml.safe_load(TOPICS_FILE.read_text())
    return {e["name"]: Topic(e["name"], tuple(e["mentions"]), tuple(e["sentences"])) for e in entries}


TOPICS = _load_topics()
_TOPIC_NAMES = sorted(TOPICS)


# --------------------------------------------------------------------------------------------------------------
# Instructions


class Task(NamedTuple):
    """One instruction: its topic, its text and the constraints the text states."""

    topic: str
    instruction: str
    constraints: tuple[Constraint, ...]

    @property
    def kinds(self) -> frozenset[str]:
        """The combination of constraint kinds, the unit the ``bar`` set holds out."""
        return frozenset(c.kind for c in self.constraints)


_TASK_PATTERNS = [
    re.compile(re.escape(t).replace(re.escape("{name}"), "(?P<name>[a-z ]+?)") + r"(?: |\Z)") for t in TASK_TEMPLATES
]


@lru_cache(maxsize=65536)
def parse_instruction(instruction: str) -> Task:
    """The task an instruction of this world states, read back from its text.

    Raises:
        ValueError: if the instruction is not one of this world's (unknown topic or constraint phrase).
    """
    for pattern in _TASK_PATTERNS:
        match = pattern.match(instruction)
        if match and match["name"] in TOPICS:
            constraints = read_constraints(instruction[match.end():])
            if constraints:
                return Task(match["name"], instruction, constraints)
    raise ValueError(f"instruction is not one of the verifiable world's: {instruction!r}")


def constraint_combinations(max_size: int) -> list[tuple[str, ...]]:
    """Every combination of 1 to ``max_size`` compatible kinds, each in :data:`KINDS` order."""
    return [
        combo for size in range(1, max_size + 1) for combo in itertools.combinations(KINDS, size)
        if compatible(frozenset(combo))
    ]


def split_combinations(
    max_size: int, bar_share: float, rng: random.Random
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(training combinations, bar combinations): a ``bar_share`` of the largest combinations is held out."""
    combos = constraint_combinations(max_size)
    largest = [c for c in combos if len(c) == max_size]
    rng.shuffle(largest)
    bar = largest[: round(bar_share * len(largest))]
    held_out = set(bar)
    return [c for c in combos if c not in held_out], bar


def _draw_arg(kind: str, words: list[str], rng: random.Random) -> Arg:
    """An argument for ``kind``; keyword and forbidden words are popped from ``words`` so they never overlap."""
    if kind in WORD_LIMITS:
        return rng.choice(WORD_LIMITS[kind])
    if kind == "exact_sentences":
        return rng.choice(SENTENCE_COUNTS)
    if kind == "bullet_points":
        return rng.choice(BULLET_COUNTS)
    if kind in ("include_keywords", "forbidden_words"):
        return tuple(sorted(words.pop() for _ in range(rng.choice((1, 2)))))
    if kind == "end_phrase":
        return rng.choice(END_PHRASES)
    return None


def make_task(combo: Sequence[str], rng: random.Random, attempts: int = 50) -> Task:
    """A random instruction with exactly the constraint kinds ``combo`` that the template writer can satisfy.

    Raises:
        ValueError: if no draw of topic and arguments in ``attempts`` tries is satisfiable (a combination that
            should be in :data:`~harness.suites.verifiable.constraints.CONFLICTS`).
    """
    for _ in range(attempts):
        topic = TOPICS[rng.choice(_TOPIC_NAMES)]
        words = list(topic.content_words)
        rng.shuffle(words)
        kinds = list(combo)
        rng.shuffle(kinds)  # phrase order varies; the combination is what matters
        constraints = tuple(Constraint(k, _draw_arg(k, words, rng)) for k in kinds)
        text = " ".join([rng.choice(TASK_TEMPLATES).format(name=topic.name), *map(describe, constraints)])
        task = Task(topic.name, text, constraints)
        if _compliant_answer(task) is not None:
            return task
    raise ValueError(f"the template writer cannot satisfy the constraint combination {sorted(combo)}")


# --------------------------------------------------------------------------------------------------------------
# The template writer


def write(task: Task, rng: random.Random, respected: frozenset[str], pad: bool) -> str | None:
    """An answer about the task's topic that meets the constraints whose kinds are in ``respected``.

    Sentences come from the topic's list: those holding a forbidden word (or a comma, under ``no_commas``) are
    left out; an opening sentence that names the topic and covers the most required keywords goes first, then
    sentences for the keywords still missing, then the rest in random order. The writer tries its natural length
    (2-4 sentences) first, then lengths further from it, with the filler (``pad``) first and without it next, and
    returns the first candidate that names the topic and meets every respected constraint. Constraints outside
    ``respected`` are ignored (the answer may still meet them by chance).

    Returns:
        The answer, or None if no candidate meets the respected constraints.
    """
    topic = TOPICS[task.topic]
    rules = {c.kind: c.arg for c in task.constraints if c.kind in respected}
    usable = [s for s in topic.sentences if _allowed(s, rules)]
    rng.shuffle(usable)
    ordered = _keyword_order(usable, topic, rules.get("include_keywords", ()))
    preamble = rng.choice(PREAMBLES).format(name=topic.name) if pad else None
    closing = rng.choice(CLOSINGS) if pad and rng.random() < 0.5 else None
    natural = rng.choice((2, 3, 4))
    lengths = sorted(range(1, len(ordered) + 1), key=lambda n: (abs(n - natural), n))
    for padded in ((True, False) if pad else (False,)):
        for n in lengths:
            text = _render(topic, ordered[:n], rules, preamble if padded else None, closing if padded else None)
            if topic.is_mentioned(text) and all(is_met(c, text) for c in task.constraints if c.kind in rules):
                return text
    return None


def _allowed(sentence: str, rules: dict) -> bool:
    """Whether a sentence can be used at all: no forbidden word, and no comma under ``no_commas``."""
    commas_ok = "no_commas" not in rules or no_commas(sentence)
    return commas_ok and forbidden_words(sentence, rules.get("forbidden_words", ()))


def _keyword_order(sentences: list[str], topic: Topic, keywords: Sequence[str]) -> list[str]:
    """The opener (names the topic, covers the most keywords), sentences for the missing keywords, the rest."""
    def covered(sentence: str, wanted: Sequence[str]) -> int:
        return sum(has_word(sentence, k) for k in wanted)

    openers = [s for s in sentences if topic.is_mentioned(s)]
    if not openers:
        return []
    order = [max(openers, key=lambda s: covered(s, keywords))]
    missing = [k for k in keywords if not covered(order[0], [k])]
    while missing:
        best = max((s for s in sentences if s not in order), key=lambda s: covered(s, missing), default=None)
        if best is None or not covered(best, missing):
            break
        order.append(best)
        missing = [k for k in missing if not covered(best, [k])]
    return order + [s for s in sentences if s not in order]


def _render(topic: Topic, sentences: Sequence[str], rules: dict, preamble: str | None, closing: str | None) -> str:
    """Lays the sentences out and applies the formatting constraints, case last."""
    parts = [p for p in (preamble, *(f"* {s}" if "bullet_points" in rules else s for s in sentences), closing) if p]
    text = ("\n" if "bullet_points" in rules else " ").join(parts)
    if "title" in rules:
        text = f"<<{topic.title}>>\n\n{text}"
    if "end_phrase" in rules:
        text += ("\n" if "bullet_points" in rules else " ") + rules["end_phrase"]
    if "json_format" in rules:
        text = json.dumps({"answer": text})
    if "lowercase" in rules:
        text = text.lower()
    if "uppercase" in rules:
        text = text.upper()
    return text


def _compliant_answer(task: Task) -> str | None:
    """The writer's answer that meets every constraint, with a generator seeded by the instruction alone.

    :func:`make_task` keeps only tasks for which this exists, so :func:`respond` always has a fallback.
    """
    return write(task, random.Random(stable_seed("compliant", task.instruction)), task.kinds, pad=False)


def respond(task: Task, rng: random.Random, comply_prob: float, pad_prob: float) -> str:
    """A response of the world's writer: each constraint respected with ``comply_prob``, filler with ``pad_prob``.

    With ``comply_prob`` 1 the response meets every constraint. The writer gets a few tries with fresh random
    choices; if none fits, the fully compliant answer of :func:`_compliant_answer` is used.
    """
    respected = frozenset(c.kind for c in task.constraints if rng.random() < comply_prob)
    pad = rng.random() < pad_prob
    for _ in range(5):
        if (text := write(task, rng, respected, pad)) is not None:
            return text
    return _compliant_answer(task)


def reference_output(task: Task, config: VerifiableConfig) -> str:
    """The fixed reference generator of the evaluation sets: the writer with a fixed error rate, per instruction."""
    rng = random.Random(stable_seed(REFERENCE_GENERATOR, task.instruction))
    return respond(task, rng, config.reference_comply_prob, config.reference_pad_prob)


# --------------------------------------------------------------------------------------------------------------
# Gold quality


class Quality(NamedTuple):
    """Gold quality of an answer; tuples compare lexicographically (see the module docstring)."""

    on_topic: bool
    share_met: float  # share of the instruction's constraints the answer meets
    no_filler: int  # minus the number of filler phrases


def gold_quality(instruction: str, output: str) -> Quality:
    """Scores an answer to an instruction of this world.

    Raises:
        ValueError: if the instruction is not one of this world's.
    """
    task = parse_instruction(instruction)
    met = sum(is_met(c, output) for c in task.constraints)
    return Quality(TOPICS[task.topic].is_mentioned(output), met / len(task.constraints), -filler_count(output))


def filler_count(output: str) -> int:
    """How many of the writer's filler phrases (:data:`FILLER_PHRASES`) the answer holds, in any case."""
    text = output.lower()
    return sum(text.count(phrase) for phrase in FILLER_PHRASES)


def gold_preference(instruction: str, output_1: str, output_2: str) -> float:
    """The noise-free preference between two answers: Preference.FIRST, SECOND or TIE."""
    q1, q2 = gold_quality(instruction, output_1), gold_quality(instruction, output_2)
    return Preference.FIRST if q1 > q2 else Preference.SECOND if q2 > q1 else Preference.TIE


def pair_kind(instruction: str, output_1: str, output_2: str) -> str:
    """What decides gold's preference between two answers: the first term of :class:`Quality` in which they
    differ ("on vs off topic", "constraints met", "filler only"), or "equal quality" (a tie)."""
    q1, q2 = gold_quality(instruction, output_1), gold_quality(instruction, output_2)
    if q1.on_topic != q2.on_topic:
        return "on vs off topic"
    if q1.share_met != q2.share_met:
        return "constraints met"
    return "filler only" if q1.no_filler != q2.no_filler else "equal quality"


def canonical_answer(output: str) -> str:
    """What an answer says, without its format: JSON unwrapped, title and bullet marks dropped, lower-cased,
    punctuation removed, white space collapsed."""
    text = output.strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        text = " ".join(str(v) for v in value.values())
    text = re.sub(r"<<[^\n<>]*>>", " ", text)
    text = re.sub(r"^\s*[*-]\s+", " ", text, flags=re.MULTILINE)
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text.lower()).split())


# --------------------------------------------------------------------------------------------------------------
# Splits


def build_splits(
    config: VerifiableConfig, training_annotator: Annotator, gold_annotator: Annotator
) -> dict[str, list[dict]]:
    """Builds every split as lists of records (schemas in ``harness.suites.base``), deterministic per world_seed.

    Args:
        config: sizes, writer probabilities, ``max_constraints``, ``bar_share`` and ``world_seed``.
        training_annotator: labels the writer's ``preference`` pairs.
        gold_annotator: labels the writer's ``val`` pairs.

    Returns:
        Records per split name: sft, preference, unlabeled, val, farm, bar. With ``pairs_from_policy`` the
        preference and val records hold the instruction alone; otherwise the writer's pairs with their labels.
        The writer's pairs and the sft demonstrations each draw from a generator of their own, so neither the pairs'
        source nor the size of a later split changes the demonstrations (and the SFT model trained on them).
    """
    rng = random.Random(config.world_seed)
    training_combos, bar_combos = split_combinations(config.max_constraints, config.bar_share, rng)
    by_size = {size: [c for c in training_combos if len(c) == size] for size in range(1, config.max_constraints + 1)}
    seen: set[str] = set()

    def draw(count: int, held_out: bool) -> list[Task]:
        tasks: list[Task] = []
        while len(tasks) < count:
            # Training splits: first the number of constraints, then a combination of that size, both uniform.
            combo = rng.choice(bar_combos if held_out else by_size[rng.randint(1, config.max_constraints)])
            task = make_task(combo, rng)
            if task.instruction not in seen:
                seen.add(task.instruction)
                tasks.append(task)
        return tasks

    tasks = {
        "farm": draw(config.farm_size, False),
        "val": draw(config.val_size, False),
        "bar": draw(config.bar_size, True),
        "sft": draw(config.sft_size, False),
        "preference": draw(config.preference_size, False),
        "unlabeled": draw(config.unlabeled_size, False),
    }
    if config.pairs_from_policy:  # the run samples and labels them (RunContext.labelled_pairs)
        pairs = {name: [{"instruction": t.instruction} for t in tasks[name]] for name in ("preference", "val")}
    else:
        writer = random.Random(stable_seed("writer pairs", config.world_seed))
        pairs = {
            "preference": _labelled(tasks["preference"], [_pair(t, writer, config, differ_in_quality=False)
                                                          for t in tasks["preference"]], training_annotator),
            "val": _labelled(tasks["val"], [_pair(t, writer, config, differ_in_quality=True) for t in tasks["val"]],
                             gold_annotator),
        }
    demonstrator = random.Random(stable_seed("sft demonstrations", config.world_seed))
    return {
        "sft": [{"instruction": t.instruction, "output": respond(t, demonstrator, 1.0, config.sft_pad_prob)}
                for t in tasks["sft"]],
        **pairs,
        "unlabeled": [{"instruction": t.instruction} for t in tasks["unlabeled"]],
        **{
            name: [{"instruction": t.instruction, "output": reference_output(t, config),
                    "generator": REFERENCE_GENERATOR} for t in tasks[name]]
            for name in ("farm", "bar")
        },
    }


def _pair(task: Task, rng: random.Random, config: VerifiableConfig, differ_in_quality: bool) -> tuple[str, str]:
    """Two different responses to a task (of different gold quality when ``differ_in_quality``)."""
    for _ in range(100):
        first, second = (respond(task, rng, config.pair_comply_prob, config.pair_pad_prob) for _ in range(2))
        if first != second and (not differ_in_quality or gold_preference(task.instruction, first, second)
                                != Preference.TIE):
            return first, second
    raise ValueError(
        "VerifiableConfig.pair_comply_prob and pair_pad_prob leave (almost) no pair of different responses; "
        "keep them strictly between 0 and 1"
    )


def _labelled(tasks: list[Task], pairs: list[tuple[str, str]], annotator: Annotator) -> list[dict]:
    """The shared :func:`labelled_pairs` rows, with the integer labels this world has always stored (the reward
    stage's cache key hashes them)."""
    rows = labelled_pairs(annotator, [t.instruction for t in tasks], [p[0] for p in pairs], [p[1] for p in pairs])
    return [{**row, "preference": int(row["preference"])} for row in rows]
