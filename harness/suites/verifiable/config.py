"""Configuration of the ``verifiable`` suite: data splits, annotators, reference generator, and where the SmolLM2
checkpoint and the offline MMLU task are built."""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class VerifiableConfig:
    """The verifiable-instruction suite's data and annotators (SmolLM2 is its base model, MMLU its knowledge task).

    Split sizes are counts of distinct instructions. The defaults keep a win rate's standard error near 3.5 points
    on farm and bar (sqrt(0.25 / 200)); presets shrink the training splits to fit their compute budget.
    """

    world_seed: int = field(
        default=0,
        metadata={"help": "Seed of the instructions, the held-out combinations, the responses and the annotator "
                  "noise (the training seed is separate)."},
    )
    # Split sizes.
    sft_size: int = field(default=2000, metadata={"help": "Demonstrations in the sft split."})
    preference_size: int = field(default=2000, metadata={"help": "Pairs in the preference split."})
    unlabeled_size: int = field(default=500, metadata={"help": "Instructions in the unlabeled split (PPO and RLP)."})
    val_size: int = field(default=300, metadata={"help": "Gold-labelled pairs in the val split (held-out RM "
                                                 "accuracy)."})
    farm_size: int = field(default=200, metadata={"help": "Items in the in-distribution 'farm' evaluation set."})
    bar_size: int = field(
        default=200, metadata={"help": "Items in the 'bar' evaluation set (held-out constraint combinations)."}
    )
    # Which constraints instructions carry.
    max_constraints: int = field(
        default=3,
        metadata={"help": "Most constraints per instruction (2-4). Training splits draw 1 to this many; the bar set "
                  "draws exactly this many, from combinations no training split uses."},
    )
    bar_share: float = field(
        default=0.5,
        metadata={"help": "Share of the combinations of max_constraints kinds held out for the bar set (the rest "
                  "can appear in training)."},
    )
    # How the world writes responses.
    sft_pad_prob: float = field(
        default=0.1,
        metadata={"help": "Probability of filler ('Sure! Here is ...') in sft demonstrations, kept only where "
                  "the constraints allow it: every demonstration meets all its constraints."},
    )
    pair_comply_prob: float = field(
        default=0.5,
        metadata={"help": "Probability that each response of a preference/val pair respects each constraint."},
    )
    pair_pad_prob: float = field(
        default=0.4, metadata={"help": "Probability of filler in each response of a preference/val pair."}
    )
    # Annotators.
    flip_rate: float = field(
        default=0.25, metadata={"help": "Probability that the training annotator flips its label (AlpacaFarm's 25%)."}
    )
    length_bias: float = field(
        default=0.6,
        metadata={"help": "Where gold calls a tie, the probability that the training annotator prefers the output "
                  "with more words (before the flip), the superficial feature a reward model can learn."},
    )
    # The fixed reference generator of the evaluation sets.
    reference_comply_prob: float = field(
        default=0.75,
        metadata={"help": "Probability that a reference output respects each of its instruction's constraints."},
    )
    reference_pad_prob: float = field(
        default=0.1, metadata={"help": "Probability of filler in a reference output."}
    )
    # Where built assets go.
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Dir for the converted SmolLM2 checkpoint and the offline MMLU task. None: the model "
                  "cache the harness passes to base_model (the user model cache, ~/.cache/rlp-harness/models); the MMLU task goes there too."},
    )
    mmlu_fewshot: int = field(
        default=5,
        metadata={"help": "MMLU questions set aside per subject as few-shot examples (the most eval.knowledge_fewshot "
                  "can use; the paper: 5). They are taken from the test split and not scored."},
    )
    mmlu_limit_per_subject: int | None = field(
        default=None,
        metadata={"help": "Score at most this many MMLU questions per subject (a seeded subset; None: all 13,757 in "
                  "5-shot). A 135M model scores about 1-3 questions/s on 2 CPU cores."},
    )
    mmlu_subjects: tuple[str, ...] | None = field(
        default=None,
        metadata={"help": "MMLU subjects to score ('college_biology' or 'college biology'); None: all 57."},
    )
    mmlu_seed: int = field(default=0, metadata={"help": "Seed of the few-shot examples and the scored subset."})

    def __post_init__(self) -> None:
        for name in ("sft_size", "preference_size", "unlabeled_size", "val_size", "farm_size", "bar_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VerifiableConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for f in fields(self):
            if f.name.endswith(("_prob", "_rate", "_bias", "_share")) and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"VerifiableConfig.{f.name} must be a probability in [0, 1], got "
                                 f"{getattr(self, f.name)!r}")
        if not 2 <= self.max_constraints <= 4:
            raise ValueError(f"VerifiableConfig.max_constraints must be 2, 3 or 4, got {self.max_constraints!r}")
        if not 0.0 < self.bar_share < 1.0:
            raise ValueError(f"VerifiableConfig.bar_share must be strictly between 0 and 1, got {self.bar_share!r}")
        if self.mmlu_fewshot < 0:
            raise ValueError(f"VerifiableConfig.mmlu_fewshot must be >= 0, got {self.mmlu_fewshot!r}")
        if self.mmlu_subjects is not None and not self.mmlu_subjects:
            raise ValueError("VerifiableConfig.mmlu_subjects must be None (all subjects) or name at least one")
        if self.mmlu_limit_per_subject is not None and self.mmlu_limit_per_subject < 1:
            raise ValueError(f"VerifiableConfig.mmlu_limit_per_subject must be None or >= 1, got "
                             f"{self.mmlu_limit_per_subject!r}")
