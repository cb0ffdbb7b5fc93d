"""The ``tiny`` suite: the embedded world behind the harness's Suite protocol."""

from __future__ import annotations

from pathlib import Path

from harness.suites.synthetic import SyntheticSuite
from harness.suites.tiny.annotators import GoldJudge, NoisyAnnotator
from harness.suites.tiny.config import TinyWorldConfig
from harness.suites.tiny.pretrain import ensure_base_model
from harness.suites.tiny.world import build_splits, canonical_answer, pair_kind

KNOWLEDGE_DIR = Path(__file__).parent / "knowledge"


class TinySuite(SyntheticSuite):
    """A synthetic instruction world, its annotators and its ~1 M-parameter base model; offline and CPU-sized.

    Deterministic for ``config.world_seed``; see :mod:`harness.suites.tiny.world` for what the world contains.
    The training annotator flips 25% of gold's labels and, between equally good outputs, favours the longer.
    """

    name = "tiny"
    gold_judge = GoldJudge
    noisy_annotator = NoisyAnnotator
    answer_of = canonical_answer
    kind_of = pair_kind
    # Preference and val pairs are two samples of the SFT policy per instruction, labelled during the run.
    pairs_from_policy = True
    knowledge_chat = True  # fact questions asked as the policy is asked: recall, not recognition
    knowledge_chance = None  # an answer is generated, not picked: guessing scores about 0

    def __init__(self, config: TinyWorldConfig | None = None) -> None:
        self.config = config or TinyWorldConfig()

    def build_records(self) -> dict[str, list[dict]]:
        """The world's splits (preference and val hold instructions only: the run labels policy samples)."""
        return build_splits(self.config)

    def base_model(self, cache_dir: Path) -> Path:
        """The pretrained base model under ``cache_dir``, built on first use (about four minutes on 2 CPU cores)."""
        return ensure_base_model(self.config.base_model, Path(cache_dir))

    def knowledge_task(self) -> tuple[Path, str]:
        """The chat-format recall task on the world's facts; its YAML loads the jsonl beside it by path."""
        return KNOWLEDGE_DIR, "tiny_knowledge"
