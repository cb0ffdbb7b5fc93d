"""Online RLHF: the supervised counterpart of RLP, and its positive control.

Iterated RLHF (Bai et al. 2022, "online RLHF"; Llama 2's reward-model updates) labels pairs of the current
policy's outputs with the same annotators as the offline data and retrains the reward model on both. Here, one
round, built to share every stage RLP shares, so the two differ only in where the new pairs' labels come from:

1. PPO from the SFT model against the reward model r (shared, cached stages).
2. The policy sample set P of that PPO policy: n samples per unlabeled instruction (the stage RLP-UML and RLP-SPG
   read, :meth:`RunContext.policy_samples`).
3. Pairs of two different samples of the same instruction (:func:`online_pairs`), labelled by the suite's
   *training annotator*, the noisy labeller of the preference split (25% flips in the synthetic worlds; where gold
   calls a tie it decides as it always does, by length or a coin).
4. The reward model retrained on the preference split plus these pairs, as RLP-SPG retrains it
   (:meth:`RunContext.reward_model` with ``extra_pairs``).
5. A second PPO from the SFT model against it, with the run's PPO config.

If this method does not beat PPO, no method that learns the reward on the policy's samples from weaker signals
(RLP's) can be expected to: ``online_rlhf - PPO`` is the headroom RLP's question is asked against.

``online_rlhf_gold`` (:class:`OnlineRLHFGold`) labels the same pairs with the noise-free gold judge instead and drops
the pairs gold calls a tie (they carry no signal). No annotator budget buys that, so it is a diagnostic rather than
a method: the ceiling of what labels on the policy's samples can teach this reward model. Its reward model's
accuracy on held-out pairs of the first PPO policy (the mechanism check) says whether the world lets a reward model
learn to rank the policy's outputs at all (if even gold labels cannot, there is no headroom to find), and the gap
between the two controls separates label noise from the reward model's capacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from harness.core.schema import require_positive
from harness.core.types import Preference, Refinement, TrainedPolicy
from harness.suites.annotators import labelled_pairs
from methods.base import RunContext
from methods.refinement import length_shares, score_spread_ratio, share_of_reward_data


@dataclass
class OnlineRLHFConfig:
    """Settings of online RLHF (the ``online_rlhf`` section of a run config)."""

    pairs_per_instruction: int = field(
        default=1,
        metadata={"help": "Pairs taken from each instruction's policy samples: disjoint pairs of samples whose "
                  "texts differ, in sample order (the first sample with the first later one that differs, then "
                  "the same among the samples left), fewer where they run out. 1 gives one pair per instruction, "
                  "as the preference split has; n / 2 uses every sample once."},
    )
    gold_check: bool = field(
        default=True,
        metadata={"help": "Also judge the new pairs with the gold judge, to record how often the training "
                  "annotator's labels agree with it and how many pairs gold calls a tie (no signal). Costs one "
                  "gold judgement per pair (an API call where gold is an API judge); trains nothing."},
    )

    def __post_init__(self):
        require_positive(self, "pairs_per_instruction")


def online_pairs(instructions: Sequence[str], samples: Sequence[Sequence[str]],
                 pairs_per_instruction: int) -> list[tuple[str, str, str]]:
    """Up to ``pairs_per_instruction`` disjoint pairs of different samples per instruction, in sample order.

    Each pair is the first unused sample and the first later unused one whose text differs from it after stripping
    surrounding whitespace; a sample with no different partner left is passed over. Samples are i.i.d. draws of the
    policy, so taking them in order is as good as drawing at random, and needs no seed. Identical texts are never
    paired: gold would call them a tie and the annotator's label would carry nothing but its tie-break.

    Args:
        instructions: the unlabeled instructions.
        samples: the policy's samples, one list per instruction.
        pairs_per_instruction: the most pairs one instruction gives.

    Returns:
        (instruction, output_1, output_2) triples, in the order of ``instructions``.

    Raises:
        ValueError: the two sequences differ in length, or ``pairs_per_instruction`` is below 1.
    """
    if len(instructions) != len(samples):
        raise ValueError(f"instructions and samples must have the same length, got {len(instructions)} and "
                         f"{len(samples)}")
    if pairs_per_instruction < 1:
        raise ValueError(f"pairs_per_instruction: got {pairs_per_instruction!r}; allowed: a number >= 1")
    triples = []
    for instruction, outputs in zip(instructions, samples):
        unused, made = list(outputs), 0
        while unused and made < pairs_per_instruction:
            first = unused.pop(0)
            partner = next((i for i, other in enumerate(unused) if other.strip() != first.strip()), None)
            if partner is not None:
                triples.append((instruction, first, unused.pop(partner)))
                made += 1
    return triples


class OnlineRLHF:
    """Online RLHF behind the common method interface: fresh training-annotator labels on the first PPO policy's
    samples, the reward model retrained on D plus them, PPO again from SFT."""

    name = "online_rlhf"
    config_section = "online_rlhf"
    config_class = OnlineRLHFConfig
    gold_labels = False  # who labels the new pairs: the training annotator here, gold in OnlineRLHFGold

    def train(self, ctx: RunContext) -> TrainedPolicy:
        from datasets import Dataset

        from harness.trainers.clustering import pair_accuracy

        cfg: OnlineRLHFConfig = ctx.config.options[self.config_section]
        sft = ctx.sft()
        first = ctx.ppo(sft, ctx.reward_model())
        instructions, samples = ctx.policy_samples(first.policy)
        triples = online_pairs(instructions, samples, cfg.pairs_per_instruction)
        columns = [list(column) for column in zip(*triples)] or [[], [], []]
        annotator = ctx.suite.gold_annotator() if self.gold_labels else ctx.suite.training_annotator()
        rows = labelled_pairs(annotator, *columns)
        if self.gold_labels:
            rows = [row for row in rows if row["preference"] != Preference.TIE]
            columns = [[row[key] for row in rows] for key in ("instruction", "output_1", "output_2")]
        labels = [row["preference"] for row in rows]
        ctx.log(f"{self.name}: {len(rows)} pairs from {len(instructions)} instructions, labelled by "
                + ("gold (ties dropped)" if self.gold_labels else "the training annotator"))
        diagnostics = {"n_instructions": len(instructions), "n_pairs": len(rows),
                       "share_of_reward_data": share_of_reward_data(ctx, len(rows)),
                       **length_shares({"output_1": columns[1], "output_2": columns[2], "preference": labels})}
        if cfg.gold_check:
            gold = labels if self.gold_labels else ctx.suite.gold_annotator().annotate(*columns)  # judged once
            agreement = pair_accuracy(labels, gold)
            diagnostics["gold_agreement"] = agreement
            diagnostics["gold_tie_share"] = agreement["n_ties"] / len(rows) if rows else None
        refined = ctx.reward_model(extra_pairs=Dataset.from_list(rows) if rows else None)
        second = ctx.ppo(sft, refined)
        diagnostics["score_spread_vs_r"] = score_spread_ratio(first, second)
        return TrainedPolicy(method=self.name, policy=second.policy, reward_model=refined, ppo=second,
                             refinement=Refinement(first.policy, frozenset(instructions)), diagnostics=diagnostics)


class OnlineRLHFGold(OnlineRLHF):
    """The same pairs labelled by gold, its ties dropped: the ceiling of on-policy labels, a diagnostic (see the
    module docstring). Its own ``online_rlhf_gold`` section, so a preset can give it more pairs than the control."""

    name = "online_rlhf_gold"
    config_section = "online_rlhf_gold"
    gold_labels = True
