"""``results.json`` as strict JSON: a missing number is ``null``, never a bare ``NaN``.

Python's ``json`` writes NaN as ``NaN``, which JSON does not have: JavaScript's ``JSON.parse``, jq and most other
readers refuse the file. In memory the harness keeps NaN (arithmetic and ``math.isnan`` want a float), so the file
is written with :func:`dumps` and read back through :func:`missing_as_nan`, which turns the metric numbers that are
``null`` back into NaN.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from harness.core.metrics import Metric


def strict(obj: object) -> object:
    """``obj`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: strict(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(value) for value in obj]
    return obj


def dumps(results: dict) -> str:
    """``results`` as strict JSON text (``null`` for NaN and infinities; paths and dataclasses as text)."""
    return json.dumps(strict(json.loads(json.dumps(results, default=_default))), indent=1, allow_nan=False)


def missing_as_nan(results: dict) -> dict:
    """Turns ``null`` back into NaN where the harness computes with the number: every metric summary's mean,
    interval, values and standard errors, and each per-seed metric's value and standard error. Other ``null``
    values (a missing name, an unbounded end of a metric's range) are left as they are."""
    nan = float("nan")

    def numbers(record: dict, scalars: tuple[str, ...], lists: tuple[str, ...] = ()) -> None:
        for key in scalars:
            if key in record and record[key] is None:
                record[key] = nan
        for key in lists:
            if isinstance(record.get(key), list):
                record[key] = [nan if v is None else v for v in record[key]]

    for entry in results.get("methods", {}).values():
        for summary in entry.get("metrics", {}).values():
            if isinstance(summary, dict):
                numbers(summary, ("mean", "ci95"), ("values", "standard_errors"))
        for record in entry.get("per_seed", []):
            for key, metric in record.items():
                if key not in ("seed", "details") and isinstance(metric, dict):
                    numbers(metric, ("value", "standard_error"))
    return results


def _default(obj: object) -> object:
    if isinstance(obj, Metric):  # flat, as results.json stores a metric
        return obj.to_json()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return str(obj)
