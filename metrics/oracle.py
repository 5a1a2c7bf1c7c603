"""OFR, the oracle flip rate: whether a second network, one the method never saw, reads the target
on the counterfactual. FR asks the explained classifier; an edit that flips it but not the
oracle fooled the classifier rather than changed the image (``fooled`` marks those samples in
samples.parquet and the comparison figure).

The oracle is the task's ``class_oracle`` where it has one (the synthetic animals: a VGG-style
network of its own seed, trained with background tones independent of the class, so it reads the
animal and not a shortcut; it reads the classifier's class order) and otherwise its
``attribute_oracle`` read at the task's attribute (faces and CelebA: class 1 = the attribute is
present, above 0.5 as ACE counts).
"""

from __future__ import annotations

import torch

from cfbench.api.metric import Metric, SampleContext
from cfbench.metrics.faces import oracle_predictions


class OracleFlipRate(Metric):
    name = "OFR"
    higher_is_better = True
    percent, decimals, tolerance = True, 1, (0.1, 0.0)

    def __init__(self, task, device, options=None):
        super().__init__(task, device, options)
        self.model = "class_oracle" if "class_oracle" in task.declared() else "attribute_oracle"

    def unavailable(self):
        if self.model == "attribute_oracle" and self.task.attribute_correlations() is None:
            return f"task '{self.task.name}' has no class oracle and no oracle attribute"
        return super().unavailable()

    def per_sample(self, ctx: SampleContext):
        oracle = self.task.component(self.model)
        target = ctx.batch.target
        extra = {}
        if self.model == "class_oracle":
            with torch.no_grad():
                read = oracle(ctx.counterfactuals.images).argmax(1)
            seen, extra["oracle_class"] = read == target, read
        else:
            extra = oracle_predictions(oracle, ctx.batch.images, ctx.counterfactuals.images)
            query = self.task.attribute_correlations()[2]
            seen = extra["oracle_after"][:, query] == target.to(extra["oracle_after"])
        flipped = ctx.logits_after.argmax(1) == target
        return {"OFR": seen.float(), "fooled": flipped & ~seen, **extra}
