"""The ceiling of on-policy labels in the tiny world: given gold labels on pairs of the first PPO policy's samples,
the reward model learns to tell that policy's right answers from its wrong ones, which the reward model trained on
the preference split cannot (the issue the positive control rests on). Slow: a full-budget run of the default
preset with ``online_rlhf_gold`` (several minutes).

Measured at seed 0 on the stored leaderboard (153 held-out right-vs-wrong pairs): the original reward model 0.451,
the one refined on 13,366 gold-labelled on-policy pairs 0.732 (+0.281, paired standard error 0.054). The bounds
below leave at least 2.3 standard errors to those figures; the win rate it gains at this seed (+0.4 points over
PPO; +1.4 [+0.3, +2.5] over 5 seeds) is not resolved at one seed, so it is not asserted here.
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
