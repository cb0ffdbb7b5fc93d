"""The ceiling of on-policy labels in the tiny world: given gold labels on pairs of the first PPO policy's samples,
the reward model learns to tell that policy's right answers from its wrong ones, which the reward model trained on
the preference split cannot (the issue the positive control rests on). Slow: a full-budget run of the default
preset with ``online_rlhf_gold`` (several minutes).

Measured at seed 0 of the stored leaderboard (138 held-out right-vs-wrong pairs): the original reward model 0.572,
the one refined on 12,748 gold-labelled on-policy pairs 0.775 (+0.203, paired standard error 0.053); an earlier
build on a slower machine, whose float rounding trains other policies, gave 0.451, 0.732 and +0.281 (153 pairs).
The bounds below leave 0.7-3.5 standard errors to those figures (the original's 0.6 the least). The win rate it
gains (+2.9 points over PPO at this seed; +0.8 [-0.5, +2.2] over 7 seeds) is not resolved, so it is not asserted.
"""

from __future__ import annotations

import json

import pytest

from harness.run import main
from harness.suites.tiny.world import RIGHT_VS_WRONG

pytestmark = pytest.mark.slow


def test_gold_labels_on_policy_samples_teach_the_reward_model_right_from_wrong(tmp_path):
    out = tmp_path / "run"
    assert main(["--methods", "sft", "ppo", "online_rlhf_gold", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    held_out = results["methods"]["online_rlhf_gold"]["per_seed"][0]["details"]["reward_models_held_out"]
    by_kind = held_out["by_kind"][RIGHT_VS_WRONG]
    print(json.dumps(by_kind, indent=1))
    assert by_kind["original"]["n"] >= 100
    assert by_kind["refined"]["accuracy"] >= 0.65 and by_kind["original"]["accuracy"] <= 0.6
    assert by_kind["refined_minus_original"]["difference"] >= 0.15
