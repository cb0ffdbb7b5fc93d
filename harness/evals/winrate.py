"""Simulated win rate against reference outputs, in alpaca_eval's conventions and file formats.

The flow for one policy on one evaluation set::

    records = judge_against_reference(judge, instructions, outputs, references, seed)
    metrics = win_rate_metrics([r["preference_vs_reference"] for r in records], model_lengths, reference_lengths)
    write_outputs(dir / "model_outputs.json", ...); write_annotations(dir / "annotations.json", records)

alpaca_eval's convention, used for every preference "vs reference" here: the reference is ``output_1`` (the
baseline) and the model ``output_2``; ``Preference.FIRST`` means the reference won, ``Preference.SECOND`` the model,
``Preference.TIE`` a tie. Weighted judges (``weighted_alpaca_eval_gpt4_turbo``) give any value in between, the
probability-weighted verdict; NaN means the judge gave no usable verdict and the item is left out, as alpaca_eval
does.

The length-controlled figure is our own offline variant (``lc_variant = "offline-length-glm"``), not alpaca_eval's
official one: see :func:`length_controlled_win_rate`.
"""

from __future__ import annotations

import json
import math
import numbers
import random
from pathlib import Path
from typing import Sequence

import numpy as np
from alpaca_eval.metrics import pairwise_to_winrate

from harness.core.metrics import Metric, MetricSpec
from harness.core.publish import write_atomic
from harness.core.types import Preference
from harness.outputs import output_dir
from harness.suites.base import Annotator

LC_VARIANT = "offline-length-glm"
DEFAULT_LC_L2 = 0.1  # ridge on the length slope: a N(0, 3.2^2) prior in log-odds per unit of tanh-length

# Win rates against the reference, in percent; a longer output is neither better nor worse.
WIN_RATE = MetricSpec(higher_is_better=True, unit="percent", low=0.0, high=100.0)
OUTPUT_LENGTH = MetricSpec(higher_is_better=None, unit="characters", low=0.0)


def model_position(seed: int, index: int, instruction: str) -> int:
    """Where the model's output is shown to the judge for one item: 1 (first) or 2 (second).

    Judges favour one position (LLM judges usually the first), so each item gets its own coin flip. The flip is
    seeded by the run seed, the item's index and its instruction, so every method evaluated on the same set shows
    its output in the same position for the same item: position bias then cancels between methods instead of adding
    noise to their comparison. A string seed goes through SHA-512 in :class:`random.Random`, so the flips do not
    depend on ``PYTHONHASHSEED``.
    """
    return 1 if random.Random(f"{seed}/{index}/{instruction}").random() < 0.5 else 2


def preference_vs_reference(preference: float, position: int) -> float:
    """Re-expresses a verdict on the outputs as shown as a verdict with the reference first.

    Swapping the two outputs maps a preference ``p`` to ``3 - p``: FIRST and SECOND trade places, TIE stays, a
    weighted verdict is mirrored around 1.5, and NaN stays NaN.

    Args:
        preference: the judge's verdict on (output_1, output_2) as shown.
        position: where the model's output was shown, 1 or 2.
    """
    if position == 2:
        return preference
    if position == 1:
        return Preference.FIRST + Preference.SECOND - preference
    raise ValueError(f"position must be 1 or 2, got {position!r}")


def judge_against_reference(
    annotator: Annotator,
    instructions: Sequence[str],
    outputs: Sequence[str],
    references: Sequence[str],
    seed: int,
    *,
    generator: str = "model",
    reference_generator: str = "reference",
) -> list[dict]:
    """Judges each model output against the reference output for the same instruction.

    The model's output goes in a random position per item (:func:`model_position`), the judge sees the whole batch
    in one ``annotate`` call, and the swap is undone afterwards.

    Args:
        annotator: the judge.
        instructions: one instruction per item.
        outputs: the model's output per item.
        references: the reference output per item.
        seed: the run seed, which fixes the positions.
        generator: the model's name, recorded in the ``generator_*`` fields.
        reference_generator: the reference's name, likewise.

    Returns:
        One record per item, in alpaca_eval's annotation fields but *as shown to the judge*: ``instruction``,
        ``output_1``/``generator_1`` and ``output_2``/``generator_2`` in the order shown, ``annotator``,
        ``preference`` (the judge's raw verdict on that order), ``model_position`` (1 or 2) and
        ``preference_vs_reference`` (the verdict with the reference first: 1 reference wins, 2 model wins, 1.5 tie).
        :func:`write_annotations` turns these into alpaca_eval's reference-first file.

    Raises:
        ValueError: the inputs differ in length or are empty, or the judge returned the wrong number of verdicts
            or a verdict outside [1, 2].
    """
    _common_length(instructions=instructions, outputs=outputs, references=references)
    positions = [model_position(seed, i, instruction) for i, instruction in enumerate(instructions)]
    shown = [
        ((output, generator), (reference, reference_generator))
        if position == 1
        else ((reference, reference_generator), (output, generator))
        for position, output, reference in zip(positions, outputs, references)
    ]
    raw = annotator.annotate(list(instructions), [first[0] for first, _ in shown], [second[0] for _, second in shown])
    if len(raw) != len(shown):
        raise ValueError(f"annotator {annotator.name!r} returned {len(raw)} preferences for {len(shown)} items")
    raw = _checked_preferences(raw, f"preferences from annotator {annotator.name!r}")
    return [
        {
            "instruction": instruction,
            "output_1": first[0],
            "generator_1": first[1],
            "output_2": second[0],
            "generator_2": second[1],
            "annotator": annotator.name,
            "preference": preference,
            "model_position": position,
            "preference_vs_reference": preference_vs_reference(preference, position),
        }
        for instruction, (first, second), preference, position in zip(instructions, shown, raw, positions)
    ]


def win_rate_metrics(
    preferences: Sequence[float],
    model_lengths: Sequence[float],
    reference_lengths: Sequence[float],
    *,
    lc_l2: float = DEFAULT_LC_L2,
) -> dict:
    """Win rate of the model against the reference, its standard error, counts, and a length-controlled figure.

    Args:
        preferences: one verdict per item with the reference first (``preference_vs_reference``): 1 reference
            wins, 2 model wins, 1.5 tie, anything between for weighted judges, NaN for no verdict (left out).
        model_lengths: length of each model output, in characters as alpaca_eval measures it.
        reference_lengths: length of each reference output.
        lc_l2: ridge strength on the length slope of the length GLM (see :func:`length_controlled_win_rate`).

    Returns:
        alpaca_eval's ``pairwise_to_winrate`` figures (``win_rate``, ``standard_error``, ``n_wins``,
        ``n_wins_base``, ``n_draws``, ``n_total``, ``discrete_win_rate``; percentages, NaN items left out), plus
        ``n_missing`` (NaN verdicts), ``avg_length`` (mean model output length over all items), ``lc_win_rate``,
        ``lc_standard_error``, ``lc_length_coef``, ``lc_variant`` and ``higher_is_better`` (True).

    Raises:
        ValueError: inputs differ in length or are empty, a preference is outside [1, 2], a length is negative,
            or every verdict is missing.
    """
    _common_length(preferences=preferences, model_lengths=model_lengths, reference_lengths=reference_lengths)
    prefs = np.asarray(_checked_preferences(preferences, "preferences"))
    lengths = {"model_lengths": model_lengths, "reference_lengths": reference_lengths}
    for name, values in lengths.items():
        if not all(isinstance(v, numbers.Real) and math.isfinite(v) and v >= 0 for v in values):
            raise ValueError(f"{name} must be finite non-negative numbers (characters per output)")
    judged = ~np.isnan(prefs)
    if not judged.any():
        raise ValueError("preferences: every verdict is NaN (the judge gave no usable verdict); nothing to score")

    raw = pairwise_to_winrate(prefs[judged].tolist())
    metrics = {key: int(value) if key.startswith("n_") else float(value) for key, value in raw.items()}
    deltas = (np.asarray(model_lengths, float) - np.asarray(reference_lengths, float))[judged]
    lc_rate, lc_se, lc_coef = length_controlled_win_rate(deltas, prefs[judged] - Preference.FIRST, l2=lc_l2)
    metrics.update(
        n_missing=int((~judged).sum()),
        avg_length=float(np.mean(model_lengths)),
        lc_win_rate=lc_rate,
        lc_standard_error=lc_se,
        lc_length_coef=lc_coef,
        lc_variant=LC_VARIANT,
        higher_is_better=WIN_RATE.higher_is_better,
    )
    return metrics


def win_rate_records(metrics: dict) -> dict[str, Metric]:
    """The win rate, length-controlled win rate and output length of :func:`win_rate_metrics`' figures (a win-rate
    stage's ``metrics.json``) as metrics, each with its own standard error and item count."""
    judged = metrics["n_total"]
    return {
        "win_rate": Metric(metrics["win_rate"], WIN_RATE, metrics["standard_error"], judged),
        "lc_win_rate": Metric(metrics["lc_win_rate"], WIN_RATE, metrics["lc_standard_error"], judged),
        "avg_length": Metric(metrics["avg_length"], OUTPUT_LENGTH, n=judged + metrics["n_missing"]),
    }


def length_controlled_win_rate(
    length_deltas: Sequence[float], wins: Sequence[float], l2: float = DEFAULT_LC_L2
) -> tuple[float, float, float]:
    """The win rate the model would have at equal length, from a logistic GLM on the length difference.

    The GLM is ``P(model wins) = sigmoid(a + b * tanh(delta / sd(delta)))`` with ``delta`` the model's length minus
    the reference's; the length-controlled win rate is the prediction at ``delta = 0``, ``100 * sigmoid(a)``, and its
    standard error comes from the fit's inverse Fisher information by the delta method. Soft verdicts (ties 0.5,
    weighted judges) are fractional targets, as in alpaca_eval.

    How this differs from alpaca_eval's official ``get_length_controlled_winrate``: the official GLM
    (``length_controlled_v1``) adds a per-instruction difficulty term and regularises the model's weights towards
    those of two "gamed" baselines, both read from ``df_gamed.csv``, which it downloads from the hub on every call
    (so it cannot run offline); even its ``length_controlled_minimal`` formula downloads that file. The official fit
    is an L1-penalised logistic regression with the penalty chosen by 5-fold cross-validation (scikit-learn). This
    variant keeps only the length term and an intercept (the ``minimal`` formula's shape), fitted by Newton's method
    with a fixed ridge ``l2`` on the slope alone so that a perfectly length-separated set still has a finite fit.
    Its figures are comparable across runs of this harness, not with alpaca_eval's leaderboard.

    Special cases: if every verdict is the same (all wins or all losses), length cannot change it and the raw rate
    is returned with error 0. If the length difference never varies and is zero, the fit is intercept-only and
    equals the raw win rate; if it never varies but is not zero, length and quality cannot be told apart and the
    result is NaN.

    Args:
        length_deltas: model length minus reference length, per judged item.
        wins: the model's share of each verdict in [0, 1] (preference vs reference minus 1).
        l2: ridge strength on the slope; 0 gives the plain maximum-likelihood fit.

    Returns:
        (length-controlled win rate in percent, its standard error in percent, the fitted slope ``b``).
    """
    deltas, y = np.asarray(length_deltas, float), np.asarray(wins, float)
    if l2 < 0:
        raise ValueError(f"lc_l2 must be >= 0, got {l2}")
    rate = float(y.mean())
    if rate in (0.0, 1.0):
        return 100 * rate, 0.0, 0.0
    scale = float(deltas.std(ddof=1)) if len(deltas) > 1 else 0.0
    if scale == 0.0:
        if np.any(deltas != 0):
            return math.nan, math.nan, math.nan
        # Intercept-only logistic fit, in closed form: sigmoid(a) = mean(y), Var(a) = 1 / (n p (1 - p)).
        return 100 * rate, 100 * math.sqrt(rate * (1 - rate) / len(y)), 0.0
    intercept, slope, covariance = _fit_logistic(np.tanh(deltas / scale), y, l2)
    p = float(_sigmoid(intercept))
    return 100 * p, 100 * p * (1 - p) * math.sqrt(covariance[0, 0]), slope


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, max_iter: int = 100) -> tuple[float, float, np.ndarray]:
    """Maximises sum(y log s + (1 - y) log(1 - s)) - l2 * b^2 / 2 with s = sigmoid(a + b x), by Newton's method.

    Returns (a, b, inverse penalised Fisher information). The objective is concave, and strictly so when l2 > 0;
    each Newton step is halved until the objective does not fall, so the iteration cannot overshoot.
    """

    def objective(theta: np.ndarray) -> float:
        z = theta[0] + theta[1] * x
        # log sigmoid(z) = -log(1 + e^-z), written with logaddexp so large |z| does not overflow
        return float(-(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)).sum() - 0.5 * l2 * theta[1] ** 2)

    def information(theta: np.ndarray) -> np.ndarray:
        w = _sigmoid(theta[0] + theta[1] * x)
        w = w * (1 - w)
        return np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum() + l2]])

    mean = y.mean()
    theta = np.array([math.log(mean / (1 - mean)), 0.0])
    try:
        for _ in range(max_iter):
            residual = y - _sigmoid(theta[0] + theta[1] * x)
            gradient = np.array([residual.sum(), (residual * x).sum() - l2 * theta[1]])
            step = np.linalg.solve(information(theta), gradient)
            current, size = objective(theta), 1.0
            while objective(theta + size * step) < current - 1e-12 and size > 1e-8:
                size /= 2
            theta = theta + size * step
            if np.abs(size * step).max() < 1e-10:
                return float(theta[0]), float(theta[1]), np.linalg.inv(information(theta))
    except np.linalg.LinAlgError:  # unpenalised and separated: the weights p(1 - p) vanish as |b| grows
        pass
    raise ValueError(
        f"the length GLM did not converge in {max_iter} Newton steps: the verdicts are perfectly separated by "
        f"length; use lc_l2 > 0 (got {l2})"
    )


def _sigmoid(z: float | np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-z) written with tanh, which does not overflow for large |z|
    return 0.5 * (1 + np.tanh(np.asarray(z) / 2))


# What a win-rate stage dir holds (alpaca_eval's formats): the model's outputs, the references, the verdicts.
STAGE_FILES = ("model_outputs.json", "reference_outputs.json", "annotations.json")


def find_stage(run_dir: Path, stage: str, method: str, seed: int, eval_set: str) -> Path | None:
    """A dir with a method's alpaca_eval files (:data:`STAGE_FILES`) for one seed and evaluation set: the win-rate
    stage recorded in results (``details.eval_sets.<set>.stage``), else the run's own copy in ``outputs/``
    (:mod:`harness.outputs`), else a stage of that name under the run's ``stages/`` (a run whose ``--cache`` was
    inside its run dir); None if none is left.

    Results record the stage's path as the run saw it: in the shared stage cache, which ``python -m harness.cache
    prune`` may have cleaned since, or relative to where the run was launched. The copy in ``outputs/`` keeps
    reports of a moved run dir, or of one whose stages were pruned, complete.
    """
    if not stage:
        return None
    copies = (output_dir(run_dir, method, seed, eval_set), Path(run_dir) / "stages" / Path(stage).name)
    for candidate in (Path(stage), *copies):
        if all((candidate / name).is_file() for name in STAGE_FILES):
            return candidate
    return None


def write_outputs(
    path: Path,
    instructions: Sequence[str],
    outputs: Sequence[str],
    generator: str | Sequence[str],
    dataset: str,
) -> Path:
    """Writes alpaca_eval's ``model_outputs.json`` / ``reference_outputs.json``, atomically.

    Both files share one format, a list of ``{instruction, output, generator, dataset}``, so a user can re-judge
    with ``alpaca_eval --model_outputs model_outputs.json --reference_outputs reference_outputs.json
    --annotators_config <judge>``.

    Args:
        path: the file to write (its folder is created).
        instructions: one instruction per item.
        outputs: one output per item.
        generator: who wrote the outputs: one name, or one per item (reference sets can mix generators).
        dataset: the evaluation set's name.

    Returns:
        ``path``.
    """
    generators = [generator] * len(outputs) if isinstance(generator, str) else list(generator)
    _common_length(instructions=instructions, outputs=outputs, generator=generators)
    rows = [
        {"instruction": instruction, "output": output, "generator": name, "dataset": dataset}
        for instruction, output, name in zip(instructions, outputs, generators)
    ]
    return _write_json(path, rows)


def write_annotations(path: Path, records: Sequence[dict]) -> Path:
    """Writes alpaca_eval's ``annotations.json`` from :func:`judge_against_reference` records, atomically.

    alpaca_eval's file puts the reference first: ``output_1``/``generator_1`` is the reference,
    ``output_2``/``generator_2`` the model and ``preference`` the verdict in that order (what its
    ``get_winrate`` reads). The records keep the order shown to the judge, so each is turned around here; the order
    shown and the raw verdict stay in ``model_position`` and ``preference_as_shown``. Missing verdicts (NaN) are
    written as ``null``, as alpaca_eval writes them.

    Returns:
        ``path``.
    """
    rows = []
    for record in records:
        position = record["model_position"]
        model, reference = ("1", "2") if position == 1 else ("2", "1")
        rows.append(
            {
                "instruction": record["instruction"],
                "output_1": record[f"output_{reference}"],
                "generator_1": record[f"generator_{reference}"],
                "output_2": record[f"output_{model}"],
                "generator_2": record[f"generator_{model}"],
                "annotator": record["annotator"],
                "preference": _json_number(record["preference_vs_reference"]),
                "model_position": position,
                "preference_as_shown": _json_number(record["preference"]),
            }
        )
    return _write_json(path, rows)


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _write_json(path: Path, rows: list[dict]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(rows, indent=2, allow_nan=False))
    return path


def _common_length(**sequences: Sequence) -> int:
    """The shared length of ``sequences``; raises ValueError naming them if they differ or are empty."""
    lengths = {name: len(values) for name, values in sequences.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{', '.join(lengths)} must have the same length, got {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError(f"{', '.join(lengths)} must not be empty")
    return n


def _checked_preferences(values: Sequence[float], source: str) -> list[float]:
    """``values`` as floats; raises ValueError unless each is NaN or within [FIRST, SECOND]."""
    checked = []
    for i, value in enumerate(values):
        number = float("nan") if value is None else value
        if not isinstance(number, numbers.Real) or not (
            math.isnan(number) or Preference.FIRST <= number <= Preference.SECOND
        ):
            raise ValueError(
                f"{source}[{i}] = {value!r}: a preference must be {Preference.FIRST} (first/reference wins), "
                f"{Preference.SECOND} (second/model wins), {Preference.TIE} (tie), a weighted value in between, "
                "or NaN (no verdict)"
            )
        checked.append(float(number))
    return checked
