"""Over-optimisation curves (harness/evals/overoptimisation.py): Gao et al.'s fits checked against numbers worked
by hand, the averaging over seeds, and the measurement against a fake run context."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.core.types import PPOCheckpoint, PPORun
from harness.evals.overoptimisation import (
    best_of_n_points,
    describe_fits,
    fit_curve,
    fit_form,
    form_value,
    mean_curve,
    measure,
    peak,
    powers_of_two,
    summarise,
)


def test_the_bon_fit_recovers_exact_coefficients_and_its_peak():
    # R = d (3 - d) at d = 0, 1, 2, 3 is 0, 2, 2, 0: alpha 3, beta 1; peak at d* = 3 / 2 with R = 1.5 * 1.5 = 2.25.
    fit = fit_form("bon", [0, 1, 2, 3], [0, 2, 2, 0])
    assert (fit["alpha"], fit["beta"]) == (pytest.approx(3), pytest.approx(1))
    assert fit["peak_d"] == pytest.approx(1.5) and fit["peak_r"] == pytest.approx(2.25) and fit["n_points"] == 4


def test_the_rl_fit_recovers_exact_coefficients_and_its_peak():
    # R = d (1 - 0.5 log d): d = 1 -> 1, d = e -> e / 2, d = e^2 -> 0. Peak where 1 - 0.5 (log d + 1) = 0: d* = e.
    d = [0.0, 1.0, math.e, math.e**2]
    fit = fit_form("rl", d, [0.0, 1.0, math.e / 2, 0.0])
    assert (fit["alpha"], fit["beta"]) == (pytest.approx(1), pytest.approx(0.5))
    assert fit["peak_d"] == pytest.approx(math.e) and fit["peak_r"] == pytest.approx(math.e / 2)


def test_two_points_solve_the_bon_form_exactly_and_more_points_are_least_squares():
    # a - b = 1 and 2a - 4b = 1 -> b = 0.5, a = 1.5.
    fit = fit_form("bon", [1, 2], [1, 1])
    assert (fit["alpha"], fit["beta"]) == (pytest.approx(1.5), pytest.approx(0.5))
    # A third point off the curve moves the fit to numpy's least-squares solution of the same design.
    d, r = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.5])
    expected, *_ = np.linalg.lstsq(np.column_stack([d, -d * d]), r, rcond=None)
    fit = fit_form("bon", d, r)
    assert [fit["alpha"], fit["beta"]] == pytest.approx(list(expected))
    assert float(np.sum((form_value("bon", d, fit["alpha"], fit["beta"]) - r) ** 2)) < 0.1


def test_a_curve_that_only_rises_has_no_peak():
    assert peak("bon", 1.0, 0.0) is None and peak("rl", 1.0, -0.2) is None and peak("bon", -1.0, 1.0) is None
    fit = fit_form("bon", [1, 2, 3], [1, 4, 9])  # R = d^2: alpha 0, beta -1, ever steeper
    assert fit["beta"] == pytest.approx(-1) and fit["peak_d"] is None and fit["peak_r"] is None


@pytest.mark.parametrize(("form", "d", "r", "message"), [
    ("quadratic", [1, 2], [1, 1], "form: must be one of bon, rl"),
    ("bon", [1, 2], [1], "one length"),
    ("bon", [0, 1], [0, 1], "at least two points with d > 0"),
    ("rl", [1, math.nan], [1, 1], "finite"),
])
def test_fit_rejects_what_it_cannot_fit(form, d, r, message):
    with pytest.raises(ValueError, match=message):
        fit_form(form, d, r)


def test_a_curve_is_fitted_relative_to_its_kl_zero_point():
    # Win rates 40, 42, 42, 40 at KL 0, 1, 4, 9 (d = 0, 1, 2, 3): R = 0, 2, 2, 0 as in the exact bon case.
    points = [{"kl": kl, "gold_win_rate": w} for kl, w in ((0, 40), (1, 42), (4, 42), (9, 40))]
    fit = fit_curve("bon", points)
    assert (fit["alpha"], fit["beta"], fit["peak_d"]) == (pytest.approx(3), pytest.approx(1), pytest.approx(1.5))
    assert fit_curve("bon", points[:2]) is None  # one point beyond d = 0: no fit
    assert fit_curve("bon", points[1:]) is None  # no d = 0 point to measure from


def test_best_of_n_points_carry_the_analytic_kl():
    assert powers_of_two(8) == [1, 2, 4, 8] and powers_of_two(1) == [1]
    points = best_of_n_points([1, 4], [40.0, 45.0], [3.0, 3.1], [0.1, 0.6])
    assert points[0] == {"n": 1, "kl": 0.0, "sqrt_kl": 0.0, "gold_win_rate": 40.0, "standard_error": 3.0,
                         "proxy_reward": 0.1}
    assert points[1]["kl"] == pytest.approx(math.log(4) - 0.75)  # 0.6363
    assert points[1]["sqrt_kl"] == pytest.approx(math.sqrt(math.log(4) - 0.75))


def test_seeds_are_averaged_point_by_point_and_the_mean_curve_is_fitted():
    seed0 = [{"n": 1, "kl": 0.0, "gold_win_rate": 40.0, "proxy_reward": 0.0},
             {"n": 2, "kl": 1.0, "gold_win_rate": 44.0, "proxy_reward": 1.0},
             {"n": 4, "kl": 4.0, "gold_win_rate": 42.0, "proxy_reward": 2.0}]
    seed1 = [{**p, "gold_win_rate": p["gold_win_rate"] - 2 * (p["n"] > 1)} for p in seed0]  # 40, 42, 40
    mean = mean_curve([seed0, seed1], "n")
    assert [p["gold_win_rate"] for p in mean] == [40.0, 43.0, 41.0]
    assert [p["sqrt_kl"] for p in mean] == [0.0, 1.0, 2.0] and all(p["n_seeds"] == 2 for p in mean)
    summary = summarise([{"seed": 0, "curves": {"best_of_n": seed0}}, {"seed": 1, "curves": {"best_of_n": seed1}}])
    # Mean R = 0, 3, 1 at d = 0, 1, 2: a - b = 3, 2a - 4b = 1 -> b = 2.5, a = 5.5; peak at 5.5 / 5 = 1.1.
    fit = summary["mean"]["fits"]["best_of_n"]
    assert (fit["alpha"], fit["beta"], fit["peak_d"]) == (pytest.approx(5.5), pytest.approx(2.5), pytest.approx(1.1))
    assert "ppo" not in summary["mean"]["curves"] and len(summary["per_seed"]) == 2
    assert describe_fits(summary["mean"]["fits"]) == (
        "best_of_n: R_bon alpha 5.5, beta 2.5, peak at sqrt(KL) 1.1 (+3.02 points)")


# -- the measurement, against a fake run context -------------------------------------------------------------------

# SFT samples per farm instruction; the reward model scores a sample by its number, the gold judge likes "good".
# Best of 1: "bad 1", "bad 0" (gold 0%, proxy 0.5); best of 2: "good 3", "good 2" (100%, 2.5); best of 4: "bad 5",
# "bad 9" (0%, 7.0): gold rises and falls while the proxy keeps rising.
SFT_SAMPLES = {"q1": ["bad 1", "good 3", "bad 5", "bad 4"], "q2": ["bad 0", "good 2", "good 1", "bad 9"]}
# What each PPO checkpoint answers on the farm set: step 5 is right twice, step 10 once.
CHECKPOINT_ANSWERS = {"step-5": ["good 1", "good 1"], "step-10": ["good 1", "bad 1"]}


class GoodJudge:
    """Prefers the model's output when it is "good", the reference otherwise (references start with "ref")."""

    name = "good-judge"

    def annotate(self, instructions, outputs_1, outputs_2):
        verdicts = []
        for first, second in zip(outputs_1, outputs_2):
            model_first = not first.startswith("ref")
            model = first if model_first else second
            model_wins = model.startswith("good")
            verdicts.append(1.0 if model_wins == model_first else 2.0)
        return verdicts


class FakeContext:
    """Serves SFT_SAMPLES and CHECKPOINT_ANSWERS, scores by the trailing number, builds stages in tmp_path."""

    def __init__(self, tmp_path):
        from datasets import Dataset

        from harness.config import EvalConfig
        from harness.trainers.config import PPOConfig

        self.tmp_path, self.seed, self.stages, self.ppo_configs = tmp_path, 0, [], []
        self.config = SimpleNamespace(eval=EvalConfig(overoptimisation_max_n=4, drift_instructions=2),
                                      ppo=PPOConfig())
        self.suite = SimpleNamespace(eval_sets=("farm",))
        self.splits = {"farm": Dataset.from_dict({"instruction": ["q1", "q2"], "output": ["ref 1", "ref 2"],
                                                  "generator": ["reference", "reference"]}),
                       "unlabeled": {"instruction": ["q1", "q2"]}}

    def sft(self):
        return Path("sft")

    def reward_model(self, extra_pairs=None, auxiliary=None):
        return Path("rm")

    def ppo(self, init, reward_model, config=None):
        self.ppo_configs.append(config)
        return PPORun(policy=Path("step-10"), reward_model=reward_model, checkpoints=(
            PPOCheckpoint(step=5, path=Path("step-5"), proxy_reward=0.3, kl=1.0),
            PPOCheckpoint(step=10, path=Path("step-10"), proxy_reward=0.6, kl=4.0)))

    def sample(self, policy, instructions, n, temperature, name="samples"):
        if policy.name == "sft":
            return [SFT_SAMPLES[x][:n] for x in instructions]
        return [[answer] for answer in CHECKPOINT_ANSWERS[policy.name]]

    def score(self, reward_model, instructions, outputs):
        return [float(y.split()[-1]) for y in outputs]

    def stage(self, name, inputs, build, collective=False):
        path = self.tmp_path / f"{name}-{len(self.stages)}"
        path.mkdir()
        build(path)
        self.stages.append(name)
        return path


def test_measure_takes_best_of_n_from_one_sample_set_and_every_ppo_checkpoint(tmp_path):
    ctx = FakeContext(tmp_path)
    result = measure(ctx, GoodJudge(), "good-judge", with_ppo=True)
    bon = result["curves"]["best_of_n"]
    assert [(p["n"], p["gold_win_rate"], p["proxy_reward"]) for p in bon] == [
        (1, 0.0, 0.5), (2, 100.0, 2.5), (4, 0.0, 7.0)]
    assert [p["kl"] for p in bon] == pytest.approx([0.0, math.log(2) - 0.5, math.log(4) - 0.75])
    ppo = result["curves"]["ppo"]
    # step 0 is the SFT policy: its one eval sample per instruction ("bad 1", "bad 0"), its proxy the mean score of
    # its temperature-1 samples on the unlabeled instructions (1 + 0) / 2; the checkpoints carry PPO's own log.
    assert [(p["step"], p["kl"], p["gold_win_rate"], p["proxy_reward"]) for p in ppo] == [
        (0, 0.0, 0.0, 0.5), (5, 1.0, 100.0, 0.3), (10, 4.0, 50.0, 0.6)]
    # RL form through R = 0, 100, 50 at d = 0, 1, 2: alpha = 100 (log 1 = 0), 2 (100 - beta log 2) = 50 ->
    # beta = 75 / log 2 = 108.2; peak at exp(alpha / beta - 1) = exp(0.924 - 1) = 0.927.
    fit = result["fits"]["ppo"]
    assert (fit["alpha"], fit["beta"]) == (pytest.approx(100), pytest.approx(75 / math.log(2)))
    assert fit["peak_d"] == pytest.approx(math.exp(math.log(2) * 100 / 75 - 1))
    assert result["fits"]["best_of_n"]["peak_d"] is not None  # rises then falls: a peak
    assert ctx.stages.count("overoptimisation_bon") == 1


def test_measure_without_ppo_draws_only_the_best_of_n_curve(tmp_path):
    result = measure(FakeContext(tmp_path), GoodJudge(), "good-judge", with_ppo=False)
    assert list(result["curves"]) == ["best_of_n"] and list(result["fits"]) == ["best_of_n"]


def test_the_ppo_curve_can_come_from_its_own_low_kl_run(tmp_path):
    ctx = FakeContext(tmp_path)
    measure(ctx, GoodJudge(), "good-judge", with_ppo=True)
    assert ctx.ppo_configs == [None]  # by default: the run's own PPO, the stage every method shares
    ctx = FakeContext(tmp_path / "own")
    (tmp_path / "own").mkdir()
    ctx.config.eval = dataclasses.replace(ctx.config.eval, overoptimisation_ppo_kl_coef=0.02,
                                          overoptimisation_ppo_steps=30)
    measure(ctx, GoodJudge(), "good-judge", with_ppo=True)
    (config,) = ctx.ppo_configs
    assert (config.kl_coef, config.num_steps) == (0.02, 30)
    assert config.learning_rate == ctx.config.ppo.learning_rate  # everything else is the preset's PPO
