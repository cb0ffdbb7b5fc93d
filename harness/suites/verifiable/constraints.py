"""Programmatically verifiable constraints, in the spirit of IFEval (Zhou et al., 2023), each with its verifier.

An instruction of the ``verifiable`` suite is a short writing task followed by one to three constraint phrases,
for example::

    Tell me about honey bees. Answer in exactly 2 sentences. Do not use any commas.

Every constraint kind has a phrase that states it, a regular expression that reads the phrase back (so the gold
judge can recover an instruction's constraints from its text alone), and a verifier: a small pure function of the
response text. The verifiers follow IFEval's rules where IFEval has the same constraint (word boundaries for
keywords, case-insensitive end phrases, ``<<...>>`` titles, Markdown bullets) and say so where they differ.

Some pairs of kinds cannot or should not be asked together (:data:`CONFLICTS`): lowercase and capital letters
contradict each other, a JSON answer has no bullets, title or trailing phrase, and so on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, NamedTuple, Union

Arg = Union[int, str, tuple[str, ...], None]

_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")  # "rider's" and "don't" are one word each
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BULLET = re.compile(r"^\s*[*-]\s+\S", re.MULTILINE)
_TITLE = re.compile(r"<<[^\n<>]+>>")
_FENCE = re.compile(r"\A```(?:json)?\s*(.*?)\s*```\Z", re.DOTALL | re.IGNORECASE)


class Constraint(NamedTuple):
    """One constraint of an instruction: its kind and its argument (a count, words, a phrase, or None)."""

    kind: str
    arg: Arg = None


# --------------------------------------------------------------------------------------------------------------
# Verifiers: pure functions of the response text


def count_words(text: str) -> int:
    """Words are runs of letters and digits; a contraction or possessive ("don't", "rider's") is one word."""
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Sentences end with ``.``, ``!`` or ``?`` followed by white space or the end of the text.

    A final fragment without an end mark counts too, as long as it holds a word; a number such as ``3.5`` does
    not end a sentence, because no white space follows its point.
    """
    return sum(1 for part in _SENTENCE_END.split(text.strip()) if _WORD.search(part))


def max_words(text: str, n: int) -> bool:
    """At most ``n`` words."""
    return count_words(text) <= n


def min_words(text: str, n: int) -> bool:
    """At least ``n`` words."""
    return count_words(text) >= n


def exact_sentences(text: str, n: int) -> bool:
    """Exactly ``n`` sentences."""
    return count_sentences(text) == n


def bullet_points(text: str, n: int) -> bool:
    """Exactly ``n`` Markdown bullets: lines that start with ``*`` or ``-`` and a space (IFEval's rule)."""
    return len(_BULLET.findall(text)) == n


def has_word(text: str, word: str) -> bool:
    """Whether ``word`` appears in ``text`` as a whole word, in any case."""
    return re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE) is not None


def include_keywords(text: str, words: tuple[str, ...]) -> bool:
    """Every word appears as a whole word, in any case."""
    return all(has_word(text, w) for w in words)


def forbidden_words(text: str, words: tuple[str, ...]) -> bool:
    """No word appears as a whole word, in any case (so a forbidden "rain" allows "rainforest")."""
    return not any(has_word(text, w) for w in words)


def no_commas(text: str) -> bool:
    """No ASCII comma anywhere."""
    return "," not in text


def lowercase(text: str) -> bool:
    """Every cased letter is lowercase, and there is at least one (so an empty answer does not pass)."""
    return text.islower()


def uppercase(text: str) -> bool:
    """Every cased letter is a capital, and there is at least one."""
    return text.isupper()


def title(text: str) -> bool:
    """A title in double angular brackets on one line, such as ``<<Honey Bees>>``."""
    return _TITLE.search(text) is not None


def end_phrase(text: str, phrase: str) -> bool:
    """The answer ends with ``phrase``, in any case, nothing after it but white space (IFEval's rule)."""
    return text.strip().lower().endswith(phrase.lower())


def json_format(text: str) -> bool:
    """The whole answer parses as a JSON object or array, optionally inside a Markdown code fence.

    Unlike IFEval, a bare JSON string or number does not pass: "JSON format" asks for structure.
    """
    body = text.strip()
    fenced = _FENCE.match(body)
    try:
        value = json.loads(fenced.group(1) if fenced else body)
    except json.JSONDecodeError:
        return False
    return isinstance(value, (dict, list))


# --------------------------------------------------------------------------------------------------------------
# Kinds: phrase, parser, verifier


@dataclass(frozen=True)
class Kind:
    """A constraint kind: how an instruction states it, how to read it back, and how to check a response."""

    name: str
    pattern: re.Pattern[str]  # matches the phrase at the start of a string; its groups give the argument
    phrase: Callable[[Arg], str]
    read: Callable[[re.Match[str]], Arg]
    check: Callable[..., bool]  # check(text) or check(text, arg)


def _words_phrase(lead: str, noun: str, joiner: str) -> Callable[[Arg], str]:
    def phrase(words: Arg) -> str:
        quoted = f" {joiner} ".join(f"'{w}'" for w in words)
        return f"{lead} {noun}{'s' if len(words) > 1 else ''} {quoted}."

    return phrase


def _read_words(match: re.Match[str]) -> tuple[str, ...]:
    return tuple(w for w in match.groups() if w)


def _read_int(match: re.Match[str]) -> int:
    return int(match.group(1))


def _no_arg(match: re.Match[str]) -> None:
    return None


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("max_words", re.compile(r"Answer in at most (\d+) words\."),
             lambda n: f"Answer in at most {n} words.", _read_int, max_words),
        Kind("min_words", re.compile(r"Answer in at least (\d+) words\."),
             lambda n: f"Answer in at least {n} words.", _read_int, min_words),
        Kind("exact_sentences", re.compile(r"Answer in exactly (\d+) sentences?\."),
             lambda n: f"Answer in exactly {n} sentence{'s' if n != 1 else ''}.", _read_int, exact_sentences),
        Kind("bullet_points", re.compile(r"Answer with exactly (\d+) bullet points, each on its own line starting "
                                         r"with '\* '\."),
             lambda n: f"Answer with exactly {n} bullet points, each on its own line starting with '* '.",
             _read_int, bullet_points),
        Kind("include_keywords", re.compile(r"Include the keywords? '([a-z]+)'(?: and '([a-z]+)')?\."),
             _words_phrase("Include the", "keyword", "and"), _read_words, include_keywords),
        Kind("forbidden_words", re.compile(r"Do not use the words? '([a-z]+)'(?: or '([a-z]+)')?\."),
             _words_phrase("Do not use the", "word", "or"), _read_words, forbidden_words),
        Kind("no_commas", re.compile(r"Do not use any commas\."),
             lambda _: "Do not use any commas.", _no_arg, no_commas),
        Kind("lowercase", re.compile(r"Write your entire answer in lowercase letters\."),
             lambda _: "Write your entire answer in lowercase letters.", _no_arg, lowercase),
        Kind("uppercase", re.compile(r"Write your entire answer in capital letters\."),
             lambda _: "Write your entire answer in capital letters.", _no_arg, uppercase),
        Kind("title", re.compile(r"Give your answer a title wrapped in double angular brackets, such as "
                                 r"<<my title>>\."),
             lambda _: "Give your answer a title wrapped in double angular brackets, such as <<my title>>.",
             _no_arg, title),
        Kind("end_phrase", re.compile(r'End your answer with the exact phrase "([^"]+)"'),
             lambda p: f'End your answer with the exact phrase "{p}"', lambda m: m.group(1), end_phrase),
        Kind("json_format", re.compile(r"Wrap your entire answer in JSON format\."),
             lambda _: "Wrap your entire answer in JSON format.", _no_arg, json_format),
    )
}

# Kinds that cannot be asked together: they contradict each other, or one leaves no room for the other (a
# one-sentence answer cannot also hold a closing phrase, a JSON answer has no bullets, title or trailing phrase).
CONFLICTS: frozenset[frozenset[str]] = frozenset(
    frozenset(pair)
    for pair in (
        ("max_words", "min_words"),
        ("min_words", "exact_sentences"),
        ("lowercase", "uppercase"),
        ("bullet_points", "exact_sentences"),
        ("bullet_points", "json_format"),
        ("end_phrase", "exact_sentences"),
        ("end_phrase", "json_format"),
        ("title", "json_format"),
    )
)


def compatible(kinds: frozenset[str] | set[str]) -> bool:
    """Whether no two of ``kinds`` conflict."""
    return not any(pair <= kinds for pair in CONFLICTS)


def describe(constraint: Constraint) -> str:
    """The phrase an instruction uses for ``constraint``."""
    return KINDS[constraint.kind].phrase(constraint.arg)


def is_met(constraint: Constraint, text: str) -> bool:
    """Whether ``text`` satisfies ``constraint``."""
    kind = KINDS[constraint.kind]
    return kind.check(text) if constraint.arg is None else kind.check(text, constraint.arg)


def read_constraints(text: str) -> tuple[Constraint, ...] | None:
    """Reads back the constraint phrases of ``text`` (phrases separated by single spaces), or None if any part of
    ``text`` is not a constraint phrase."""
    constraints, pos = [], 0
    while pos < len(text):
        match = next((m for k in KINDS.values() if (m := k.pattern.match(text, pos))), None)
        if match is None:
            return None
        kind = next(k for k in KINDS.values() if k.pattern is match.re)
        constraints.append(Constraint(kind.name, kind.read(match)))
        pos = match.end()
        if pos < len(text):
            if text[pos] != " ":
                return None
            pos += 1
    return tuple(constraints)
