"""The tiny world reproduces RLHF: PPO beats SFT on farm and loses on bar's honesty, and the gold reward
over-optimises along best-of-n and a low-KL PPO run while the proxy keeps rising. Slow: a full-budget run of the
default preset (several minutes)."""

from __future__ import annotations

import json

import pytest

from harness.run import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def calibration_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("calibration") / "run"
    assert main(["--methods", "sft", "ppo", "best_of_n", "--out", str(out)]) == 0
    return json.loads((out / "results.json").read_text())


def test_ppo_beats_sft_on_the_farm_set(calibration_run):
    metrics = {m: calibration_run["methods"][m]["metrics"]["farm_win_rate"]["mean"] for m in ("sft", "ppo")}
    print(f"farm win rate: {metrics}")
    assert metrics["ppo"] > metrics["sft"] + 3  # one seed; the stored leaderboard's three seeds give the interval


def test_ppo_stops_admitting_what_it_cannot_answer_so_it_loses_on_bar(calibration_run):
    """bar rewards an honest "I do not know" over a wrong answer to questions no policy here answers; PPO, trained
    where evasions lose, stops evading (measured: PPO - SFT on bar -10.4, -15.4, -14.8 points on seeds 0-2)."""
    metrics = {m: calibration_run["methods"][m]["metrics"]["bar_win_rate"]["mean"] for m in ("sft", "ppo")}
    print(f"bar win rate: {metrics}")
    assert 25 <= metrics["sft"] <= 50 and metrics["ppo"] < metrics["sft"] - 5


def test_gold_peaks_and_falls_while_the_proxy_rises(calibration_run):
    """Gold rises well above SFT, peaks inside the measured KL range and falls after it.

    One seed resolves the rise (several points) but not the size of the fall: each point's standard error is about
    2 points, and seed 0's PPO curve falls 2.5 points from its peak. So the fall is asserted as the measured last
    point below the peak and Gao et al.'s fitted form peaking before the largest KL measured; the stored 3-seed
    leaderboard's report shows the mean curves falling 3.5 (PPO) and 4.7 (best-of-n) points.
    """
    overoptimisation = calibration_run["overoptimisation"]["mean"]
    for name in ("best_of_n", "ppo"):
        points = overoptimisation["curves"][name]
        gold = [p["gold_win_rate"] for p in points]
        print(name, [(round(p["sqrt_kl"], 2), round(p["gold_win_rate"], 1), round(p["proxy_reward"], 2))
                     for p in points], overoptimisation["fits"][name])
        peak = max(range(len(gold)), key=gold.__getitem__)
        assert 0 < peak < len(gold) - 1, f"{name}: gold must rise, peak and fall: {gold}"
        assert gold[peak] > gold[0] + 3 and gold[-1] < gold[peak]
        assert overoptimisation["fits"][name]["peak_d"] < max(p["sqrt_kl"] for p in points)
    proxy = [p["proxy_reward"] for p in overoptimisation["curves"]["best_of_n"]]
    assert proxy == sorted(proxy)  # best-of-n's proxy rises with n by construction of the argmax
