"""Run results as leaderboard rows, and the stored leaderboards ``python -m harness.check`` compares against.

A stored leaderboard is one reference run of a preset, in two files under ``leaderboards/``:

- ``<preset>.csv``: one row per method, ranked by :data:`HEADLINE_METRIC` (highest first), the
  :data:`LEADERBOARD_COLUMNS` in that order (means over seeds, and alpaca_eval's counts). This is the reviewed
  number: the check compares against these values.
- ``<preset>.json``: what the CSV cannot hold: the command that produced it (preset, methods, seeds), provenance
  (config, git commit, package versions, hardware, stage times), every metric's spec as the run recorded it
  (direction, unit, range: :class:`~harness.core.metrics.MetricSpec`), its per-seed values and standard errors,
  the tolerance rules (:data:`TOLERANCES`) the check applies to it, and the run's paired comparisons (every method
  against PPO and SFT, :func:`harness.evals.paired.compare_methods`) as the run stored them.

Nothing here reads meaning into a metric's name: how to read a metric comes with it, from where it was measured.

Updating replaces both files with the given run (a leaderboard is one run, never a mix of runs). Both are written
to temporary files first and then moved into place with ``os.replace``, so an update that fails half-way leaves
the previous leaderboard intact.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.core.metrics import MetricError, MetricSpec
from harness.core.publish import write_all_atomic
from harness.core.schema import build, require_between, require_that
from harness.evals.paired import run_comparisons
from harness.provenance import collect_provenance
from harness.registry import check_preset_name, method_names
from harness.results_json import missing_as_nan

# The leaderboard contract: one row per method, ranked by HEADLINE_METRIC, these columns, in this order.
HEADLINE_METRIC = "farm_win_rate"
METRIC_COLUMNS = [
    "farm_win_rate", "farm_standard_error", "farm_lc_win_rate",
    "bar_win_rate", "bar_standard_error", "bar_lc_win_rate",
    "knowledge_acc", "knowledge_stderr", "rm_acc_offline", "rm_acc_step0", "rm_acc_onpolicy", "rm_drift",
    "proxy_reward", "kl", "avg_length", "train_wall_s",
]
# alpaca_eval's counts of each evaluation set (summed over seeds; discrete_win_rate, ties as half, the mean over
# seeds), as its leaderboards carry them. Not compared by the check, and optional when reading: leaderboards stored
# before they were added lack them.
COUNT_COLUMNS = [f"{eval_set}_{count}" for eval_set in ("farm", "bar")
                 for count in ("n_wins", "n_draws", "n_total", "discrete_win_rate")]
LEADERBOARD_COLUMNS = ["method", "preset", "seeds", *METRIC_COLUMNS, *COUNT_COLUMNS]

# The columns that show a metric's standard error over evaluation items (the mean over seeds of its per-seed
# standard errors) rather than a metric: column -> the metric whose standard error it is.
STANDARD_ERROR_COLUMNS = {"farm_standard_error": "farm_win_rate", "bar_standard_error": "bar_win_rate",
                          "knowledge_stderr": "knowledge_acc"}
# The metrics a leaderboard stores, in column order.
LEADERBOARD_METRICS = [c for c in METRIC_COLUMNS if c not in STANDARD_ERROR_COLUMNS]

# 3: each metric's spec and per-seed standard errors, tolerance rules by unit; 2: directions only, rules by metric
# kind; 1: k_std and no cap.
SCHEMA_VERSION = 3

TOLERANCE_RULE = ("tolerance = min(cap, max(floor, relative * |stored|, k_se * se)); se = sqrt(sd^2 + eval_se^2) / "
                  "sqrt(m): sd the sample std of the stored per-seed values (0 with one seed), eval_se the mean "
                  "stored standard error of the metric over evaluation items for the compared seeds (0 where it has "
                  "none), m the number of seeds compared; the rule is the one of the metric's unit, else 'other'")

OTHER = "other"  # the tolerance rule of a unit without its own


@dataclass(frozen=True)
class ToleranceRule:
    """How far a metric may move to the worse side before the check calls it a regression (see TOLERANCE_RULE)."""

    floor: float = field(metadata={"help": "smallest tolerance, in the metric's own unit; absorbs the small "
                                           "differences between machines that the standard error cannot show"})
    relative: float = field(default=0.0, metadata={"help": "fraction of the stored value always allowed "
                                                           "(timings vary with machine load)"})
    k_se: float = field(default=3.0, metadata={"help": "multiple of the standard error of the stored mean (seed "
                                                       "spread and evaluation noise); 3 is about 2 standard errors "
                                                       "of the difference between two such means"})
    cap: float | None = field(default=None, metadata={"help": "largest tolerance (None: no cap), so that noisy "
                                                              "stored seeds cannot make the check unable to fail"})

    def __post_init__(self) -> None:
        require_between(self, 0, math.inf, "floor", "relative", "k_se", "cap", closed="[)")
        require_that(self.cap is None or self.cap >= self.floor, self, "cap", f"null or at least floor ({self.floor})")


# The rules in force, per metric unit (MetricSpec.unit): win rates are in percent (points, 0-100), accuracies
# fractions (0-1), wall times seconds; every other unit takes OTHER's. The caps keep the check able to fail however
# noisy the stored seeds are: a method losing 10 win-rate points (or 0.1 of an accuracy) is always a regression.
TOLERANCES: dict[str, ToleranceRule] = {
    "percent": ToleranceRule(floor=5.0, k_se=3.0, cap=8.0),
    "fraction": ToleranceRule(floor=0.05, k_se=3.0, cap=0.08),
    "seconds": ToleranceRule(floor=30.0, relative=1.0, k_se=3.0),
    OTHER: ToleranceRule(floor=0.0, relative=0.1, k_se=3.0),
}


class LeaderboardError(ValueError):
    """A stored leaderboard that is missing or malformed; the message is one line naming the file."""


@dataclass(frozen=True)
class Leaderboard:
    """A stored leaderboard, validated.

    Attributes:
        preset: the preset it was produced with.
        table: one row per method, :data:`LEADERBOARD_COLUMNS`, numeric metric columns (NaN where absent).
        methods: the methods of the command that produced it, in order.
        seeds: the number of seeds of that command.
        per_seed: method -> metric -> per-seed values (NaN where a seed had none).
        standard_errors: method -> metric -> per-seed standard errors over evaluation items (NaN: none).
        specs: metric -> its spec (direction, unit, range), as the reference run recorded it.
        tolerances: unit -> rule, as stored (:data:`OTHER` for the units without their own).
        provenance: config, git commit, versions, hardware, stage times of the reference run.
        caveat: why its numbers should not be trusted, when someone wrote one into the JSON (``"caveat"``, a
            string; for example, made by code with a known flaw and not rerun yet); None for a sound one.
        comparisons: the reference run's paired comparisons (empty for a leaderboard stored before them).
    """

    preset: str
    table: pd.DataFrame
    methods: list[str]
    seeds: int
    per_seed: dict[str, dict[str, list[float]]]
    standard_errors: dict[str, dict[str, list[float]]]
    specs: dict[str, MetricSpec]
    tolerances: dict[str, ToleranceRule]
    provenance: dict
    caveat: str | None = None
    comparisons: list[dict] = field(default_factory=list)

    def tolerance_rule(self, unit: str) -> ToleranceRule:
        """The stored rule for metrics in ``unit``."""
        return self.tolerances.get(unit, self.tolerances[OTHER])


def load_results(run_dir: Path) -> dict:
    """Reads and checks a run's ``results.json``; a metric's missing values (``null`` or NaN) read as NaN.

    Raises:
        ValueError: one line naming the file and the problem (missing, not JSON, a key given twice, missing keys,
            a metric that is not ``{"mean": number or null, "values": [...], "standard_errors": [...]}`` with its
            spec (``higher_is_better``, ``unit``, ``low``, ``high``), an infinite value).
    """
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise ValueError(f"{path}: no such file; is {run_dir} a finished run dir?")
    try:
        results = loads_strict(path.read_text(), allow_nan=True)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    required = {"preset", "seeds", "methods"}
    if not isinstance(results, dict) or not required <= results.keys() or not isinstance(results["methods"], dict):
        raise ValueError(f"{path}: expected an object with 'preset', 'seeds' and 'methods'")
    if isinstance(results["seeds"], bool) or not isinstance(results["seeds"], int) or results["seeds"] < 1:
        raise ValueError(f"{path}: 'seeds' must be a positive integer, got {results['seeds']!r}")
    for name, entry in results["methods"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
            raise ValueError(f"{path}: method {name!r} has no 'metrics' object")
        for metric, record in entry["metrics"].items():
            problem = _metric_problem(record)
            if problem:
                raise ValueError(f"{path}: method {name!r}, metric {metric!r}: {problem}")
    return missing_as_nan(results)  # and the per-seed records' nulls (strict JSON), which the harness wants as NaN


def _metric_problem(record: object) -> str | None:
    """What is wrong with one metric record of results.json (and turns its nulls into NaN), or None."""
    if not isinstance(record, dict) or "mean" not in record:
        return f"expected an object with a 'mean', got {record!r}"[:120]
    for key in ("mean", "ci95"):
        if key in record:
            record[key] = _number_or_nan(record[key])
            if record[key] is None:
                return f"'{key}' must be a finite number or null"
    for key in ("values", "standard_errors"):
        values = record.get(key, [])
        if not isinstance(values, list):
            return f"'{key}' must be a list"
        record[key] = [_number_or_nan(v) for v in values]
        if any(v is None for v in record[key]):
            return f"'{key}' must hold finite numbers or null"
    try:
        MetricSpec.from_json(record)
    except MetricError as err:
        return f"{err} (results.json written before metrics carried their spec? rerun to rewrite it)"
    return None


def finite_mean(values: list[float]) -> float:
    """The mean of the values that are not NaN; NaN if none is."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _number_or_nan(value: object) -> float | None:
    """A finite number as float; null or NaN as NaN; anything else (infinity, text, true) as None."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value):
        return None
    return float(value)


def loads_strict(text: str, allow_nan: bool = False) -> object:
    """``json.loads`` that refuses a key given twice in one object (JSON keeps the last one silently) and the
    non-standard constants Infinity and -Infinity (and NaN unless ``allow_nan``).

    Raises:
        ValueError: one line saying which key or constant.
    """
    def pairs(items: list[tuple[str, object]]) -> dict:
        seen = set()
        for key, _ in items:
            if key in seen:
                raise ValueError(f"key {key!r} is given twice in one object")
            seen.add(key)
        return dict(items)

    def constant(name: str) -> float:
        if name == "NaN" and allow_nan:
            return math.nan
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)


def ranked_methods(methods: dict) -> list[str]:
    """The run's methods by their :data:`HEADLINE_METRIC` mean, highest first; those without one last, in run
    order."""
    def key(name: str) -> tuple[bool, float]:
        mean = methods[name]["metrics"].get(HEADLINE_METRIC, {}).get("mean", math.nan)
        return math.isnan(mean), -mean if not math.isnan(mean) else 0.0

    return sorted(methods, key=key)


def leaderboard_table(results: dict) -> pd.DataFrame:
    """One row per method, ranked (:func:`ranked_methods`), with the leaderboard columns (means over seeds; NaN
    where a method has no value).

    A standard-error column holds the mean over seeds of its metric's per-seed standard errors (the check's
    input, not an interval); the count columns alpaca_eval's counts (:data:`COUNT_COLUMNS`).
    """
    rows = []
    for name in ranked_methods(results["methods"]):
        entry = results["methods"][name]
        row = {"method": name, "preset": results["preset"], "seeds": results["seeds"]}
        for column in METRIC_COLUMNS:
            summary = entry["metrics"].get(STANDARD_ERROR_COLUMNS.get(column, column))
            if summary is None:
                row[column] = math.nan
            else:
                row[column] = finite_mean(summary["standard_errors"]) if column in STANDARD_ERROR_COLUMNS \
                    else summary["mean"]
        row.update(alpaca_eval_counts(entry["per_seed"]))
        rows.append(row)
    return pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)


def alpaca_eval_counts(per_seed: list[dict]) -> dict[str, float]:
    """:data:`COUNT_COLUMNS` of one method from its per-seed win-rate details (measured in
    :func:`harness.evals.winrate.win_rate_metrics`): counts summed over seeds, ``discrete_win_rate`` their mean;
    NaN where a seed lacks the figure."""
    counts = {}
    for column in COUNT_COLUMNS:
        eval_set, _, key = column.partition("_")
        values = [float(details[key]) if isinstance(details.get(key), (int, float)) else math.nan
                  for details in (r.get("details", {}).get("eval_sets", {}).get(eval_set, {}) for r in per_seed)]
        if not values or any(math.isnan(v) for v in values):
            counts[column] = math.nan
        else:
            counts[column] = sum(values) / len(values) if key == "discrete_win_rate" else sum(values)
    return counts


def update_leaderboard(run_dir: Path, leaderboards_dir: Path) -> tuple[Path, Path]:
    """Replaces the stored leaderboard of the run's preset with this run.

    Args:
        run_dir: a finished run dir (``results.json``, ``config.yaml``).
        leaderboards_dir: where ``<preset>.csv`` and ``<preset>.json`` live; created if missing.

    Returns:
        The paths of the CSV and the JSON written.

    Raises:
        ValueError: the run dir has no readable ``results.json``, or no method of it records one of
            :data:`LEADERBOARD_METRICS`, or two methods record a metric with different specs.
    """
    results = load_results(run_dir)
    preset = results["preset"]
    check_preset_name(preset)  # it names the files written: never a path
    methods = list(results["methods"])
    specs = recorded_specs(results, Path(run_dir) / "results.json")
    record = {
        "schema": SCHEMA_VERSION,
        "preset": preset,
        "command": {"preset": preset, "methods": methods, "seeds": results["seeds"]},
        "metrics": {metric: specs[metric].to_json() for metric in LEADERBOARD_METRICS},
        "tolerance_rule": TOLERANCE_RULE,
        "tolerances": {unit: dataclasses.asdict(rule) for unit, rule in TOLERANCES.items()},
        "per_seed": {name: {metric: _per_seed_values(entry, metric, results["seeds"]) for metric in LEADERBOARD_METRICS}
                     for name, entry in results["methods"].items()},
        "comparisons": run_comparisons(run_dir, results),
        "provenance": collect_provenance(run_dir, results),
    }
    leaderboards_dir = Path(leaderboards_dir)
    leaderboards_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = leaderboards_dir / f"{preset}.csv", leaderboards_dir / f"{preset}.json"
    write_all_atomic({
        csv_path: leaderboard_table(results).to_csv(index=False, float_format="%.10g"),  # 0.12, not 0.12000000000000001
        json_path: json.dumps(_nan_to_null(record), indent=1, allow_nan=False) + "\n",
    })
    return csv_path, json_path


def recorded_specs(results: dict, path: Path) -> dict[str, MetricSpec]:
    """The spec of every leaderboard metric as the run's methods recorded it (they must agree).

    Raises:
        ValueError: one line naming ``path``: a metric no method recorded, or recorded with two specs.
    """
    specs = {}
    for metric in LEADERBOARD_METRICS:
        recorded = {MetricSpec.from_json(entry["metrics"][metric]) for entry in results["methods"].values()
                    if metric in entry["metrics"]}
        if len(recorded) != 1:
            problem = "no method records it" if not recorded else "its methods record different specs"
            raise ValueError(f"{path}: metric {metric!r}: {problem}; a leaderboard holds "
                             f"{', '.join(LEADERBOARD_METRICS)}")
        (specs[metric],) = recorded
    return specs


def _per_seed_values(entry: dict, metric: str, seeds: int) -> dict[str, list[float]]:
    summary = entry["metrics"].get(metric)
    if summary is None:
        return {"values": [math.nan] * seeds, "standard_errors": [math.nan] * seeds}
    return {"values": [float(v) for v in summary["values"]],
            "standard_errors": [float(v) for v in summary["standard_errors"]]}


def _nan_to_null(obj: object) -> object:
    """NaN as JSON null, so the stored file is strict JSON any tool reads."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_null(v) for v in obj]
    return obj


def known_methods() -> frozenset[str]:
    """Method names in the registry: the built-in ones and the installed plugins' (none is imported)."""
    return frozenset(method_names())


def load_leaderboard(preset: str, leaderboards_dir: Path) -> Leaderboard:
    """Reads and validates the stored leaderboard of ``preset``.

    Everything is checked before any comparison, so a damaged or hand-edited leaderboard cannot make the check pass:
    strict JSON (no key twice, no Infinity or NaN), a spec for every metric, finite numbers within each metric's
    range (standard errors between 0 and the range's width), finite tolerance rules, and a CSV and a JSON that agree
    (methods, seeds, and every mean with its per-seed values).

    Raises:
        LeaderboardError: one line naming the file and the problem.
    """
    try:
        check_preset_name(preset)
    except ValueError as err:
        raise LeaderboardError(str(err)) from None
    csv_path = Path(leaderboards_dir) / f"{preset}.csv"
    json_path = Path(leaderboards_dir) / f"{preset}.json"
    table = _read_table(csv_path)
    record = _read_record(json_path)

    unknown = sorted(set(table["method"]) - known_methods())
    if unknown:
        raise LeaderboardError(f"{csv_path}: unknown method {unknown[0]!r}; "
                               f"known: {', '.join(sorted(known_methods()))}")
    stored_presets = set(table["preset"].astype(str)) | {str(record.get("preset"))}
    if stored_presets != {preset}:
        raise LeaderboardError(f"{csv_path}: rows are for preset(s) {', '.join(sorted(stored_presets))}, "
                               f"expected only {preset!r}")
    if record.get("schema") != SCHEMA_VERSION:
        raise LeaderboardError(f"{json_path}: schema {record.get('schema')!r}, this harness reads schema "
                               f"{SCHEMA_VERSION}; rebuild it with python -m harness.run ... --update-leaderboard")

    command = record.get("command")
    if (not isinstance(command, dict) or not isinstance(command.get("methods"), list)
            or isinstance(command.get("seeds"), bool) or not isinstance(command.get("seeds"), int)
            or command["seeds"] < 1):
        raise LeaderboardError(f"{json_path}: 'command' must hold a list of 'methods' and a positive 'seeds'")
    if sorted(command["methods"]) != sorted(table["method"]):
        raise LeaderboardError(f"{json_path}: command methods {command['methods']} do not match the CSV's "
                               f"{list(table['method'])}")
    if set(table["seeds"]) != {command["seeds"]}:
        raise LeaderboardError(f"{csv_path}: column 'seeds' says {sorted(set(table['seeds']))}, the JSON's command "
                               f"{command['seeds']}")
    specs = _read_specs(record, json_path)
    try:
        tolerances = {unit: build(ToleranceRule, rule, f"tolerances.{unit}")
                      for unit, rule in record["tolerances"].items()}
        per_seed, standard_errors = (
            {name: {metric: [_stored_number(v) for v in record["per_seed"][name][metric][key]]
                    for metric in LEADERBOARD_METRICS} for name in table["method"]}
            for key in ("values", "standard_errors"))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise LeaderboardError(f"{json_path}: malformed or incomplete ({type(err).__name__}: {err})") from None
    if OTHER not in tolerances:
        raise LeaderboardError(f"{json_path}: no tolerance rule {OTHER!r}, the rule of the units without their own")
    for _, row in table.iterrows():
        method = row["method"]
        _check_row(row, per_seed[method], standard_errors[method], specs, command["seeds"], csv_path, json_path)
    caveat = record.get("caveat")
    if caveat is not None and not (isinstance(caveat, str) and caveat.strip()):
        raise LeaderboardError(f"{json_path}: 'caveat' must be a non-empty string (why not to trust it) or absent")
    comparisons = record.get("comparisons", [])
    if not isinstance(comparisons, list) or not all(isinstance(c, dict) for c in comparisons):
        raise LeaderboardError(f"{json_path}: 'comparisons' must be a list of comparison objects or absent")
    return Leaderboard(preset, table, command["methods"], command["seeds"], per_seed, standard_errors, specs,
                       tolerances, record.get("provenance", {}), caveat, comparisons)


def _read_specs(record: dict, json_path: Path) -> dict[str, MetricSpec]:
    """The stored spec of every leaderboard metric."""
    stored = record.get("metrics")
    if not isinstance(stored, dict):
        raise LeaderboardError(f"{json_path}: 'metrics' must map each metric to its spec")
    specs = {}
    for metric in LEADERBOARD_METRICS:
        if metric not in stored:
            raise LeaderboardError(f"{json_path}: metrics.{metric}: missing; every metric needs its spec")
        try:
            specs[metric] = MetricSpec.from_json(stored[metric])
        except MetricError as err:
            raise LeaderboardError(f"{json_path}: metrics.{metric}.{err}") from None
    return specs


def _stored_number(value: object) -> float:
    """A per-seed value of the JSON: a finite number, or null for a missing one (NaN)."""
    number = _number_or_nan(value)
    if number is None:
        raise ValueError(f"{value!r} is not a finite number or null")
    return number


def _check_row(row: pd.Series, values: dict[str, list[float]], standard_errors: dict[str, list[float]],
               specs: dict[str, MetricSpec], seeds: int, csv_path: Path, json_path: Path) -> None:
    """One method's stored values: within range, and the CSV's means those of the JSON's per-seed values."""
    method = row["method"]
    for column in METRIC_COLUMNS:
        metric = STANDARD_ERROR_COLUMNS.get(column, column)
        spec = specs[metric]
        if column in STANDARD_ERROR_COLUMNS:
            stored, where, low, high = standard_errors[metric], "standard_errors", 0.0, spec.high - spec.low
        else:
            stored, where, low, high = values[metric], "values", spec.low, spec.high
        if len(stored) != seeds:
            raise LeaderboardError(f"{json_path}: per_seed.{method}.{metric}.{where} has {len(stored)} values for "
                                   f"{seeds} seeds")
        for path, value in ((csv_path, row[column]), *((json_path, v) for v in stored)):
            if not math.isnan(value) and not low <= value <= high:
                raise LeaderboardError(f"{path}: {method} {column} = {value!r} is outside [{low}, {high}]")
        mean = finite_mean(stored)
        if not (math.isnan(mean) and math.isnan(row[column]) or math.isclose(mean, row[column], rel_tol=1e-6,
                                                                               abs_tol=1e-9)):
            raise LeaderboardError(f"{csv_path}: {method} {column} = {row[column]!r}, but the mean of its per-seed "
                                   f"{where} in {json_path.name} is {mean!r}")


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise LeaderboardError(f"{path}: no such file; write one with "
                               "python -m harness.run ... --update-leaderboard")
    if not path.read_text().strip():
        raise LeaderboardError(f"{path}: the file is empty")
    try:
        table = pd.read_csv(path, dtype=str)  # text, so an error can quote the cell as written
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise LeaderboardError(f"{path}: not a readable CSV ({err})") from None
    for column in COUNT_COLUMNS:  # optional: leaderboards stored before the counts lack them
        if column not in table.columns:
            table[column] = None
    missing = [c for c in LEADERBOARD_COLUMNS if c not in table.columns]
    if missing:
        raise LeaderboardError(f"{path}: missing column {missing[0]!r}; expected {', '.join(LEADERBOARD_COLUMNS)}")
    if table.empty:
        raise LeaderboardError(f"{path}: the file has a header but no rows")
    if table["method"].isna().any() or table["method"].duplicated().any():
        raise LeaderboardError(f"{path}: every row needs a distinct method name")
    for column in ["seeds", *METRIC_COLUMNS, *COUNT_COLUMNS]:
        numeric = pd.to_numeric(table[column], errors="coerce")
        bad = table[column][(numeric.isna() & table[column].notna()) | numeric.isin([math.inf, -math.inf])]
        if not bad.empty:
            row = table.loc[bad.index[0], "method"]
            raise LeaderboardError(f"{path}: column {column!r}, method {row!r}: {bad.iloc[0]!r} is not a finite "
                                   "number")
        table[column] = numeric.astype(float)
    return table[LEADERBOARD_COLUMNS]


def _read_record(path: Path) -> dict:
    if not path.is_file():
        raise LeaderboardError(f"{path}: no such file; the CSV needs its provenance JSON beside it")
    text = path.read_text()
    if not text.strip():
        raise LeaderboardError(f"{path}: the file is empty")
    try:
        record = loads_strict(text)
    except ValueError as err:
        raise LeaderboardError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(record, dict):
        raise LeaderboardError(f"{path}: expected a JSON object")
    return record
