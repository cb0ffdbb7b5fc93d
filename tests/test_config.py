"""Presets load strictly: every shipped preset validates, and bad input names the field and what is allowed.

Every bad value is refused in one line of one form, ``section.field: what is wrong; allowed: ...``, prefixed by the
preset file or the ``--set`` argument that gave it.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import pytest

from harness.config import RunConfig, config_fields, describe_fields, load_preset
from harness.core.errors import ConfigError
from harness.registry import PRESETS, SUITES

# Each shipped preset's to_dict() as the preset files gave it before they stated only what differs from the defaults
# and smollm2-gpu derived from smollm2 (written once from that commit; the suite section expanded to every field,
# spg.gamma under its new name, confidence_threshold; the truncation_rule fields added with their default). The
# smollm2 entries were rewritten when that preset was recalibrated (bf16, every method, truncation_rule: add).
PRESET_CONFIGS = json.loads((Path(__file__).parent / "data" / "preset_configs.json").read_text())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_shipped_preset_loads(name):
    config = load_preset(PRESETS[name])
    assert isinstance(config, RunConfig) and config.preset == name
    assert PRESETS[name].read_text().startswith("# python -m harness.run"), "presets open with their command"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_loads_to_the_config_it_had_before_it_was_shortened(name):
    config = json.loads(json.dumps(load_preset(PRESETS[name]).to_dict()))  # tuples as lists, as the JSON has them
    assert config == PRESET_CONFIGS[name]


def test_the_gpu_preset_derives_from_the_cpu_one():
    text = PRESETS["smollm2-gpu"].read_text()
    assert "\nbase: smollm2\n" in text and "sft_size: 2000" in text
    gpu, cpu = load_preset(PRESETS["smollm2-gpu"]), load_preset(PRESETS["smollm2"])
    assert gpu.options["spg"].equivalence == cpu.options["spg"].equivalence == "embedding"  # stated in smollm2 only
    assert gpu.suite.options.mmlu_subjects is None and cpu.suite.options.mmlu_subjects  # set back to the default


def test_overrides_reach_the_typed_config():
    config = load_preset(PRESETS["tiny"], ["ppo.kl_coef=0.25", "eval.greedy=true", "suite.flip_rate=0.1"])
    assert config.ppo.kl_coef == 0.25 and config.eval.greedy is True
    assert config.suite.name == "tiny" and config.suite.options.flip_rate == 0.1


def test_the_suite_section_is_built_once_typed_and_given_to_the_suite():
    from harness.registry import make_suite
    from harness.suites.tiny.config import TinyWorldConfig

    config = load_preset(PRESETS["tiny"], ["suite.farm_size=12"])
    assert isinstance(config.suite.options, TinyWorldConfig) and config.suite.options.farm_size == 12
    assert make_suite(config.suite.name, config.suite.options).config is config.suite.options
    assert config.to_dict()["suite"] == {"name": "tiny", **dataclasses.asdict(config.suite.options)}


def test_an_unquoted_no_is_the_choice_no_not_a_boolean():
    # YAML 1.1 reads `no` as False; where "no" is one of a field's choices, the user meant it
    config = load_preset(PRESETS["tiny"], ["runtime.mixed_precision=no"])
    assert config.runtime.mixed_precision == "no"


# One bad value per validator of every section (and of each suite's options), with the exact line it gets.
BAD_VALUES = [
    # runtime, model, generation
    ("runtime.torch_threads=0", "runtime.torch_threads: got 0; allowed: a number > 0 or null"),
    ("runtime.mixed_precision=fp8", "runtime.mixed_precision: got 'fp8'; allowed: 'auto', 'no', 'bf16', 'fp16'"),
    ("model.trust_remote_code=1", "model.trust_remote_code: got 1; allowed: true or false"),
    ("model.base=[a]", "model.base: got ['a']; allowed: a string"),
    ("generation.backend=tpu", "generation.backend: got 'tpu'; allowed: 'hf', 'vllm'"),
    ("generation.batch_size=0", "generation.batch_size: got 0; allowed: a number > 0"),
    ("generation.max_new_tokens=2.5", "generation.max_new_tokens: got 2.5; allowed: an integer"),
    # the shared stages' trainers
    ("sft.learning_rate=0", "sft.learning_rate: got 0.0; allowed: a number > 0"),
    ("sft.warmup_ratio=1", "sft.warmup_ratio: got 1.0; allowed: a number in [0, 1)"),
    ("reward.max_length=0", "reward.max_length: got 0; allowed: a number > 0"),
    ("ppo.num_steps=0", "ppo.num_steps: got 0; allowed: a number > 0"),
    ("ppo.kl_coef=-1", "ppo.kl_coef: got -1.0; allowed: a number >= 0"),
    ("ppo.gamma=1.5", "ppo.gamma: got 1.5; allowed: a number in [0, 1]"),
    ("ppo.minibatch_size=48", "ppo.minibatch_size: got 48; allowed: a divisor of rollout_batch_size (64)"),
    ("ppo.learning_rate=high", "ppo.learning_rate: got 'high'; allowed: a number"),
    ("ppo.clip_range=.nan", "ppo.clip_range: got nan; allowed: a finite number"),
    ("ppo.whiten_rewards=2", "ppo.whiten_rewards: got 2; allowed: true or false"),
    # policy samples and evaluation
    ("policy_samples.n=0", "policy_samples.n: got 0; allowed: a number > 0"),
    ("policy_samples.max_instructions=0", "policy_samples.max_instructions: got 0; allowed: a number > 0 or null"),
    ("eval.temperature=-0.5", "eval.temperature: got -0.5; allowed: a number >= 0"),
    ("eval.overoptimisation_max_n=48", "eval.overoptimisation_max_n: got 48; allowed: a power of 2"),
    ("eval.overoptimisation_ppo_kl_coef=-1", "eval.overoptimisation_ppo_kl_coef: got -1.0; allowed: a number >= 0 "
                                             "or null"),
    ("eval.max_examples=ten", "eval.max_examples: got 'ten'; allowed: an integer or null"),
    # the methods' own sections
    ("best_of_n.n=0", "best_of_n.n: got 0; allowed: a number > 0"),
    ("uml.weight=0", "uml.weight: got 0.0; allowed: a number > 0"),
    ("uml.skl_weight=-1", "uml.skl_weight: got -1.0; allowed: a number >= 0"),
    ("uml.batch_size=1", "uml.batch_size: got 1; allowed: a number >= 2"),
    ("uml.estimator=mine", "uml.estimator: got 'mine'; allowed: 'jsd', 'infonce'"),
    ("spg.confidence_threshold=1.5", "spg.confidence_threshold: got 1.5; allowed: a number in [0, 1]"),
    ("spg.equivalence=cosine", "spg.equivalence: got 'cosine'; allowed: 'exact', 'embedding', 'nli'"),
    ("spg.equivalence=nli", "spg.nli_model_dir: got None; allowed: an NLI checkpoint dir, which equivalence ('nli') needs"),
    ("spg.embedding_threshold=2", "spg.embedding_threshold: got 2.0; allowed: a number in [-1, 1]"),
    ("spg.cluster_chunk_size=0", "spg.cluster_chunk_size: got 0; allowed: a number > 0"),
    ("spg.accuracy_annotators=[gold, human]", "spg.accuracy_annotators[1]: got 'human'; allowed: 'gold', "
                                              "'training'"),
    # the tiny suite and its base model
    ("suite.name=nosuch", "suite.name: got 'nosuch'; allowed: 'tiny', 'verifiable', 'alpacafarm'"),
    ("suite.sft_size=-1", "suite.sft_size: got -1; allowed: a number > 0"),
    ("suite.flip_rate=2", "suite.flip_rate: got 2.0; allowed: a number in [0, 1]"),
    ("suite.base_model.steps=0", "suite.base_model.steps: got 0; allowed: a number > 0"),
    ("suite.base_model.num_heads=3", "suite.base_model.hidden_size: got 128; allowed: a multiple of num_heads (3)"),
    ("suite.base_model.processes=3", "suite.base_model.batch_size: got 32; allowed: a multiple of processes (3)"),
    ("suite.base_model.warmup_steps=-1", "suite.base_model.warmup_steps: got -1; allowed: a number >= 0"),
    ("suite.base_model.warmup_steps=1200", "suite.base_model.warmup_steps: got 1200; allowed: a number below steps "
                                           "(1200)"),
    ("suite.base_model.seq_len=256", "suite.base_model.seq_len: got 256; allowed: at most max_position_embeddings "
                                     "(128)"),
    ("suite.base_model.qa_pad_prob=-0.1", "suite.base_model.qa_pad_prob: got -0.1; allowed: a number in [0, 1]"),
    # the verifiable suite
    ("suite.name=verifiable; suite.max_constraints=5", "suite.max_constraints: got 5; allowed: a number in [2, 4]"),
    ("suite.name=verifiable; suite.bar_share=1", "suite.bar_share: got 1.0; allowed: a number in (0, 1)"),
    ("suite.name=verifiable; suite.val_size=0", "suite.val_size: got 0; allowed: a number > 0"),
    ("suite.name=verifiable; suite.length_bias=1.5", "suite.length_bias: got 1.5; allowed: a number in [0, 1]"),
    ("suite.name=verifiable; suite.mmlu_fewshot=-1", "suite.mmlu_fewshot: got -1; allowed: a number >= 0"),
    ("suite.name=verifiable; suite.mmlu_subjects=[]", "suite.mmlu_subjects: got (); allowed: null (all subjects) or a "
                                                     "list naming at least one"),
    ("suite.name=verifiable; suite.mmlu_limit_per_subject=0", "suite.mmlu_limit_per_subject: got 0; allowed: a number "
                                                             "> 0 or null"),
    # the alpacafarm suite
    ("suite.name=alpacafarm; suite.preferences=crowd", "suite.preferences: got 'crowd'; allowed: 'simulated', "
                                                      "'human'"),
    ("suite.name=alpacafarm; suite.max_train_items=0", "suite.max_train_items: got 0; allowed: a number > 0 or null"),
    ("suite.name=alpacafarm; suite.bar_references=''", "suite.bar_references: got ''; allowed: 'llmbar_preferred' or "
                                                      "a path to an alpaca_eval outputs JSON file"),
    ("suite.name=alpacafarm; suite.gold_judge=gold", "suite.gold_judge: got 'gold'; allowed: a real judge: an "
                                                    "alpaca_eval annotator config name or 'local:<model dir>'"),
]


@pytest.mark.parametrize("overrides, message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_a_bad_value_of_any_section_is_one_line_naming_field_and_allowed(overrides, message):
    *first, last = overrides.split("; ")
    with pytest.raises(ConfigError) as err:
        load_preset(PRESETS["tiny"], [*first, last])
    assert str(err.value) == f"--set {last}: {message}"


def test_options_built_in_code_get_the_same_form():
    from harness.evals.mmlu import KnowledgeEvalConfig
    from harness.leaderboard import ToleranceRule

    cases = [
        (lambda: KnowledgeEvalConfig(task=""), "task: got ''; allowed: an lm-eval task or group name"),
        (lambda: KnowledgeEvalConfig(num_fewshot=-1), "num_fewshot: got -1; allowed: a number >= 0"),
        (lambda: KnowledgeEvalConfig(limit=0), "limit: got 0; allowed: a number > 0 or null"),
        (lambda: ToleranceRule(floor=-1.0), "floor: got -1.0; allowed: a number in [0, inf)"),
        (lambda: ToleranceRule(floor=5.0, cap=1.0), "cap: got 1.0; allowed: null or at least floor (5.0)"),
    ]
    for make, message in cases:
        with pytest.raises(ConfigError) as err:
            make()
        assert str(err.value) == message


@pytest.mark.parametrize(
    "override, message",
    [
        ("ppo.bogus=1", "--set ppo.bogus=1: unknown field ppo.bogus (python -m harness.run --list-fields lists them)"),
        ("ppo.kl_coeff=1", "--set ppo.kl_coeff=1: unknown field ppo.kl_coeff; did you mean ppo.kl_coef?"),
        ("spg.gamma=0.5", "--set spg.gamma=0.5: unknown field spg.gamma (python -m harness.run --list-fields lists them)"),
        ("suite.base_model.hiden_size=8", "did you mean suite.base_model.hidden_size?"),
        ("ppo.rollout_batch_size=30", "--set ppo.rollout_batch_size=30: ppo.minibatch_size: got 16; allowed: a divisor "
                                      "of rollout_batch_size (30)"),
        ("nosuchsection.x=1", "--set nosuchsection.x=1: unknown field nosuchsection.x"),
        ("ppo.kl_coef", "expected section.field=value"),
    ],
)
def test_bad_overrides_fail_with_one_line_naming_set(override, message):
    with pytest.raises(ConfigError) as err:
        load_preset(PRESETS["tiny"], [override])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "tiny.yaml" not in str(err.value), "an error in --set is not the preset file's"


def test_a_bad_preset_file_is_still_blamed_on_the_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(PRESETS["tiny"].read_text().replace("kl_coef:", "kl_coeff:"))
    with pytest.raises(ConfigError, match=r"mine\.yaml: ppo\.kl_coeff: unknown field"):
        load_preset(path, ["ppo.num_steps=3"])


def test_every_field_is_listed_with_type_value_and_help():
    listing = describe_fields(load_preset(PRESETS["tiny"], ["ppo.kl_coef=0.25"])).splitlines()
    rows = {line.split()[0]: line for line in listing}
    assert len(rows) == len(listing), "one line per field"
    assert rows["ppo.kl_coef"].split()[1:3] == ["float", "0.25"] and "KL penalty" in rows["ppo.kl_coef"]
    assert "'hf' | 'vllm'" in rows["generation.backend"] and "int | None" in rows["runtime.torch_threads"]
    assert rows["suite.sft_size"].split()[1:3] == ["int", "2000"]
    assert {"suite.base_model.hidden_size", "eval.judge", "spg.confidence_threshold"} <= rows.keys()


def test_invalid_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("preset: tiny\nsuite: {name: tiny\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line"):
        load_preset(path)


def test_yaml_is_never_evaluated_as_code(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("preset: !!python/object/apply:os.system ['echo pwned']\nsuite: {name: tiny}\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_preset(path)


# -- base presets -------------------------------------------------------------------------------------------------

def test_a_preset_with_a_base_is_that_preset_with_its_own_values_laid_over(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: tiny\npreset: mine\nppo: {num_steps: 3}\nspg: {accuracy_annotators: [gold]}\n")
    mine, tiny = load_preset(path, ["eval.greedy=true"]).to_dict(), load_preset(PRESETS["tiny"]).to_dict()
    assert mine["ppo"] == {**tiny["ppo"], "num_steps": 3}, "sections merge field by field"
    assert mine["spg"]["accuracy_annotators"] == ("gold",), "a list replaces the base's"
    assert mine["eval"]["greedy"] is True and mine["runtime"] == tiny["runtime"]
    assert {**mine, "preset": "tiny", "ppo": tiny["ppo"], "spg": tiny["spg"], "eval": tiny["eval"]} == tiny


def test_a_preset_with_a_base_names_itself(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: tiny\nppo: {num_steps: 3}\n")
    with pytest.raises(ConfigError) as err:
        load_preset(path)
    assert str(err.value) == f"{path}: preset: missing; allowed: a name of its own (a preset with a base names itself)"


def test_an_unknown_base_is_one_line_with_the_presets(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("base: tinyy\npreset: mine\n")
    with pytest.raises(ConfigError) as err:
        load_preset(path)
    assert str(err.value) == f"{path}: base: got 'tinyy'; allowed: 'tiny', 'smollm2', 'smollm2-gpu', 'alpacafarm'"


def test_a_cycle_of_bases_is_one_line(tmp_path, monkeypatch):
    for name, base in (("first", "second"), ("second", "first"), ("itself", "itself")):
        (tmp_path / f"{name}.yaml").write_text(f"base: {base}\npreset: {name}\nsuite: {{name: tiny}}\n")
        monkeypatch.setitem(PRESETS, name, tmp_path / f"{name}.yaml")
    with pytest.raises(ConfigError) as err:
        load_preset(PRESETS["first"])
    assert str(err.value) == (f"{tmp_path / 'second.yaml'}: base: got 'first', a cycle (first -> second -> first); "
                              "allowed: a preset that does not derive from this one")
    with pytest.raises(ConfigError, match=r"itself.yaml: base: got 'itself', a cycle \(itself -> itself\)"):
        load_preset(PRESETS["itself"])


# -- field names --------------------------------------------------------------------------------------------------

# Field names that more than one section uses, each with the one meaning it has in all of them. A name that a new
# section shares with a different meaning (as spg.gamma, a confidence threshold, once did with ppo.gamma, a
# discount) belongs under a name of its own instead.
SHARED_NAMES = {
    "batch_size": "how many items one step or forward pass of that section's work takes",
    "learning_rate": "the peak learning rate of that section's optimiser",
    "epochs": "passes over that section's training data",
    "max_length": "tokens a training sequence is cut to",
    "max_new_tokens": "the longest response generated, in tokens",
    "temperature": "the sampling temperature of that section's generation",
    "n": "samples drawn per instruction",
    "beta": "the weight of the KL to the SFT reference policy (DPO's and GRPO's name for it; PPO's kl_coef)",
    "num_steps": "optimiser steps of that section's RL loop (PPO, GRPO), one fresh batch of samples each",
    "truncation_penalty": "the penalty of a response cut off before eos",
    "truncation_rule": "how a response cut off before eos is scored: the penalty instead of, or added to, its score",
    "save_every": "steps between the policy checkpoints saved for the drift metric",
    # online_rlhf and online_rlhf_gold share one options class: the same pairs, labelled by another annotator
    "pairs_per_instruction": "pairs taken from each instruction's policy samples",
    "gold_check": "whether the new pairs are also judged by gold to measure the labels' agreement",
}


def test_a_field_name_shared_by_sections_has_one_meaning():
    sections = defaultdict(set)
    for suite in SUITES:
        for name, _, _ in config_fields(suite):
            section, _, leaf = name.rpartition(".")
            sections[leaf].add(section)
    shared = {leaf for leaf, where in sections.items() if len(where) > 1}
    assert shared == set(SHARED_NAMES), "review a new shared name: same meaning (list it above) or rename it"
