"""Numbers for results.json: final value and area under a learning curve, mean and spread over seeds."""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np


def auc(iterations: Sequence[float], values: Sequence[float]) -> float:
    """Area under the curve divided by its span: the curve's mean height (trapezoid rule)."""
    x, y = np.asarray(iterations, dtype=float), np.asarray(values, dtype=float)
    if len(x) < 2:
        return float(y[0])
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def spread(values: Sequence[float]) -> Dict[str, object]:
    """Mean, sample standard deviation, min, max and the values themselves."""
    arr = np.asarray(values, dtype=float)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "values": [float(v) for v in arr],
    }
