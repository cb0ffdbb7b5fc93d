"""Win rate against references: position randomisation, alpaca_eval's figures, the offline LC GLM, the files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from alpaca_eval import constants as alpaca_eval_constants
from alpaca_eval import main as alpaca_eval_main
from alpaca_eval.metrics import get_winrate, pairwise_to_winrate
from alpaca_eval.utils import load_or_convert_to_dataframe
from sklearn.linear_model import LogisticRegression

from harness.core.types import Preference
from harness.evals.winrate import (
    LC_VARIANT,
    _fit_logistic,
    judge_against_reference,
    length_controlled_win_rate,
    preference_vs_reference,
    win_rate_metrics,
    write_annotations,
    write_outputs,
)

N = 24
INSTRUCTIONS = [f"instruction {i}" for i in range(N)]
OUTPUTS = [f"model answer {i}" for i in range(N)]
REFERENCES = [f"REF: reference answer {i}" for i in range(N)]


class ReferenceSpotter:
    """A deterministic fake judge that recognises the reference by its "REF:" prefix."""

    name = "reference_spotter"

    def __init__(self, prefers_reference: bool):
        self.prefers_reference = prefers_reference

    def annotate(self, instructions, outputs_1, outputs_2):
        verdicts = []
        for first in outputs_1:
            first_is_reference = first.startswith("REF:")
            verdicts.append(Preference.FIRST if first_is_reference == self.prefers_reference else Preference.SECOND)
        return verdicts


def _lengths(records):
    model = [len(r["output_1"] if r["model_position"] == 1 else r["output_2"]) for r in records]
    reference = [len(r["output_2"] if r["model_position"] == 1 else r["output_1"]) for r in records]
    return model, reference


@pytest.mark.parametrize("prefers_reference, expected", [(True, 0.0), (False, 100.0)])
def test_position_swap_is_undone_for_both_positions(prefers_reference, expected):
    records = judge_against_reference(ReferenceSpotter(prefers_reference), INSTRUCTIONS, OUTPUTS, REFERENCES, seed=3)
    positions = [r["model_position"] for r in records]
    assert set(positions) == {1, 2}, "the model's output must be shown first for some items and second for others"
    for record, output in zip(records, OUTPUTS):
        shown = record["output_1"] if record["model_position"] == 1 else record["output_2"]
        assert shown == output
    metrics = win_rate_metrics([r["preference_vs_reference"] for r in records], *_lengths(records))
    assert metrics["win_rate"] == expected
    # The raw verdicts alone would be position-dependent: for this judge they disagree with the oriented ones
    # exactly where the model was shown first.
    flipped = [r["preference"] != r["preference_vs_reference"] for r in records]
    assert flipped == [p == 1 for p in positions]


def test_positions_depend_on_seed_and_item_not_on_outputs():
    spotter = ReferenceSpotter(prefers_reference=True)
    first = judge_against_reference(spotter, INSTRUCTIONS, OUTPUTS, REFERENCES, seed=0)
    other_method = judge_against_reference(spotter, INSTRUCTIONS, [o + "!" for o in OUTPUTS], REFERENCES, seed=0)
    other_seed = judge_against_reference(spotter, INSTRUCTIONS, OUTPUTS, REFERENCES, seed=1)
    positions = [r["model_position"] for r in first]
    assert positions == [r["model_position"] for r in other_method]
    assert positions != [r["model_position"] for r in other_seed]


def test_preference_vs_reference_mirrors_around_tie():
    # Model shown first: verdict p on (model, reference) is 3 - p on (reference, model).
    assert preference_vs_reference(Preference.FIRST, 1) == Preference.SECOND
    assert preference_vs_reference(Preference.TIE, 1) == Preference.TIE
    assert preference_vs_reference(1.75, 1) == 1.25
    assert preference_vs_reference(Preference.FIRST, 2) == Preference.FIRST
    assert math.isnan(preference_vs_reference(math.nan, 1))
    with pytest.raises(ValueError, match="position"):
        preference_vs_reference(1.0, 0)


def test_annotator_returning_wrong_count_is_rejected():
    class Short(ReferenceSpotter):
        def annotate(self, instructions, outputs_1, outputs_2):
            return super().annotate(instructions, outputs_1, outputs_2)[:-1]

    with pytest.raises(ValueError, match="returned 23 preferences for 24 items"):
        judge_against_reference(Short(True), INSTRUCTIONS, OUTPUTS, REFERENCES, seed=0)


def test_win_rate_equals_alpaca_eval_on_hand_made_preferences():
    preferences = [2, 1, 1.5, 2, 2, 1, 1.75]
    metrics = win_rate_metrics(preferences, [10] * 7, [10] * 7)
    expected = pairwise_to_winrate(preferences)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(float(value)), key
    # By hand: model's shares 1, 0, .5, 1, 1, 0, .75 -> 4.25 / 7 = 60.714 %.
    assert metrics["win_rate"] == pytest.approx(100 * 4.25 / 7)
    assert metrics["higher_is_better"] is True


def test_ties_count_as_half():
    # One win and one tie: (1 + 0.5) / 2 = 75 %; a win, a loss and two ties: 2 / 4 = 50 %.
    assert win_rate_metrics([2, 1.5], [5, 5], [5, 5])["win_rate"] == 75.0
    metrics = win_rate_metrics([2, 1, 1.5, 1.5], [5] * 4, [5] * 4)
    assert (metrics["win_rate"], metrics["n_draws"], metrics["n_wins"], metrics["n_wins_base"]) == (50.0, 2, 1, 1)


def test_missing_verdicts_are_left_out_and_counted():
    metrics = win_rate_metrics([2, math.nan, 1], [3, 3, 3], [3, 3, 3])
    assert (metrics["win_rate"], metrics["n_total"], metrics["n_missing"]) == (50.0, 2, 1)


@pytest.mark.parametrize(
    "preferences, model_lengths, reference_lengths, message",
    [
        ([2, 1], [1], [1, 1], "same length"),
        ([], [], [], "must not be empty"),
        ([0], [1], [1], r"preferences\[0\] = 0"),
        ([3], [1], [1], r"preferences\[0\] = 3"),
        ([2], [-1], [1], "model_lengths must be finite non-negative"),
        ([math.nan], [1], [1], "every verdict is NaN"),
    ],
)
def test_bad_input_raises_clear_error(preferences, model_lengths, reference_lengths, message):
    with pytest.raises(ValueError, match=message):
        win_rate_metrics(preferences, model_lengths, reference_lengths)


def test_lc_equals_raw_win_rate_when_lengths_are_equal():
    preferences = [2, 1, 2, 1.5, 2, 1]
    metrics = win_rate_metrics(preferences, [40] * 6, [40] * 6)
    assert metrics["lc_win_rate"] == pytest.approx(metrics["win_rate"], abs=1e-12)
    assert metrics["lc_variant"] == LC_VARIANT


def test_lc_on_two_length_groups_matches_hand_computation():
    # Model longer on 6 items (wins 4: logit(2/3) = ln 2), shorter on 2 (wins 1: logit(1/2) = 0). tanh is odd, so the
    # two groups sit at x = +t and x = -t; unpenalised, the GLM fits both rates exactly:
    #   a + b t = ln 2,  a - b t = 0  =>  a = ln(2) / 2,  LC = sigmoid(a) = sqrt(2) / (1 + sqrt(2)) = 58.579 %.
    # The raw win rate is 5 / 8 = 62.5 %: the longer group, which wins more, is over-represented.
    deltas = [10] * 6 + [-10] * 2
    wins = [1, 1, 1, 1, 0, 0, 1, 0]
    lc, se, slope = length_controlled_win_rate(deltas, wins, l2=0.0)
    assert lc == pytest.approx(100 * math.sqrt(2) / (1 + math.sqrt(2)), abs=1e-9)
    assert slope > 0 and se > 0


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_lc_fit_matches_scikit_learn(l2):
    rng = np.random.default_rng(0)
    x = np.tanh(rng.normal(0, 1, 300))
    y = (rng.random(300) < 1 / (1 + np.exp(-(0.3 + 1.2 * x)))).astype(float)
    # scikit-learn's L2 penalty is ||w||^2 / (2 C) and leaves the intercept alone: ours with l2 = 1 / C.
    reference = LogisticRegression(C=np.inf if l2 == 0 else 1 / l2, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    intercept, slope, _ = _fit_logistic(x, y, l2)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-6)
    assert slope == pytest.approx(reference.coef_[0, 0], abs=1e-6)


def test_lc_is_well_below_raw_for_a_model_that_wins_only_by_being_longer():
    deltas = [-20, -10, 0, 10, 20, 30, 40, 50, 60, 70]
    preferences = [2 if d >= 30 else 1 for d in deltas]  # wins exactly when at least 30 characters longer
    metrics = win_rate_metrics(preferences, [100 + d for d in deltas], [100] * 10)
    print(f"raw {metrics['win_rate']:.1f} lc {metrics['lc_win_rate']:.1f} slope {metrics['lc_length_coef']:.2f}")
    assert metrics["win_rate"] == 50.0
    assert metrics["lc_win_rate"] < metrics["win_rate"] - 25
    assert metrics["lc_length_coef"] > 0


def test_lc_special_cases():
    # Always wins: length cannot change that. Always 7 characters longer: length and quality are confounded.
    assert length_controlled_win_rate([5, -5, 30], [1, 1, 1]) == (100.0, 0.0, 0.0)
    assert all(math.isnan(v) for v in length_controlled_win_rate([7, 7, 7], [1, 0, 1]))
    with pytest.raises(ValueError, match="did not converge"):
        length_controlled_win_rate([-2, -1, 1, 2], [0, 0, 1, 1], l2=0.0)  # separated: no finite MLE


@pytest.fixture
def fake_alpaca_eval_judge(tmp_path):
    """An alpaca_eval annotator config whose completion function always answers "Output (b)" (no API)."""
    prompt = alpaca_eval_constants.EVALUATORS_CONFIG_DIR / "text_davinci_003" / "basic_prompt.txt"
    config = {
        "always_b": {
            "prompt_template": str(prompt),
            "fn_completions": "test_completions",
            "completions_kwargs": {"value": "Output (b)"},
            "completion_parser_kwargs": {"outputs_to_match": {1: r"Output \(a\)", 2: r"Output \(b\)"}},
            "is_randomize_output_order": False,
            "batch_size": 1,
        }
    }
    path = tmp_path / "always_b" / "configs.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config))
    return path


def test_output_files_are_read_back_and_rejudged_by_alpaca_eval(tmp_path, fake_alpaca_eval_judge):
    model_file = write_outputs(tmp_path / "out" / "model_outputs.json", INSTRUCTIONS, OUTPUTS, "ppo", "farm")
    reference_file = write_outputs(
        tmp_path / "out" / "reference_outputs.json", INSTRUCTIONS, REFERENCES, ["ref_gen"] * N, "farm"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model_outputs.json", "reference_outputs.json"]
    loaded = load_or_convert_to_dataframe(model_file)
    assert list(loaded.columns) == ["instruction", "output", "generator", "dataset"]
    assert loaded["output"].tolist() == OUTPUTS and set(loaded["generator"]) == {"ppo"}

    # alpaca_eval's own entry point re-judges from our files: the model is output_2, which this judge always picks.
    leaderboard, _ = alpaca_eval_main.evaluate(
        model_outputs=str(model_file),
        reference_outputs=str(reference_file),
        annotators_config=str(fake_alpaca_eval_judge),
        output_path=str(tmp_path / "rejudged"),
        precomputed_leaderboard=None,
        fn_metric="get_winrate",
        sort_by="win_rate",
        is_return_instead_of_print=True,
        caching_path=None,
    )
    assert leaderboard.loc["ppo", "win_rate"] == 100.0
    assert leaderboard.loc["ppo", "n_total"] == N


def test_annotations_file_is_reference_first_for_alpaca_eval(tmp_path):
    records = judge_against_reference(ReferenceSpotter(False), INSTRUCTIONS, OUTPUTS, REFERENCES, seed=5,
                                      generator="ppo", reference_generator="ref_gen")
    records[0]["preference"] = records[0]["preference_vs_reference"] = math.nan  # one unparsed verdict
    path = write_annotations(tmp_path / "annotations.json", records)
    rows = json.loads(path.read_text())  # strict JSON: NaN became null
    assert rows[0]["preference"] is None
    assert all(r["output_1"].startswith("REF:") and r["generator_1"] == "ref_gen" for r in rows)
    assert all(r["generator_2"] == "ppo" for r in rows)
    ours = win_rate_metrics([r["preference_vs_reference"] for r in records], *_lengths(records))
    theirs = get_winrate(pd.read_json(path))
    assert theirs["win_rate"] == ours["win_rate"] == 100.0
    assert theirs["n_total"] == ours["n_total"] == N - 1
