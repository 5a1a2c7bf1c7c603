"""Validity: did the edit reach the target class?"""

from __future__ import annotations

from cfbench.api.metric import Metric


class FlipRate(Metric):
    """FR: share of samples whose prediction after the edit is the target class (a fraction; what
    counts as reaching it is the protocol's ``successful``)."""

    name = "FR"
    higher_is_better = True
    percent, decimals, tolerance = True, 1, (0.05, 0.0)
    column = "flipped"

    def values(self, rows):
        return self.protocol.successful(rows).astype(float)
