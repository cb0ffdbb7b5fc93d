"""Loads the tiny knowledge task's questions from the jsonl beside this file, wherever the package lives."""

from __future__ import annotations

from pathlib import Path

import datasets


def load_questions(**_lm_eval_metadata: object) -> datasets.DatasetDict:
    """The questions as a DatasetDict with one ``train`` split (lm-eval passes its task metadata; unused)."""
    return datasets.load_dataset("json", data_files=str(Path(__file__).with_name("tiny_knowledge.jsonl")))
