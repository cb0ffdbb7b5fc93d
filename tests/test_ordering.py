"""The report's comparison of orderings (harness/report/ordering.py): pair by pair, from the run's numbers, and
best-of-n's row beside the paper's (harness/report/content.py)."""

from __future__ import annotations

import math

from harness.report.content import PAPER_RESULTS, paper_comparison
from harness.report.ordering import ordering_note, ordering_notes, ranked

ALPACAFARM = {"ppo": 46.8, "best_of_n": 45.0, "expert_iteration": 41.9, "sft": 36.7}


def results(farm: dict[str, float]) -> dict:
    return {"methods": {name: {"metrics": {"farm_win_rate": {"mean": value}}, "per_seed": [{}]}
                        for name, value in farm.items()}}


def test_a_run_in_the_sources_order_agrees_on_every_pair():
    note = ordering_note("AlpacaFarm's", ALPACAFARM, {"sft": 30.0, "ppo": 50.0, "best_of_n": 40.0, "dpo": 60.0})
    assert note == ("Against AlpacaFarm's ordering (its AlpacaFarm sim win rate; this run's farm_win_rate): "
                    "ppo > best_of_n > sft there, ppo > best_of_n > sft here: the same order on all 3 pairs.")


def test_a_reversed_pair_is_named_with_both_gaps():
    note = ordering_note("AlpacaFarm's", ALPACAFARM, {"sft": 36.0, "ppo": 45.2, "best_of_n": 45.6,
                                                      "expert_iteration": 37.9})
    assert "ppo > best_of_n > expert_iteration > sft there, best_of_n > ppo > expert_iteration > sft here" in note
    assert note.endswith("the same order on 5 of 6 pairs; reversed: best_of_n beats ppo here (45.6 vs 45.2), "
                         "there 45.0 vs 46.8.")


def test_a_tie_in_the_run_is_not_counted_as_agreement_and_too_few_shared_methods_say_so():
    note = ordering_note("the paper's", {"sft": 36.7, "ppo": 46.8}, {"sft": 40.0, "ppo": 40.0})
    assert "ppo = sft here" in note and "reversed: sft ties ppo here (40.0 vs 40.0)" in note
    assert "shares fewer than two" in ordering_note("the paper's", {"sft": 36.7, "ppo": 46.8},
                                                    {"ppo": 45.0, "sft": math.nan})
    assert ranked({"a": 1.0, "b": 3.0, "c": 2.0}) == "b > c > a"


def test_the_report_shows_best_of_n_beside_the_papers_row_and_both_orderings():
    run = results({"sft": 36.0, "ppo": 45.2, "best_of_n": 45.6, "expert_iteration": 37.9})
    run["methods"]["sft"]["metrics"]["knowledge_acc"] = {"mean": 0.7}
    comparison = paper_comparison(run, PAPER_RESULTS)
    assert comparison["rows"]["best_of_n"][:2] == ["45.6", "45.0"]  # this run, then the paper's Table 2
    notes = comparison["notes"]
    # the paper's ordering reads its own farm column; best_of_n sits below ppo there (45.0 vs 46.8)
    assert notes[-2].startswith("Against the paper's ordering") and "reversed: best_of_n beats ppo" in notes[-2]
    assert notes[-1].startswith("Against AlpacaFarm's ordering") and "5 of 6 pairs" in notes[-1]
    assert len(ordering_notes(run, {"methods": {}})) == 0  # a paper file without orderings adds none
