"""Synthetic tasks: procedurally generated pairs with ground-truth masks, on shipped assets.

The evaluation split uses its own generator seed, disjoint from the seeds the assets were
trained on (``components/training.py``). Models are the project-trained assets in ``assets/``.
"""

from __future__ import annotations

import json
from functools import cached_property

import numpy as np
import torch

from cfbench.api.component import ASSETS
from cfbench.api.task import Task, TaskSamples
from cfbench.errors import UserError
from cfbench.tasks.worlds import animals

EVAL_SEED = 303
REFERENCE_SEED = 505  # realism references: renders no asset or evaluation split uses


class SyntheticTask(Task):
    image_size = animals.SIZE
    has_ground_truth = True
    ground_truth_regions = ("causal", "object", "spurious")
    class_names = animals.CLASSES
    components = {
        "classifier": "asset:classifier",
        "autoencoder": "asset:autoencoder",
        "simsiam": "asset:simsiam",
        "fid_features": "asset:simsiam",
        "sae": "asset:sae",
        "diffusion_prior": "asset:diffusion_prior",
        "rcsb_bridge": "asset:animal_bridge",
        "diffae": "asset:diffae",
        "spurious_vae": "asset:spurious_vae",
        "class_oracle": "asset:animal_oracle",
    }

    def __init__(
        self,
        pair_name: str,
        device: torch.device = torch.device("cpu"),
        bg_correlation: float = 0.0,
        shortcut: bool = False,
        one_direction: int | None = None,
    ):
        """``shortcut``: the classifier under explanation is the one trained with the background
        tone tied to the class (``shortcut_classifier``), and every evaluation image has its class's
        tone, so the shortcut is open to every edit."""
        super().__init__(device)
        self.name = f"synth_{pair_name}" + ("_shortcut" if shortcut else "")
        self.pair = animals.PAIRS[pair_name]
        self.one_direction = one_direction
        if one_direction is not None:
            source, target = (
                animals.CLASSES[self.pair[i]] for i in (one_direction, 1 - one_direction)
            )
            self.name = f"synth_{source}_to_{target}"
        self.benchmark = f"imagenet/{pair_name}"  # the ImageNet pair it stands in for
        self.shortcut = shortcut
        self.bg_correlation = 1.0 if shortcut else bg_correlation
        a, b = (animals.CLASSES[c] for c in self.pair)
        self.description = (
            f"procedural {a} <-> {b}, 64x64, ground-truth causal/object/spurious masks"
        )
        if shortcut:
            # The SAE was trained on the unbiased classifier's features, so it is not offered here.
            self.components = {
                **{k: v for k, v in self.components.items() if k != "sae"},
                "classifier": "asset:shortcut_classifier",
                "spurious_vae": "asset:shortcut_spurious_vae",
            }
            self.description += "; the classifier has a background-tone shortcut"

    def sample_ids(self, n: int | None) -> list[str]:
        if n is None:
            raise UserError(
                f"Task '{self.name}' is generated on demand and has no fixed size: pass --n."
            )
        if self.one_direction is None:
            return [f"{i:05d}" for i in range(n)]
        return [f"{2 * k + self.one_direction:05d}" for k in range(n)]  # classes alternate

    def load(self, ids: list[str]) -> TaskSamples:
        try:
            indices = [int(i) for i in ids]
        except ValueError as err:
            raise UserError(
                f"Sample ids of task '{self.name}' are zero-padded integers; got {ids[:3]}..."
            ) from err
        rendered = [
            animals.render(EVAL_SEED, i, animals.label_for(i, self.pair), self.bg_correlation)
            for i in indices
        ]

        def stack(arrays):
            return torch.from_numpy(np.stack(arrays))

        images = stack([r.image for r in rendered]).permute(0, 3, 1, 2).contiguous()
        masks = {
            k: stack([getattr(r, k) for r in rendered]).unsqueeze(1).float()
            for k in ("causal", "object", "spurious")
        }
        return TaskSamples(images, torch.tensor([r.label for r in rendered]), list(ids), masks)

    def reference(self, label, n):
        """Fresh renders of class ``label`` from a seed of their own, drawn as the evaluation
        split is (the task's background correlation)."""
        images, _ = animals.images(
            REFERENCE_SEED, n, classes=(label,), bg_correlation=self.bg_correlation
        )
        yield from (b.float() / 255 for b in images.split(64))

    @cached_property
    def manifest(self) -> dict:
        return json.loads((ASSETS / "manifest.json").read_text())

    def provenance(self, roles=None) -> dict:
        found = super().provenance(roles)
        for role, entry in found.items():  # held-out measurements of the shipped asset
            entry["measurements"] = self.manifest.get(self.components[role][len("asset:") :])
        return found

    def settings(self) -> dict:
        """The background correlation, and how much the classifier relies on the background."""
        classifier = self.manifest.get(self.components["classifier"][len("asset:") :], {})
        return {
            "bg_correlation": self.bg_correlation,
            "background_reliance": classifier.get("background_reliance"),
        }
