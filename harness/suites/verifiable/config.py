"""Configuration of the ``verifiable`` suite: data splits, annotators, reference generator, and where the SmolLM2
checkpoint and the offline MMLU task are built."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from harness.core.schema import require_at_least, require_between, require_positive, require_probability, require_that


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
    pairs_from_policy: bool = field(
        default=True,
        metadata={"help": "Draw the preference and val pairs from the SFT policy during the run: two samples per "
                  "instruction at pair_temperature, labelled by the training annotator (preference) and gold (val), "
                  "as AlpacaFarm built its pairs, so the reward model learns the distribution PPO starts from. "
                  "False: the world's template writer writes them (pair_comply_prob, pair_pad_prob)."},
    )
    pair_temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature of the SFT policy's two outputs per preference and val instruction "
                  "(with pairs_from_policy)."},
    )
    pair_comply_prob: float = field(
        default=0.5,
        metadata={"help": "Without pairs_from_policy: probability that each response of a writer's preference/val "
                  "pair respects each constraint."},
    )
    pair_pad_prob: float = field(
        default=0.4,
        metadata={"help": "Without pairs_from_policy: probability of filler in each response of a writer's "
                  "preference/val pair."},
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
        require_positive(self, "sft_size", "preference_size", "unlabeled_size", "val_size", "farm_size", "bar_size",
                         "mmlu_limit_per_subject", "pair_temperature")
        require_probability(self, *(f.name for f in fields(self) if f.name.endswith(("_prob", "_rate", "_bias"))))
        require_between(self, 2, 4, "max_constraints")
        require_between(self, 0, 1, "bar_share", closed="()")
        require_at_least(self, 0, "mmlu_fewshot")
        require_that(self.mmlu_subjects is None or len(self.mmlu_subjects) > 0, self, "mmlu_subjects",
                     "null (all subjects) or a list naming at least one")
