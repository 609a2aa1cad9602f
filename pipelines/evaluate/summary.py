"""Helpers that turn per-seed figures into the suite's JSON: mean and 95 % CI over seeds, and the ``unavailable``
convention (a metric that cannot be believed is the string ``"unavailable: <reason>"``, never a number)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from thpad.pipelines.metrics.sets import mean_ci

Value = float | str | None
METRICS = ("var", "fid_fm", "fid_dfm", "snd")  # one row of Table I


def unavailable(reason: str) -> str:
    """The value of a metric that is not reported, with its reason."""
    return f"unavailable: {reason}"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def clean(value: Any) -> Value:
    """A JSON-safe value: finite numbers as floats, NaN and infinities as None, strings kept."""
    if isinstance(value, str) or value is None:
        return value
    value = float(value)
    return value if math.isfinite(value) else None


def seeds_summary(rows: Sequence[Mapping[str, float]], names: Sequence[str] = METRICS) -> dict[str, Any]:
    """Per-seed rows -> {name: mean, ..., "ci": {name: 95 % half width}, "seeds": n} (``sets.mean_ci``)."""
    out: dict[str, Any] = {}
    ci: dict[str, Value] = {}
    for name in names:
        values = [r[name] for r in rows if is_number(r[name])]
        if not values:
            out[name], ci[name] = None, None
            continue
        mean, half = mean_ci(values)
        out[name], ci[name] = clean(mean), clean(half)
    return out | {"ci": ci, "seeds": len(rows)}


def guarded(status: Mapping[str, Any], compute: Callable[[], Any]) -> Any:
    """``compute()`` when the measured factor ``status`` passed validation, else its ``unavailable`` reason."""
    return compute() if status["available"] else unavailable(status["reason"])


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics -> {"a.b.c": leaf} (how DVC and MLflow name them)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flatten(value, f"{name}.")
        else:
            out[name] = value
    return out
