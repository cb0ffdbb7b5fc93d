"""The tiny world reproduces RLHF: PPO beats SFT, and the gold reward over-optimises along best-of-n and a low-KL
PPO run while the proxy keeps rising. Slow: a full-budget run of the default preset (several minutes)."""

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


def test_gold_peaks_and_falls_while_the_proxy_rises(calibration_run):
    curves = calibration_run["overoptimisation"]["mean"]["curves"]
    for name in ("best_of_n", "ppo"):
        gold = [p["gold_win_rate"] for p in curves[name]]
        print(name, [(round(p["sqrt_kl"], 2), round(p["gold_win_rate"], 1), round(p["proxy_reward"], 2))
                     for p in curves[name]])
        peak = max(range(len(gold)), key=gold.__getitem__)
        assert 0 < peak < len(gold) - 1, f"{name}: gold must rise, peak and fall: {gold}"
        assert gold[peak] > gold[0] + 3 and gold[-1] < gold[peak] - 3
    proxy = [p["proxy_reward"] for p in curves["best_of_n"]]
    assert proxy == sorted(proxy)  # best-of-n's proxy rises with n by construction of the argmax
