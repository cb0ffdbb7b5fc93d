"""Configuration of the ``alpacafarm`` suite: where its data comes from and which labels and references it uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.core.schema import require_positive, require_that

LLMBAR_PREFERRED = "llmbar_preferred"


@dataclass(frozen=True)
class AlpacaFarmConfig:
    """The paper's data: AlpacaFarm's splits, AlpacaEval's 805 instructions, LLMBar Natural and the Vicuna 80.

    Split sizes are AlpacaFarm's (sft 10k, preference about 10k pairs, unlabeled 20k); the ``val`` split holds pairs
    of the preference file held out for reward-model accuracy, as AlpacaFarm's reward-model script holds out 500.
    """

    data_dir: str | None = field(
        default=None,
        metadata={"help": "Root of a local mirror of the hub files (<data_dir>/<repo>/<path in repo>, e.g. "
                  "<data_dir>/tatsu-lab/alpaca_farm/alpaca_instructions/sft.json); None reads the Hugging Face hub "
                  "through its local cache."},
    )
    preferences: Literal["simulated", "human"] = field(
        default="simulated",
        metadata={"help": "Labels of the preference split: 'simulated' (alpaca_noisy_multi_preference, AlpacaFarm's "
                  "noisy simulated annotators) or 'human' (alpaca_human_preference). The paper's PPO used kl_coef "
                  "0.0067 with simulated and 0.02 with human labels: set ppo.kl_coef to match."},
    )
    val_size: int = field(
        default=500,
        metadata={"help": "Pairs of the preference file held out as the val split (AlpacaFarm's reward-model "
                  "eval_size: 500); they are labelled like the rest, by the same annotators."},
    )
    split_seed: int = field(
        default=42, metadata={"help": "Seed of the val hold-out (AlpacaFarm's scripts use seed 42)."}
    )
    max_train_items: int | None = field(
        default=None,
        metadata={"help": "Keep at most this many items of each of sft, preference and unlabeled (None: all); for "
                  "cheaper runs. The evaluation sets are cut with eval.max_examples instead."},
    )
    bar_references: str = field(
        default=LLMBAR_PREFERRED,
        metadata={"help": "Reference outputs of the LLMBar Natural set. The paper compared with text-davinci-003, "
                  "which OpenAI retired: 'llmbar_preferred' uses the output LLMBar labels as the better one of its "
                  "pair; otherwise give an alpaca_eval outputs JSON file (instruction, output, generator) holding "
                  "one reference per LLMBar instruction, written by the generator of your choice."},
    )
    gold_judge: str = field(
        default="alpaca_farm_greedy_gpt4",
        metadata={"help": "The suite's gold (evaluation) annotator: an alpaca_eval annotator config name, or "
                  "'local:<model dir>'. 'alpaca_farm_greedy_gpt4' is the paper's; API judges need their key."},
    )

    def __post_init__(self) -> None:
        require_positive(self, "val_size", "max_train_items")
        require_that(bool(self.bar_references), self, "bar_references",
                     f"{LLMBAR_PREFERRED!r} or a path to an alpaca_eval outputs JSON file")
        require_that(self.gold_judge not in ("", "gold"), self, "gold_judge",
                     "a real judge: an alpaca_eval annotator config name or 'local:<model dir>'")
