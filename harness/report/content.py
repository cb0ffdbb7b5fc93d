"""What a report says, independent of its format.

:func:`build_report_data` turns a run dir into one :class:`ReportData`; ``markdown.py`` and ``html.py`` only lay it
out, so the two files always show the same numbers. Model outputs and every other string from the run are kept
as plain text here: escaping is the renderer's job, because each format escapes differently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from harness.core.types import Preference
from harness.evals.mmlu import knowledge_label
from harness.evals.winrate import LC_VARIANT, find_stage
from harness.leaderboard import LEADERBOARD_METRICS, finite_mean, ranked_methods
from harness.report.labels import registry_name
from harness.report.ordering import ordering_notes
from harness.report.sections import Section
from harness.report.verdict import CHANCE
from harness.stats import INTERVAL_CONVENTION, one_seed_half_width

PAPER_RESULTS = Path(__file__).with_name("paper_results.yaml")

# The headline columns: every leaderboard metric, each under its one name (the leaderboard's and results.json's).
HEADLINE_METRICS = LEADERBOARD_METRICS

# How a unit is written beside a column's name.
UNIT_LABELS = {"percent": "%", "fraction": "0-1", "characters": "characters", "seconds": "s"}

# How to read the headline table; plain text (no markup), so both renderers can show it as is.
HEADLINE_NOTES = (
    INTERVAL_CONVENTION,
    "Rows are ranked by farm_win_rate, highest first. No value is bold: a best value is named only where a paired "
    "comparison resolves it (Verdict, Paired comparisons). ‡ marks a value below chance (a pairwise accuracy under "
    "0.5): that reward model ranks pairs worse than a coin.",
    "Win rates are in percent (0-100) against the reference outputs, 50 meaning as good as the reference. "
    f"farm_lc_win_rate and bar_lc_win_rate are this harness's own offline length-controlled variant "
    f"({LC_VARIANT}: a length GLM on its own verdicts), not AlpacaEval 2's LC win rate, and comparable only "
    "between runs of this harness. Accuracies are fractions (0-1): knowledge_acc on the run's knowledge task; "
    "rm_acc_offline the reward model's on the held-out val pairs; rm_acc_step0 and rm_acc_onpolicy on judged pairs "
    "of fresh samples of the policy PPO starts from (step 0) and of the final checkpoint; rm_drift = rm_acc_step0 - "
    "rm_acc_onpolicy. avg_length is in characters; train_wall_s in seconds, one measurement, no interval.",
)

# How to read the stage table (plain text, for both renderers).
STAGES_NOTE = ("Stages the run used, each dir once: built by this run, with its build time, or reused, built by an "
               "earlier run and costing this one nothing; 'uses' counts how often the run asked for it.")

# Decimals per metric unit (harness.core.metrics.UNITS); any other unit gets 2.
DECIMALS = {"percent": 1, "fraction": 3, "seconds": 0}

VERDICTS = {Preference.SECOND: "model wins", Preference.FIRST: "reference wins", Preference.TIE: "tie"}


# C0 control characters but newline and tab, DEL, and the C1 controls (0x9b is a terminal's CSI on its own).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab shown instead of acted on.

    Model outputs can hold ESC (terminal escape sequences that ``cat report.md`` would run), NUL, carriage returns
    that overwrite a line, and the like. C0 characters and DEL become their Unicode control pictures (ESC -> ␛,
    NUL -> ␀), C1 characters the text ``<U+009B>``. Both renderers apply it to every string from the run.
    """
    def picture(match: re.Match) -> str:
        code = ord(match.group())
        if code < 0x20:
            return chr(0x2400 + code)
        return "\u2421" if code == 0x7F else f"<U+{code:04X}>"

    return CONTROL.sub(picture, text)


@dataclass(frozen=True)
class Cell:
    """One formatted value of the headline table."""

    text: str
    standard_error: bool = False  # "±" is from one seed's standard error over items, not from several seeds
    below_chance: bool = False  # worse than chance (see CHANCE)


@dataclass(frozen=True)
class SampleOutput:
    """One method's output for a sample instruction and the judge's verdict against the reference."""

    method: str
    output: str
    verdict: str


@dataclass(frozen=True)
class Sample:
    """One evaluation instruction shown with the reference and every method's output (seed 0)."""

    eval_set: str
    number: int  # 1-based, within its evaluation set
    instruction: str
    reference: str
    outputs: tuple[SampleOutput, ...]


@dataclass(frozen=True)
class StageRow:
    """One stage dir the run used, listed once however many times the run asked for it."""

    seed: int | None
    stage: str
    path: str
    built: bool  # built by this run; False: reused, built by an earlier run
    build_wall_s: float | None  # None for a reused stage, which cost this run nothing
    uses: int  # how many times the run asked for it


def stage_rows(stages: list[dict]) -> list[StageRow]:
    """The run's stage uses (``results.json`` ``stages``) as one row per stage dir, in the order first used.

    A stage dir's first use tells whether this run built it; later uses are the run reusing its own work (SFT is
    asked for by every method) and only count in ``uses``.
    """
    rows: dict[str, StageRow] = {}
    for use in stages:
        path = str(use.get("path"))
        if path in rows:
            rows[path] = dataclasses.replace(rows[path], uses=rows[path].uses + 1)
            continue
        built = not use.get("reused")
        rows[path] = StageRow(use.get("seed"), str(use.get("stage")), path, built,
                              use.get("build_wall_s") if built else None, 1)
    return list(rows.values())


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows. Strings are raw run text; renderers escape them."""

    run_dir: Path
    preset: str
    seeds: int
    judge: str
    wall_s: float | None
    base_model: dict | None  # results.json's base_model: its name and knowledge-task score (base_model_sentence)
    methods: list[str]
    metrics: list[str]
    units: list[str]  # per headline column, its unit as written beside the name ("" for none)
    knowledge_task: str  # the task knowledge_acc is measured on
    headline: dict[str, list[Cell]]  # method -> one cell per metric, methods ranked by the headline win rate
    paper: dict  # label, notes, columns (header labels), rows (method -> cell texts)
    plots: dict[str, str]  # title -> PNG path relative to run_dir
    diagnostics: list[tuple[str, str, str]]  # method, name, mean over seeds (formatted)
    samples: list[Sample]
    provenance: dict
    stages: list[StageRow]
    sections: list[Section] = dataclasses.field(default_factory=list)  # analyses (over-optimisation, mechanism)
    lead: list[Section] = dataclasses.field(default_factory=list)  # before the results: verdict, comparisons

    @property
    def config_yaml(self) -> str:
        """The resolved config as YAML (secret-looking values already redacted by provenance)."""
        config = self.provenance.get("config")
        return yaml.safe_dump(config, sort_keys=False) if config else "(no config.yaml in the run dir)"


def base_model_sentence(base: dict | None, name: Callable[[str], str] = str) -> str | None:
    """``Base model X: knowledge_acc 0.412 ± 0.029 on task T (n=570, 5-shot), before any training.``, then where
    the task has a chance level, whether that accuracy is above it, or None for older runs.

    The accuracy is a fraction, as in the knowledge_acc column; ± is its 95% half-width (1.96 x lm-eval's standard
    error). A small model's MMLU can sit at the guessing level: saying so tells "the methods did not change its
    knowledge" from "this budget cannot see its knowledge at all".

    Args:
        base: ``results.json``'s ``base_model``.
        name: how the renderer quotes the two names from the run (the model's and the task's), e.g. as code spans.
    """
    if not base:
        return None
    k = base["knowledge"]
    stderr = k.get("acc_stderr")
    known = stderr is not None and not math.isnan(stderr)
    error = f" ± {one_seed_half_width(stderr):.3f}" if known else ""
    sentence = (f"Base model {name(str(base['name']))}: knowledge_acc {k['acc']:.3f}{error} on task "
                f"{name(str(k['task']))} (n={k['n']}, {k['num_fewshot']}-shot), before any training.")
    chance = k.get("chance")
    if chance is None:
        return sentence
    if known and k["acc"] - chance > one_seed_half_width(stderr):
        reading = "above it, beyond its 95% interval"
    else:
        reading = ("within its 95% interval of it: at this size the task cannot tell the model's knowledge from "
                   "guessing, so equal knowledge accuracies across methods say nothing")
    return f"{sentence} Guessing scores {chance:.3f}; the base model is {reading}."


def build_report_data(run_dir: Path, results: dict, plots: dict[str, Path], provenance: dict,
                      samples_per_set: int = 3, sections: list[Section] = (), lead: list[Section] = ()) -> ReportData:
    """Collects the report's content from a run's results, figures and provenance.

    Args:
        run_dir: the run dir (sample outputs are read from the win-rate stage dirs it records).
        results: the parsed ``results.json``.
        plots: figure title -> PNG path, as written by :func:`harness.report.plots.make_plots`.
        provenance: from :func:`harness.provenance.collect_provenance`.
        samples_per_set: instructions shown per evaluation set.
        sections: analysis sections (:func:`harness.report.build_sections`), shown after the figures.
        lead: the sections shown before the results table (verdict, paired comparisons).
    """
    methods = results["methods"]
    order = ranked_methods(methods)
    headline = {name: [headline_cell(methods[name]["metrics"].get(metric)) for metric in HEADLINE_METRICS]
                for name in order}
    for column, metric in enumerate(HEADLINE_METRICS):
        for name in order:
            mean = methods[name]["metrics"].get(metric, {}).get("mean", math.nan)
            if mean < CHANCE.get(metric, -math.inf):
                headline[name][column] = dataclasses.replace(headline[name][column], below_chance=True)
    return ReportData(
        run_dir=Path(run_dir),
        preset=results["preset"],
        seeds=results.get("seeds", 1),
        judge=str(results.get("judge", "unknown")),
        wall_s=results.get("wall_s"),
        base_model=results.get("base_model"),
        methods=list(methods),
        metrics=HEADLINE_METRICS,
        units=[UNIT_LABELS.get(recorded_unit(methods, m), "") for m in HEADLINE_METRICS],
        knowledge_task=knowledge_label(results),
        headline=headline,
        paper=paper_comparison(results, PAPER_RESULTS),
        plots={title: path.relative_to(run_dir).as_posix() for title, path in plots.items()},
        diagnostics=diagnostic_means(results.get("diagnostics", {})),
        samples=collect_samples(Path(run_dir), results, samples_per_set),
        provenance=provenance,
        stages=stage_rows(provenance.get("stages", [])),
        sections=list(sections),
        lead=list(lead),
    )


def format_value(unit: str | None, value: float | None) -> str:
    """A value in ``unit`` at the unit's fixed number of decimals, the one precision rule of every table.

    Win rates (percent, 0-100) take 1 decimal, fractions (accuracies, 0-1) 3, seconds none, every other unit 2; an
    interval or standard error takes its metric's decimals, so a column's numbers line up and none is shown more
    precise than another.
    """
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.{DECIMALS.get(unit, 2)}f}"


def headline_cell(summary: dict | None) -> Cell:
    """Mean ± the half-width of its 95% interval over seeds; with one seed, ± 1.96 x the metric's standard error
    over items where it has one (marked); a wall time alone, without an interval (it measures the machine, not
    the method). ``summary`` is the metric's entry in ``results.json`` (None: the method has no such metric)."""
    if summary is None or math.isnan(summary["mean"]):
        return Cell("–")
    unit = summary["unit"]
    mean = format_value(unit, summary["mean"])
    if unit == "seconds":
        return Cell(mean)
    if not math.isnan(summary["ci95"]):
        return Cell(f"{mean} ± {format_value(unit, summary['ci95'])}")
    se = finite_mean(summary["standard_errors"])
    if not math.isnan(se):
        return Cell(f"{mean} ± {format_value(unit, one_seed_half_width(se))}", standard_error=True)
    return Cell(mean)


def recorded_direction(methods: dict, metric: str) -> bool | None:
    """The direction the run recorded for ``metric`` (the first method that has it)."""
    return _recorded(methods, metric, "higher_is_better")


def recorded_unit(methods: dict, metric: str) -> str | None:
    """The unit the run recorded for ``metric`` (the first method that has it)."""
    return _recorded(methods, metric, "unit")


def _recorded(methods: dict, metric: str, key: str):
    for entry in methods.values():
        if metric in entry["metrics"]:
            return entry["metrics"][metric].get(key)
    return None


def paper_comparison(results: dict, paper_file: Path) -> dict:
    """This run's means beside the paper's numbers, in the paper's units.

    Rows are this run's methods, then the paper's methods this run did not train. The paper's MMLU column is shown
    only when the run's knowledge task is MMLU: another task's accuracy is not comparable with it. The notes end
    with how the run's ordering of its methods compares with the paper's and AlpacaFarm's
    (:mod:`harness.report.ordering`).
    """
    paper = yaml.safe_load(paper_file.read_text())
    label = paper["label"]
    task = knowledge_label(results)
    shown = [c for c in paper["columns"] if c["metric"] != "knowledge_acc" or task == "MMLU"]
    columns, rows = [], {}
    for column in shown:
        columns += [f"{column['label']} (this run)", f"{column['label']} ({label})"]
    names = list(results["methods"]) + [m for m in paper["methods"] if m not in results["methods"]]
    for name in names:
        run_metrics = results["methods"].get(name, {}).get("metrics")
        cells = []
        for column in shown:
            if run_metrics is None:
                cells.append("not run")
            else:
                mean = run_metrics.get(column["metric"], {}).get("mean", math.nan)
                cells.append("–" if math.isnan(mean) else f"{mean * column['run_scale']:.1f}")
            value = paper["methods"].get(name, {}).get(column["metric"])
            cells.append("–" if value is None else f"{value:.1f}")
        rows[name] = cells
    notes = [f"Columns marked ({label}) are the paper's own numbers: {paper['source']}.", *paper["notes"]]
    if task == "MMLU":
        notes += paper["mmlu_notes"]
    else:
        notes.append(f"The paper's MMLU column is left out: this run's knowledge task is {task}, not MMLU.")
    notes += ordering_notes(results, paper)
    return {"label": label, "notes": notes, "columns": columns, "rows": rows}


def diagnostic_means(diagnostics: dict[str, list[dict]]) -> list[tuple[str, str, str]]:
    """Every scalar method diagnostic (SPG acceptance rate, pair accuracy, ...) as its mean over seeds."""
    rows = []
    for name, seeds in diagnostics.items():
        keys = [k for k in (seeds[0] if seeds else {}) if k != "seed"]
        for key in keys:
            values = [s.get(key) for s in seeds]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                rows.append((name, key, f"{sum(values) / len(values):.3g}"))
    return rows


def collect_samples(run_dir: Path, results: dict, per_set: int) -> list[Sample]:
    """The first ``per_set`` instructions of each evaluation set that every method answered (seed 0).

    Outputs, references and verdicts are read from the win-rate stage dirs; a method whose stage dir is gone
    (a shared cache cleaned up) is left out of the samples rather than failing the report.
    """
    per_method: dict[str, dict[str, dict]] = {}
    for name, entry in results["methods"].items():
        eval_sets = entry["per_seed"][0].get("details", {}).get("eval_sets", {}) if entry["per_seed"] else {}
        for eval_set, details in eval_sets.items():
            stage = find_stage(run_dir, details.get("stage", ""), registry_name(results, name), 0, eval_set)
            if stage is not None:
                per_method.setdefault(eval_set, {})[name] = _read_stage(stage)

    samples = []
    for eval_set, stages in per_method.items():
        first = next(iter(stages.values()))
        common = [i for i in first["order"] if all(i in s["outputs"] for s in stages.values())]
        for number, instruction in enumerate(common[:per_set], 1):
            samples.append(Sample(
                eval_set=eval_set,
                number=number,
                instruction=instruction,
                reference=first["references"].get(instruction, ""),
                outputs=tuple(SampleOutput(name, *s["outputs"][instruction]) for name, s in stages.items()),
            ))
    return samples


def _read_stage(stage: Path) -> dict:
    """instruction -> (model output, verdict), the reference per instruction, and the instructions' order."""
    model_outputs = json.loads((stage / "model_outputs.json").read_text())
    references = json.loads((stage / "reference_outputs.json").read_text())
    annotations = json.loads((stage / "annotations.json").read_text())
    # annotations.json is alpaca_eval's file (harness.evals.winrate.write_annotations): the reference is output_1,
    # so its "preference" is already the verdict against the reference.
    verdicts = {a["instruction"]: VERDICTS.get(a.get("preference"), "unknown") for a in annotations}
    return {
        "order": [o["instruction"] for o in model_outputs],
        "outputs": {o["instruction"]: (o["output"], verdicts.get(o["instruction"], "not judged"))
                    for o in model_outputs},
        "references": {r["instruction"]: r["output"] for r in references},
    }
