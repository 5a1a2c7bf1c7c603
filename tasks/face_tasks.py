"""Synthetic face tasks ``synth_smile`` and ``synth_age``: the offline analogue of CelebA smile
and age.

A binary classifier per attribute (class 1 = the attribute is present, as the field's CelebA
classifiers), both directions, on faces rendered by ``tasks/worlds/faces.py`` from an evaluation
seed disjoint from the assets' training seeds. Every sample carries its ground truth: the causal
mask (the pixels the attribute changes when it alone is flipped), the object (face, hair, what is
worn on the head) and the spurious region (background, neck, shoulders), plus its identity and all
its attributes, which the face metrics' stand-in models were trained to read.
"""

from __future__ import annotations

import json
from functools import cached_property

import numpy as np
import torch

from cfbench.api.component import ASSETS
from cfbench.api.task import Task, TaskSamples
from cfbench.errors import UserError
from cfbench.tasks.worlds import faces

EVAL_SEED = 404
REFERENCE_SEED = 606  # realism references: renders no asset or evaluation split uses
ANNOTATION_SEED, ANNOTATED = (
    101,
    20000,
)  # the training scenes whose attributes give CD's correlations
SHORT = {"Smiling": "smile", "Young": "age"}


class FaceTask(Task):
    image_size = faces.SIZE
    has_ground_truth = True
    ground_truth_regions = ("causal", "object", "spurious")
    pair = (0, 1)

    def __init__(self, attribute: str, device: torch.device = torch.device("cpu")):
        super().__init__(device)
        short = SHORT[attribute]
        self.world = faces.FaceWorld(attribute)
        self.attribute = attribute
        self.name = f"synth_{short}"
        self.benchmark = f"celeba/{short}"  # the CelebA task it stands in for
        self.class_names = self.world.classes
        self.description = (
            f"procedural 64x64 faces, {attribute} off <-> on, ground-truth causal/"
            "object/spurious masks, identities and 14 CelebA-named attributes"
        )
        self.components = {
            "classifier": f"asset:{short}_classifier",
            "autoencoder": "asset:face_autoencoder",
            "simsiam": "asset:face_simsiam",
            "fid_features": "asset:face_simsiam",
            "sae": f"asset:{short}_sae",
            "diffusion_prior": "asset:face_diffusion_prior",
            "diffae": "asset:face_diffae",
            "spurious_vae": f"asset:{short}_spurious_vae",
            "attribute_oracle": "asset:face_oracle",
            "face_identity": "asset:face_identity",
        }

    def reference(self, label, n):
        """Fresh renders of class ``label`` from a seed of their own."""
        images, _ = self.world.images(REFERENCE_SEED, n, classes=(label,))
        yield from (b.float() / 255 for b in images.split(64))

    def sample_ids(self, n: int | None) -> list[str]:
        if n is None:
            raise UserError(
                f"Task '{self.name}' is generated on demand and has no fixed size: pass --n."
            )
        return [f"{i:05d}" for i in range(n)]

    def load(self, ids: list[str]) -> TaskSamples:
        try:
            indices = [int(i) for i in ids]
        except ValueError:
            raise UserError(
                f"Sample ids of task '{self.name}' are zero-padded integers; got {ids[:3]}..."
            ) from None
        scenes = [self.world.render(EVAL_SEED, i, self.world.label_for(i)) for i in indices]
        images = (
            torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).contiguous()
        )
        masks = {
            k: torch.from_numpy(np.stack([getattr(s, k) for s in scenes])).unsqueeze(1).float()
            for k in self.ground_truth_regions
        }
        return TaskSamples(images, torch.tensor([s.label for s in scenes]), list(ids), masks)

    @cached_property
    def _correlations(self):
        table = faces.BOTH.attribute_table(ANNOTATION_SEED, ANNOTATED).astype(float)
        query = faces.ATTRIBUTES.index(self.attribute)
        corr = np.array(
            [np.corrcoef(table[:, query], table[:, i])[0, 1] for i in range(table.shape[1])]
        )
        return faces.ATTRIBUTES, torch.from_numpy(np.nan_to_num(corr)), query

    def attribute_correlations(self):
        """From the generator's attributes of ``ANNOTATED`` training scenes (the annotations a
        CelebA task reads from list_attr_celeba.csv)."""
        return self._correlations

    @cached_property
    def manifest(self) -> dict:
        path = ASSETS / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def provenance(self, roles=None) -> dict:
        found = super().provenance(roles)
        for role, entry in found.items():  # held-out measurements of the shipped asset
            entry["measurements"] = self.manifest.get(self.components[role][len("asset:") :])
        return found
