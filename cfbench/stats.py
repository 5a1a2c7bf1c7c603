"""Uncertainty for per-sample means: percentile bootstrap with a fixed seed."""

from __future__ import annotations

import numpy as np

RESAMPLES = 1000
SEED = 0


def bootstrap_half_width(
    values: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED
) -> float | None:
    """Half-width of the 95% percentile-bootstrap interval of the mean (None for < 2 values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float((hi - lo) / 2)
