"""Validity: did the edit reach the target class?"""

from __future__ import annotations

from cfbench.api.metric import Metric


class FlipRate(Metric):
    """FR: share of samples whose prediction after the edit is the target class (a fraction; what
    counts as reaching it is the protocol's: the ``success`` column it selects the rows with)."""

    name = "FR"
    higher_is_better = True
    percent, decimals, tolerance = True, 1, (0.05, 0.0)
    column = "flipped"

    def values(self, rows):
        return rows["success"].to_numpy(float)
