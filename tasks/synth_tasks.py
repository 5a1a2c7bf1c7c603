"""Synthetic tasks: procedurally generated pairs with ground-truth masks, on shipped assets.

The evaluation split uses its own generator seed, disjoint from the seeds the assets were
trained on (see ``training.py``). Models are the project-trained assets in ``assets/``.
"""
from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from cfbench.errors import UserError
from cfbench.tasks import synthetic
from cfbench.tasks.base import Task, TaskSamples
from cfbench.tasks.models import LatentAutoencoder, SimSiam, SynthClassifier

ASSETS = Path(__file__).resolve().parent / "assets"
EVAL_SEED = 303


def _asset(name: str) -> Path:
    path = ASSETS / name
    if not path.exists():
        raise UserError(f"The synthetic asset '{name}' is missing from {ASSETS}. It ships with the "
                        "repository; if you removed it, rebuild all assets with `cfbench assets build`.")
    return path


class SyntheticTask(Task):
    image_size = synthetic.SIZE
    has_ground_truth = True
    class_names = synthetic.CLASSES

    def __init__(self, pair_name: str, device: torch.device = torch.device("cpu"),
                 bg_correlation: float = 0.0):
        super().__init__(device)
        self.name = f"synth_{pair_name}"
        self.pair = synthetic.PAIRS[pair_name]
        self.bg_correlation = bg_correlation
        a, b = (synthetic.CLASSES[c] for c in self.pair)
        self.description = f"procedural {a} <-> {b}, 64x64, ground-truth causal/object/spurious masks"

    def sample_ids(self, n: int | None) -> list[str]:
        if n is None:
            raise UserError(f"Task '{self.name}' is generated on demand and has no fixed size: pass --n.")
        return [f"{i:05d}" for i in range(n)]

    def load(self, ids: list[str]) -> TaskSamples:
        try:
            indices = [int(i) for i in ids]
        except ValueError as err:
            raise UserError(f"Sample ids of task '{self.name}' are zero-padded integers; got {ids[:3]}...") from err
        rendered = [synthetic.render(EVAL_SEED, i, synthetic.label_for(i, self.pair), self.bg_correlation)
                    for i in indices]

        def stack(arrays):
            return torch.from_numpy(np.stack(arrays))

        images = stack([r.image for r in rendered]).permute(0, 3, 1, 2).contiguous()
        masks = {k: stack([getattr(r, k) for r in rendered]).unsqueeze(1).float()
                 for k in ("causal", "object", "spurious")}
        return TaskSamples(images, torch.tensor([r.label for r in rendered]), list(ids), masks)

    def _load_classifier(self):
        model = SynthClassifier()
        model.load_state_dict(load_file(str(_asset("classifier.safetensors"))))
        return model

    def _load_autoencoder(self):
        from diffusers import AutoencoderKL

        return LatentAutoencoder(AutoencoderKL.from_pretrained(str(_asset("autoencoder")), low_cpu_mem_usage=False))

    def _load_simsiam(self):
        model = SimSiam()
        model.load_state_dict(load_file(str(_asset("simsiam.safetensors"))))
        return model

    def _load_sae(self):
        from cfbench.tasks.sae import MatryoshkaSAE

        return MatryoshkaSAE.from_state_dict(load_file(str(_asset("sae.safetensors"))))

    def _load_diffusion_prior(self):
        from cfbench.tasks.diffusion import load_prior

        return load_prior(_asset("diffusion_prior"), f"task '{self.name}'")

    @cached_property
    def manifest(self) -> dict:
        return json.loads(_asset("manifest.json").read_text())

    @cached_property
    def asset_digest(self) -> str:
        """sha256 over every shipped asset file, so run.json says exactly which weights were used."""
        digest = hashlib.sha256()
        for path in sorted(p for p in ASSETS.rglob("*") if p.is_file() and p.name != "manifest.json"):
            digest.update(path.relative_to(ASSETS).as_posix().encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def provenance(self) -> dict:
        return {
            "asset_digest": self.asset_digest,
            "classifier": "project-trained SmallResNet on synthetic images (tasks/assets)",
            "autoencoder": "project-trained diffusers AutoencoderKL, 16-ch latent, 32x32 grid "
                           "(stand-in for kl-f8-d16)",
            "simsiam": "project-trained SimSiam on synthetic images (stand-in for ResNet-50 SimSiam)",
            "bg_correlation": self.bg_correlation,
            "asset_measurements": self.manifest,
        }
