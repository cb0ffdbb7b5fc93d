"""The benchmarks' own arithmetic and bookkeeping; the benchmarks themselves are run by hand (docs/performance.md)."""

from __future__ import annotations

import cProfile
import pstats
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import torch

from benchmarks.common import (
    cpu_model,
    interleaved,
    is_generation_stage,
    mean_and_standard_error,
    paired_ratios,
    parse_config,
    spread,
    stage_seconds,
)
from benchmarks.ppo_vs_trl import PPOBenchConfig, ppo_config
from benchmarks.profile_run import Kind, stage_table, time_by_kind
from benchmarks.sampling import (
    SamplingBenchConfig,
    flops_per_token,
    generation_share,
    linear_shapes,
    matmul_rate,
    summary,
)
from benchmarks.stage_sharing import StageSharingBenchConfig, trained_stages
from harness.core.schema import require_positive

# A run that built sft (10 s), reward (20 s), ppo (40 s), eval_farm (4 s), policy_samples (16 s) and reused sft and
# reward later (their entries repeat the first build time but cost the run nothing).
STAGES = [
    {"seed": 0, "stage": "sft", "path": "sft-a", "reused": False, "build_wall_s": 10.0},
    {"seed": 0, "stage": "reward", "path": "reward-a", "reused": False, "build_wall_s": 20.0},
    {"seed": 0, "stage": "ppo", "path": "ppo-a", "reused": False, "build_wall_s": 40.0},
    {"seed": 0, "stage": "eval_farm", "path": "eval_farm-a", "reused": False, "build_wall_s": 4.0},
    {"seed": 0, "stage": "sft", "path": "sft-a", "reused": True, "build_wall_s": 10.0},
    {"seed": 0, "stage": "reward", "path": "reward-a", "reused": True, "build_wall_s": 20.0},
    {"seed": 0, "stage": "policy_samples", "path": "policy_samples-a", "reused": False, "build_wall_s": 16.0},
]


def test_cpu_model_is_read_from_cpuinfo():
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n"
    assert cpu_model(text) == "Intel(R) Xeon(R) Processor"
    assert cpu_model("processor\t: 0\n") == "unknown"


def test_interleaved_alternates_the_order_every_round():
    calls = []
    results = interleaved({"a": lambda r: calls.append(("a", r)) or 10 + r,
                           "b": lambda r: calls.append(("b", r)) or 20 + r}, repeats=3)
    # rounds: a b | b a | a b, so neither candidate always runs first
    assert calls == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]
    assert results == {"a": [10, 11, 12], "b": [20, 21, 22]}
    with pytest.raises(ValueError, match="repeats"):
        interleaved({"a": lambda r: 0}, repeats=0)


def test_paired_ratios_divide_round_by_round():
    # 30/20 = 1.5, 20/40 = 0.5, 9/3 = 3
    assert paired_ratios([30, 20, 9], [20, 40, 3]) == [1.5, 0.5, 3.0]
    with pytest.raises(ValueError, match="2 numerators but 1"):
        paired_ratios([1, 2], [1])
    with pytest.raises(ValueError, match="zero"):
        paired_ratios([1], [0])


def test_mean_and_standard_error_by_hand():
    # 1, 2, 3, 6: mean 3; squared deviations 4 + 1 + 0 + 9 = 14; sample variance 14 / 3; se = sqrt(14 / 3) / 2
    mean, error = mean_and_standard_error([1, 2, 3, 6])
    assert mean == 3 and error == pytest.approx((14 / 3) ** 0.5 / 2)
    with pytest.raises(ValueError, match="at least 2 values"):
        mean_and_standard_error([1.0])


def test_spread_prints_the_median_and_range():
    # sorted 1, 2, 10: median 2
    assert spread([10, 1, 2]) == "2 (min 1, max 10, n=3)"


def test_stage_seconds_counts_only_stages_the_run_built():
    # sft 10 and reward 20 once each: the reused entries cost nothing
    assert stage_seconds(STAGES) == {"sft": 10.0, "reward": 20.0, "ppo": 40.0, "eval_farm": 4.0,
                                     "policy_samples": 16.0}


def test_generation_stages_are_the_text_only_ones():
    for name in ("policy_samples", "eval_farm", "eval_bar", "drift_samples", "proxy_samples"):
        assert is_generation_stage(name), name
    for name in ("ppo", "sft", "reward", "drift", "winrate_farm", "knowledge", "policy_samples_x"):
        assert not is_generation_stage(name), name


def test_generation_share_splits_the_built_time():
    # generation: eval_farm 4 + policy_samples 16 = 20 of 10 + 20 + 40 + 4 + 16 = 90 -> 2/9
    share = generation_share(STAGES)
    assert share["generation_s"] == 20.0 and share["other_s"] == 70.0
    assert share["share"] == pytest.approx(2 / 9)
    with pytest.raises(ValueError, match="reused"):
        generation_share([dict(s, reused=True) for s in STAGES])


def test_a_tokens_arithmetic_is_two_flops_per_weight_of_every_linear_layer():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    shapes = linear_shapes(model)
    # q, k, v, o: 8x8 each; gate and up 8x16, down 16x8; the head 8x10 (the embedding is a lookup, not a matmul)
    assert sorted(shapes) == sorted([(8, 8)] * 4 + [(8, 16), (8, 16), (16, 8), (8, 10)])
    # 2 x (4 x 64 + 3 x 128 + 80) = 2 x 720
    assert flops_per_token(shapes) == 1440


def test_matmul_rate_times_the_step_shapes():
    rate = matmul_rate([(32, 64), (64, 32)], rows=16, dtype=torch.float32, seconds=0.05)
    assert 1e6 < rate < 1e14  # FLOP/s: a number a CPU can reach, whatever the load


def test_sampling_summary_prints_the_speed_up_and_the_roofline_share():
    def rounds(tokens_per_s: list[float]) -> list[dict]:
        return [{"tokens_per_s": t, "samples_per_s": t / 10} for t in tokens_per_s]

    figures = {"samplers": {
        "generation": {"batch_size": 128}, "flops_per_token": 2_000_000,
        "rounds": {"harness": rounds([9000, 12000]), "generate": rounds([3000, 3000]),
                   "roofline": [{"flop_per_s": 4e10, "tokens_per_s": 20000},
                                {"flop_per_s": 5e10, "tokens_per_s": 25000}]},
        "speedup_tokens_per_s": [3.0, 4.0], "roofline_share": [0.45, 0.48]}}
    lines = summary(figures).splitlines()
    assert lines[0].startswith("harness") and "tokens/s 1.05e+04 (min 9e+03, max 1.2e+04, n=2)" in lines[0]
    assert lines[2] == "speed-up harness / generate (tokens/s, per round): 3.5 (min 3, max 4, n=2)"
    # 4e10 and 5e10 FLOP/s over 2 MFLOP a token: 20k and 25k tokens/s
    assert "45 (min 40, max 50, n=2) GFLOP/s; 2.00 MFLOP a token" in lines[3] and "128 rows" in lines[3]
    assert lines[4] == "harness share of the roofline (per round): 0.465 (min 0.45, max 0.48, n=2)"


def test_stage_table_adds_the_time_outside_stages():
    # 90 s of stages in a 100 s run: ppo 40 s is 40%, and 10 s (10%) went elsewhere
    rows = stage_table({"wall_s": 100.0, "stages": STAGES})
    assert rows[0] == ("ppo", 40.0, 0.4)
    assert rows[-1] == ("(outside stages)", pytest.approx(10.0), pytest.approx(0.1))
    assert [name for name, _, _ in rows[:-1]] == ["ppo", "reward", "policy_samples", "sft", "eval_farm"]


def _inner(n: int) -> int:
    return sum(i * i for i in range(n))


def _outer(n: int) -> int:
    return _inner(n) + _inner(n)


def test_time_by_kind_reads_cumulative_time_of_named_functions():
    profiler = cProfile.Profile()
    profiler.runcall(_outer, 200_000)
    stats = pstats.Stats(profiler)
    here = Path(__file__).name
    kinds = (Kind("outer", "_outer", here), Kind("inner", "_inner", here), Kind("absent", "_nothing", here))
    seconds = time_by_kind(stats, kinds)
    # _outer's cumulative time contains both _inner calls; a kind nothing matches takes no time
    assert seconds["outer"] >= seconds["inner"] > 0
    assert seconds["absent"] == 0.0


def test_trained_stages_counts_training_lines(tmp_path):
    (tmp_path / "run.log").write_text(
        "[10:00:00] stage sft              training sft-a\n"
        "[10:00:09] stage sft              done     sft-a in 9.0s\n"
        "[10:00:09] stage sft              reused   sft-a\n"
        "[10:00:09] stage reward           training reward-a\n"
        "10:00:09 transformers.modeling_utils WARNING: LlamaForSequenceClassification LOAD REPORT\n"
        "- MISSING:\tthose params were newly initialized. Consider training on your downstream task.\n"
    )
    assert trained_stages(tmp_path) == 2


@dataclass
class _Demo:
    steps: int = field(default=3, metadata={"help": "Steps."})
    rate: float = field(default=0.5, metadata={"help": "A rate."})
    quick: bool = field(default=False, metadata={"help": "Be quick."})
    names: tuple[str, ...] = field(default=("a",), metadata={"help": "Names."})
    where: Path | None = field(default=None, metadata={"help": "A path."})
    mode: Literal["fast", "slow"] = field(default="fast", metadata={"help": "A choice."})

    def __post_init__(self) -> None:
        require_positive(self, "steps", "rate")


def test_parse_config_builds_the_dataclass_from_flags():
    assert parse_config(_Demo, [], "demo", "") == _Demo()
    parsed = parse_config(_Demo, ["--steps", "7", "--quick", "--names", "x", "y", "--where", "out", "--mode", "slow"],
                          "demo", "")
    assert parsed == _Demo(steps=7, quick=True, names=("x", "y"), where=Path("out"), mode="slow")


def test_parse_config_rejects_bad_values_with_the_field_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(_Demo, ["--rate", "-1"], "demo", "")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith("error: --rate: got -1.0; allowed: a number > 0\n")
    with pytest.raises(SystemExit):
        parse_config(_Demo, ["--mode", "quick"], "demo", "")
    assert "argument --mode: invalid choice: 'quick' (choose from 'fast', 'slow')" in capsys.readouterr().err


def test_benchmark_configs_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"^n: got 0; allowed: a number > 0$"):
        SamplingBenchConfig(n=0)
    with pytest.raises(ValueError, match=r"^mixed_precision: got 'auto'; allowed: 'no', 'bf16', 'fp16'$"):
        SamplingBenchConfig(mixed_precision="auto")
    with pytest.raises(ValueError, match=r"^run: got .*; allowed: the dir of a finished harness.run \(with a "
                                         r"results.json\) or null$"):
        SamplingBenchConfig(run=tmp_path)
    with pytest.raises(ValueError, match=r"^overrides: got \('ppo.num_steps',\); allowed: section.field=value items$"):
        StageSharingBenchConfig(overrides=("ppo.num_steps",))


def test_ppo_benchmark_runs_our_ppo_with_its_sizes():
    with pytest.raises(ValueError, match=r"^minibatch_size: got 12; allowed: a divisor of rollout_batch_size \(32\)$"):
        PPOBenchConfig(minibatch_size=12)
    cfg = ppo_config(PPOBenchConfig(steps=4, max_new_tokens=16))
    # save_every = steps: ours saves one checkpoint (the last step) besides the final policy, the least it can
    assert (cfg.num_steps, cfg.save_every, cfg.rollout_batch_size, cfg.max_new_tokens) == (4, 4, 32, 16)


def test_random_models_copy_the_architecture_and_are_reproducible(tmp_path):
    from tokenizers import Tokenizer, models
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, LlamaConfig,
                              PreTrainedTokenizerFast)

    from benchmarks.random_models import build_random_models

    like = tmp_path / "like"  # only config.json and the tokenizer, as for a model whose weights are elsewhere
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", "a", "b"])}
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                            pad_token="<pad>", eos_token="<eos>", unk_token="<unk>").save_pretrained(like)
    LlamaConfig(vocab_size=5, hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2).save_pretrained(like)

    policy, reward = build_random_models(like, tmp_path / "a", seed=3)
    again, _ = build_random_models(like, tmp_path / "b", seed=3)
    causal = AutoModelForCausalLM.from_pretrained(policy)
    assert causal.config.num_hidden_layers == 3 and causal.config.pad_token_id == 0  # from the tokenizer
    scorer = AutoModelForSequenceClassification.from_pretrained(reward)
    assert scorer.score.out_features == 1 and (reward / "tokenizer.json").is_file()
    same = AutoModelForCausalLM.from_pretrained(again)
    assert all(torch.equal(p, q) for p, q in zip(causal.parameters(), same.parameters()))


def test_cpu_precision_summary_prints_each_kind_with_its_per_round_ratio(tmp_path):
    from benchmarks.cpu_precision import PrecisionBenchConfig, summary

    figures = {"config": {"torch_threads": 2, "batch": 8, "tokens": 128, "new_tokens": 48},
               "train_step": {"float32": [6.0, 4.0], "bf16": [3.0, 2.5], "float32_over_bf16": [2.0, 1.6]},
               "sampling": {"float32": [8.0, 7.0], "bf16": [4.0, 3.5], "float32_over_bf16": [2.0, 2.0]}}
    lines = summary(figures).splitlines()
    assert lines[1].startswith("train_step") and "float32/bf16 1.8 (min 1.6, max 2, n=2)" in lines[1]
    assert lines[2].startswith("sampling") and "float32/bf16 2 (min 2, max 2, n=2)" in lines[2]
    with pytest.raises(ValueError, match="model: got None; allowed: a model dir"):
        PrecisionBenchConfig()
    (tmp_path / "config.json").write_text("{}")
    assert PrecisionBenchConfig(model=tmp_path).model == tmp_path


def test_parallel_jobs_summary_judges_the_speedup_by_the_load_it_ran_under():
    from benchmarks.parallel_jobs import ParallelJobsBenchConfig, summary

    info = {"cpu": "x", "cores": 2, "load": [0.1, 0.2, 0.3]}
    rounds = {"one_job": [{"wall_s": 100.0}, {"wall_s": 110.0}], "two_jobs": [{"wall_s": 60.0}, {"wall_s": 50.0}]}
    quiet = {"rounds": rounds, "speedup": [100 / 60, 110 / 50], "config": {"busy": False}, "machine": info,
             "machine_at_end": info}
    text = summary(quiet)
    assert "1.93 (min 1.67, max 2.2, n=2)" in text and "target >= 1.8 (quiet machine): not met" in text
    assert "target >= 1.0 (beside a busy process): met" in summary({**quiet, "config": {"busy": True}})
    with pytest.raises(ValueError, match="seeds"):
        ParallelJobsBenchConfig(seeds=0)


def test_base_model_build_summary_judges_the_default_build_against_its_target():
    from benchmarks.base_model_build import BaseModelBuildBenchConfig, summary

    info = {"cpu": "x", "cores": 2, "load": [0.1, 0.2, 0.3]}
    figures = {"rounds": {"one_process": [300.0], "two_processes": [160.0]}, "speedup": [300 / 160],
               "config": {"steps": 1200, "busy": False}, "machine": info, "machine_at_end": info}
    text = summary(figures)
    assert "speed-up 1 / 2 processes (per round): 1.88 (min 1.88, max 1.88, n=1)" in text
    assert "target <= 150 s on a quiet machine: not met" in text
    assert "target" not in summary({**figures, "config": {"steps": 300, "busy": False}})  # not the default build
    with pytest.raises(ValueError, match="steps"):
        BaseModelBuildBenchConfig(steps=0)


def test_growth_points_are_checked_and_tabled():
    from benchmarks.growth import GrowthBenchConfig, summary

    with pytest.raises(ValueError, match=r"entries like 500:1:2"):
        GrowthBenchConfig(points=("500:1",))
    info = {"cpu": "x", "cores": 2, "load": [0.1, 0.2, 0.3]}
    point = {"unlabeled": 8000, "seeds": 1, "jobs": 2, "wall_s": 412.4, "peak_rss_gb": 1.234, "load_after": [1, 2, 3],
             "stage_s": {"policy_samples": 150.2, "reward": 90.0, "ppo": 60.0, "other": 40.0}}
    assert "| 8000 | 1 | 2 | 412 | 1.23 | 150 | 90 | 60 | 40 | 1.0/2.0/3.0 |" in summary(
        {"points": [point], "machine": info})
