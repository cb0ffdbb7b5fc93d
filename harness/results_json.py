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
    """Turns ``null`` back into NaN where the harness computes with the number: every metric's mean, interval and
    values, and the per-seed records' metric values. Other ``null`` values (a missing name) are left as they are."""
    nan = float("nan")
    for entry in results.get("methods", {}).values():
        for metric in entry.get("metrics", {}).values():
            for key in ("mean", "ci95"):
                if key in metric and metric[key] is None:
                    metric[key] = nan
            if isinstance(metric.get("values"), list):
                metric["values"] = [nan if v is None else v for v in metric["values"]]
        for record in entry.get("per_seed", []):
            for key, value in record.items():
                if value is None and key not in ("seed", "details"):
                    record[key] = nan
    return results


def _default(obj: object) -> object:
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    return str(obj)
