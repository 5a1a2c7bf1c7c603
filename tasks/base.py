"""The ``Task`` interface: data, the classifier under explanation, and lazily loaded components.

Components (classifier, autoencoder, SimSiam, FID features, ...) load on first use and are cached,
so a run that never needs the diffusion prior never loads it. A component that a task cannot
provide raises ``UserError`` naming what is missing and how to provide it.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from cfbench.errors import UserError


@dataclass
class TaskSamples:
    """Images (N,3,H,W in [0,1]), labels (N,), ids, ground-truth masks (N,1,H,W) if known, and the
    source file of each image where there is one (kept in samples.parquet)."""

    images: torch.Tensor
    labels: torch.Tensor
    sample_ids: list[str]
    gt_masks: dict[str, torch.Tensor] = field(default_factory=dict)
    files: list[str] | None = None


def _component(loader: str, doc: str, channels_last: bool = False) -> cached_property:
    """A lazily loaded, cached, frozen model on the task's device, built by the method ``loader``.
    ``channels_last`` stores conv weights NHWC, which the models that counterfactual methods
    differentiate through hundreds of times per sample run faster in (oneDNN on CPU, cuDNN on GPU;
    measured on the synthetic decoder + classifier: 44 -> 38 ms per step at batch 1, 23.6 -> 16.3 ms
    per sample at batch 32, when the input is NHWC too)."""

    def load(self) -> nn.Module:
        model = _frozen(getattr(self, loader)()).to(self.device)
        return model.to(memory_format=torch.channels_last) if channels_last else model

    load.__doc__ = doc
    return cached_property(load)


class Task(abc.ABC):
    name: str
    description: str = ""
    class_names: tuple[str, ...]
    pair: tuple[int, int]          # the two classes; each is flipped to the other
    image_size: int
    has_ground_truth: bool = False   # carries causal/object/spurious masks

    def __init__(self, device: torch.device = torch.device("cpu")):
        self.device = device

    def target_of(self, source: torch.Tensor) -> torch.Tensor:
        """The counterfactual target for each source class (both directions of the pair)."""
        a, b = self.pair
        if not bool(((source == a) | (source == b)).all()):
            raise ValueError(f"task {self.name}: a source class is outside the pair {self.pair}")
        return torch.where(source == a, torch.full_like(source, b), torch.full_like(source, a))

    @abc.abstractmethod
    def sample_ids(self, n: int | None) -> list[str]:
        """The first ``n`` ids of the evaluation split (all when ``n`` is None), in a fixed order."""

    @abc.abstractmethod
    def load(self, ids: list[str]) -> TaskSamples:
        """The samples with these ids, in the given order."""

    # Components. Subclasses override the loaders they can provide.
    def _load_classifier(self) -> nn.Module:
        raise self.missing("classifier")

    def _load_autoencoder(self) -> nn.Module:
        raise self.missing("autoencoder")

    def _load_simsiam(self) -> nn.Module:
        raise self.missing("SimSiam encoder")

    def _load_sae(self) -> nn.Module:
        raise self.missing("sparse autoencoder")

    def _load_diffusion_prior(self) -> nn.Module:
        """Tasks without a shipped prior use a user-supplied diffusers DDPM folder (``tasks/diffusion.py``)."""
        from cfbench.tasks.diffusion import user_prior

        return user_prior(self.name)

    classifier = _component("_load_classifier", "The classifier under explanation.", channels_last=True)
    autoencoder = _component("_load_autoencoder", "Autoencoder whose latent SLCF edits.", channels_last=True)
    simsiam = _component("_load_simsiam", "SimSiam encoder (S^3, and FID features on synthetic tasks).")
    sae = _component("_load_sae", "Sparse autoencoder on the classifier's penultimate activations.")
    diffusion_prior = _component("_load_diffusion_prior", "Denoising model + noise schedule (RCSB).")

    def missing(self, what: str) -> UserError:
        return UserError(f"Task '{self.name}' has no {what}.")

    def provenance(self) -> dict:
        """Which models this task uses, and which of them are stand-ins, for run.json and captions."""
        return {}


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
