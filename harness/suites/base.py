"""The contract every suite and annotator meets.

A suite is everything a preset needs besides the model: the AlpacaFarm-like data splits, the evaluation sets
with reference outputs, and the simulated annotators. The harness and the methods only ever see this interface,
so the embedded ``tiny`` world and a real hub-backed suite are interchangeable.

Split schemas (each a ``datasets.Dataset``):

- ``sft``:        instruction, output
- ``preference``: instruction, output_1, output_2, preference (1 or 2, the training annotator's label)
- ``unlabeled``:  instruction
- ``val``:        instruction, output_1, output_2, preference (gold labels; held-out RM accuracy)

A suite whose ``pairs_from_policy`` is true ships ``preference`` and ``val`` with the instruction column alone: the
run draws two samples of its SFT policy per instruction (at the suite's ``pair_temperature``) and labels them with
the training annotator and the gold judge, as AlpacaFarm built its pairs from its SFT model's outputs.
- eval sets (``farm``, ``bar``, ...): instruction, output (the reference), generator (who wrote the reference)
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

from datasets import Dataset


class Annotator(Protocol):
    """Compares two outputs for the same instruction."""

    name: str

    def annotate(
        self, instructions: Sequence[str], outputs_1: Sequence[str], outputs_2: Sequence[str]
    ) -> list[float]:
        """Returns one preference per item: Preference.FIRST, Preference.SECOND or Preference.TIE."""
        ...


class Suite(Protocol):
    """Data and annotators of one preset."""

    name: str
    eval_sets: tuple[str, ...]
    pairs_from_policy: bool  # preference/val pairs are drawn from the SFT policy during the run (then also
    # ``pair_temperature: float``)
    knowledge_chat: bool  # the knowledge task is asked in the chat format (lm-eval's apply_chat_template)
    knowledge_chance: float | None  # the knowledge task's accuracy by guessing (0.25 for 4-choice MMLU); None: ~0

    def splits(self) -> dict[str, Dataset]:
        """All splits: ``sft``, ``preference``, ``unlabeled``, ``val`` and one per name in ``eval_sets``."""
        ...

    def training_annotator(self) -> Annotator:
        """The (noisy, biased) annotator that labelled the preference split; labels SPG's accuracy check too."""
        ...

    def gold_annotator(self) -> Annotator:
        """The noise-free judge used for evaluation."""
        ...

    def canonical_answer(self, instruction: str, output: str) -> str:
        """The normalised answer used by the ``exact`` equivalence of SPG clustering."""
        ...

    def pair_kind(self, instruction: str, output_1: str, output_2: str) -> str | None:
        """What separates two outputs in the suite's gold, for reward-model accuracy by kind (the tiny world: "right
        vs wrong", "answer vs evasion", "form only", "equal quality"); None where the suite cannot tell."""
        ...

    def base_model(self, cache_dir: Path) -> Path:
        """An HF checkpoint dir (model + tokenizer with a chat template) to start SFT from."""
        ...

    def knowledge_task(self) -> tuple[Path, str] | None:
        """(lm-eval include_path, task name) of the suite's knowledge task, if it has one."""
        ...
