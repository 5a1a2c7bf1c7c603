"""Controls: counterfactuals that are valid by construction and tell what a metric cannot see.

``other_sample`` returns, for each sample, the next sample of the task's evaluation split (in the
task's order) whose label is the target class: on the face tasks another person with the target
attribute. It flips (as far as the classifier is right) while destroying identity and every other
attribute, so FVA, FS and MNAC must rate it far below an edit that keeps the person.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cfbench.api.method import CounterfactualMethod, HParams
from cfbench.api.types import Batch, Counterfactuals
from cfbench.errors import UserError


@dataclass(frozen=True)
class OtherSampleParams(HParams):
    pass


class OtherSample(CounterfactualMethod):
    name = "other_sample"
    Params = OtherSampleParams

    def replacement(self, sample_id: str, target: int) -> str:
        """The first sample after ``sample_id`` in the task's order whose label is ``target``."""
        n = 64
        while True:
            ids = self.task.sample_ids(n)
            if sample_id in ids:
                later = ids[ids.index(sample_id) + 1 :]
                for start in range(0, len(later), 32):
                    chunk = later[start : start + 32]
                    labels = self.task.load(chunk).labels.tolist()
                    if target in labels:
                        return chunk[labels.index(target)]
            if len(ids) < n:  # the whole split was searched
                raise UserError(f"other_sample: no sample of class {target} follows {sample_id}.")
            n *= 2

    def generate(self, batch: Batch) -> Counterfactuals:
        ids = [self.replacement(s, int(t)) for s, t in zip(batch.sample_ids, batch.target.tolist())]
        images = self.task.load(ids).images.to(batch.images.device)
        zero = torch.zeros(len(batch), dtype=torch.long)
        return Counterfactuals(images, None, {"steps": zero, "nfe": zero})
