"""Row names that say what ran: RLP-SPG at a threshold other than the paper's is shown as its ablation."""

from __future__ import annotations

from harness.registry import row_labels
from harness.report.labels import registry_name, relabelled, shown_name
from methods.rlp_spg import SPGConfig


def test_only_the_papers_settings_keep_the_methods_name():
    assert SPGConfig().variant() is None  # gamma 0.5, the paper's clusters
    assert SPGConfig(confidence_threshold=0.0).variant() == "gamma=0"
    assert SPGConfig(confidence_threshold=0.25).variant() == "gamma=0.25"
    assert SPGConfig(pair_rule="reward_ranked").variant() == "reward_ranked"
    assert row_labels({"spg": SPGConfig(confidence_threshold=0.0)}, ["sft", "ppo", "rlp_spg"]) == {
        "rlp_spg": "rlp_spg (gamma=0)"}
    assert row_labels({"spg": SPGConfig()}, ["rlp_spg"]) == {}


def test_relabelled_renames_methods_comparisons_and_diagnostics_and_remembers_the_registry_name():
    results = {"labels": {"rlp_spg": "rlp_spg (gamma=0)"},
               "methods": {"ppo": {"metrics": {}}, "rlp_spg": {"metrics": {"x": 1}}},
               "comparisons": [{"method": "rlp_spg", "baseline": "ppo"}, {"method": "ppo", "baseline": "sft"}],
               "diagnostics": {"rlp_spg": [{"seed": 0}]}}
    shown = relabelled(results)
    assert list(shown["methods"]) == ["ppo", "rlp_spg (gamma=0)"]
    assert shown["methods"]["rlp_spg (gamma=0)"] == {"metrics": {"x": 1}, "method": "rlp_spg"}
    assert shown["comparisons"] == [{"method": "rlp_spg (gamma=0)", "baseline": "ppo"},
                                    {"method": "ppo", "baseline": "sft"}]
    assert list(shown["diagnostics"]) == ["rlp_spg (gamma=0)"]
    assert registry_name(shown, "rlp_spg (gamma=0)") == "rlp_spg" and registry_name(shown, "ppo") == "ppo"
    assert shown_name(shown, "rlp_spg") == "rlp_spg (gamma=0)" and shown_name(shown, "rlp_uml") == "rlp_uml"
    assert relabelled({"methods": {"ppo": {}}}) == {"methods": {"ppo": {}}}  # runs without labels are as they were
