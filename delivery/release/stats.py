"""Small statistics the verdicts use: confidence bounds on a rate of errors."""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(errors: float, total: float, confidence_percent: float) -> tuple[float, float]:
    """Two-sided Wilson score interval of `errors / total` (fractions); (0, 1) when `total` is 0."""
    if total <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence_percent / 100) / 2)
    p = min(max(errors / total, 0.0), 1.0)
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    spread = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)


def per_look_confidence(confidence_percent: float, looks: int) -> float:
    """Bonferroni: the confidence each of `looks` checks needs so all of them together keep `confidence_percent`."""
    return 100 - (100 - confidence_percent) / max(1, looks)
