"""A measured metric and what it takes to read it: which way is better, its unit and range, standard error and n.

A metric is made where it is measured (the win-rate, knowledge and reward-model evaluations) and travels as this
record into ``results.json``, the stored leaderboards, the regression check and the reports. None of those infers
anything from a metric's name: a new metric is read right because it says how to read it.

:class:`MetricSpec` is what a metric is (the same for every seed and method of a run); :class:`Metric` is one
measurement of it. Both turn into flat JSON objects and back; JSON has no NaN or infinity, so a missing value and
an unbounded end of a range are ``null`` there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

# Units a metric can be in. Each picks its regression tolerance (harness.leaderboard.TOLERANCES) and its precision
# in tables (harness.report.content.DECIMALS): win rates are percent (0-100), accuracies fractions (0-1).
UNITS = ("percent", "fraction", "seconds", "characters", "nats", "reward")


class MetricError(ValueError):
    """A metric record that cannot be read; the message is one line naming the field."""


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is: which way is better, its unit, and the values it can take.

    Attributes:
        higher_is_better: True or False; None when no direction is better (a length, a KL): such a metric is
            reported, never ranked or failed.
        unit: one of :data:`UNITS`.
        low: the smallest value the metric can take (``-inf``: unbounded).
        high: the largest (``inf``: unbounded).
    """

    higher_is_better: bool | None
    unit: str
    low: float = -math.inf
    high: float = math.inf

    def __post_init__(self) -> None:
        if not (self.higher_is_better is None or isinstance(self.higher_is_better, bool)):
            raise MetricError(f"higher_is_better: must be true, false or null, got {self.higher_is_better!r}")
        if self.unit not in UNITS:
            raise MetricError(f"unit: {self.unit!r} is not a unit; allowed: {', '.join(UNITS)}")
        for name in ("low", "high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise MetricError(f"{name}: must be a number or null (unbounded), got {value!r}")
        if self.low > self.high:
            raise MetricError(f"low: {self.low} is above high {self.high}")

    def to_json(self) -> dict:
        """The spec as a JSON object; an unbounded end is null."""
        return {"higher_is_better": self.higher_is_better, "unit": self.unit,
                "low": _finite_or_none(self.low), "high": _finite_or_none(self.high)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricSpec:
        """Reads :meth:`to_json`'s object (further keys, a measurement's, are ignored).

        Raises:
            MetricError: a key is missing or a value is not allowed.
        """
        if not isinstance(data, Mapping):
            raise MetricError(f"expected an object, got {data!r}"[:120])
        missing = [key for key in ("higher_is_better", "unit") if key not in data]
        if missing:
            raise MetricError(f"{missing[0]}: missing")
        low, high = data.get("low"), data.get("high")
        return cls(data["higher_is_better"], data["unit"], -math.inf if low is None else low,
                   math.inf if high is None else high)


@dataclass(frozen=True)
class Metric:
    """One measurement of a metric, for one method and seed.

    Attributes:
        value: the measured value; NaN when it could not be measured.
        spec: what the metric is (:class:`MetricSpec`).
        standard_error: the standard error of ``value`` over the evaluation's items (NaN: none measured).
        n: how many items ``value`` was measured on (None: not a count of items, such as a wall time).
    """

    value: float
    spec: MetricSpec
    standard_error: float = math.nan
    n: int | None = None

    def to_json(self) -> dict:
        """A flat JSON object: ``value``, ``standard_error``, ``n`` and the spec's fields (NaN kept for the writer:
        :func:`harness.results_json.dumps` writes it as null)."""
        return {"value": self.value, "standard_error": self.standard_error, "n": self.n, **self.spec.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metric:
        """Reads :meth:`to_json`'s object; null value or standard error read as NaN.

        Raises:
            MetricError: a key is missing or a value is not allowed.
        """
        spec = MetricSpec.from_json(data)
        if "value" not in data:
            raise MetricError("value: missing")
        return cls(_number(data["value"], "value"), spec, _number(data.get("standard_error"), "standard_error"),
                   data.get("n"))


def _number(value: object, name: str) -> float:
    """A finite number as float, null or NaN as NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value):
        raise MetricError(f"{name}: must be a finite number or null, got {value!r}")
    return float(value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
