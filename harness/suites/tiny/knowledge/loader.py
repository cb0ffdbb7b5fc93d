"""Loads the tiny knowledge task's questions from the jsonl beside this file, wherever the package lives, and
normalises the model's answers the way the world's gold judge reads them."""

from __future__ import annotations

from pathlib import Path

import datasets

from harness.suites.tiny.world import canonical_answer


def load_questions(**_lm_eval_metadata: object) -> datasets.DatasetDict:
    """The questions as a DatasetDict with one ``train`` split (lm-eval passes its task metadata; unused)."""
    return datasets.load_dataset("json", data_files=str(Path(__file__).with_name("tiny_knowledge.jsonl")))


def canonical_answers(responses: list[list[str]], _docs: list[dict]) -> list[list[str]]:
    """Each generated answer without case, punctuation or filler phrases, so "Sure! The capital of X is Y." is
    right: the gold judge does not count a polite phrase as wrong either."""
    return [[canonical_answer(r) for r in per_doc] for per_doc in responses]
