"""Attribution maps, one home for all of them (each registered in ``cfbench/catalog.py`` as
``ATTRIBUTIONS``; the interface is ``cfbench/api/attribution.py``).

Integrated gradients live here once, in pixels (captum) and in a latent (SLCF's LIG, Eq. 4):
RCSB's regions, SLCF's masks and ``cfbench localize`` all call these. The registered maps explain
the classifier's source-class logit on the original image (SLCF's Table 4):

  lime  LIME (captum, 8x8-pixel superpixels, black baseline)   ixg  Input x Gradient (captum)
  gc    Grad-CAM (grad-cam)                                    lc   LayerCAM (grad-cam)
  sc    Score-CAM (grad-cam)                                   gig  Guided IG (saliency)
  gbp   Guided Backprop                                        ig   Integrated Gradients (captum)
  lag   SLCF's latent aggregated gradients, through ``SLCF.explain`` (stage 1 toward the
        target, Gaussian-filtered and normalised like SLCF's mask but not thresholded)
  bblig GCD's black-box latent integrated gradients, through ``GCD.explain`` (tasks with a
        diffusion autoencoder; the directions are fitted once per instance, from the task's
        first samples)
"""

from __future__ import annotations

from collections.abc import Callable
from unittest import mock

import numpy as np
import torch
from torch.nn import functional as F

from cfbench.api.attribution import Attribution
from cfbench.api.types import Batch
from cfbench.catalog import METHODS

LIME_CELL, LIME_SAMPLES = 8, 256
GIG_STEPS = 64
IG_STEPS = 50


def latent_integrated_gradients(
    score: Callable[[torch.Tensor], torch.Tensor],
    code: torch.Tensor,
    delta: torch.Tensor,
    steps: int = 50,
) -> torch.Tensor:
    """SLCF's LIG (Eq. 4): ``delta`` times the mean gradient of ``score`` (per-sample scalar,
    (B,)) at the midpoints code + (k + 1/2)/steps * delta, k < steps. Same shape as ``code``."""
    total = torch.zeros_like(delta)
    for k in range(steps):
        point = (code + (k + 0.5) / steps * delta).detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(score(point).sum(), point)
        total += grad
    return delta * total / steps


def pixel_integrated_gradients(
    classifier: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    steps: int = IG_STEPS,
    chunk: int = 256,
) -> torch.Tensor:
    """captum Integrated Gradients of the ``target``-class logit w.r.t. the pixels from a black
    baseline, (B,3,H,W); ``chunk`` is captum's internal batch (kernels round differently at
    other batch sizes, so each caller keeps its own)."""
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        return IntegratedGradients(classifier).attribute(
            x,
            baselines=torch.zeros_like(x),
            target=target,
            n_steps=steps,
            internal_batch_size=chunk,
        )


def to_grid(attribution: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A (B,1,H,W) map averaged onto a coarser (h, w) grid (identity when it already matches)."""
    if tuple(attribution.shape[-2:]) == tuple(grid):
        return attribution
    return F.adaptive_avg_pool2d(attribution, tuple(grid))


def _channel_sum(a: torch.Tensor) -> torch.Tensor:
    return a.detach().sum(1, keepdim=True)


class IntegratedGradientsMap(Attribution):
    label = "IG"

    def explain(self, x, source, target):
        return _channel_sum(pixel_integrated_gradients(self.task.classifier, x, source))


class LimeMap(Attribution):
    label = "LIME"

    def explain(self, x, source, target):
        from captum.attr import Lime

        b, c, h, w = x.shape
        cells = torch.arange((h // LIME_CELL) * (w // LIME_CELL)).view(
            1, 1, h // LIME_CELL, w // LIME_CELL
        )
        mask = (
            F.interpolate(cells.float(), size=(h, w), mode="nearest")
            .long()
            .expand(b, c, h, w)
            .to(x.device)
        )
        return _channel_sum(
            Lime(self.task.classifier).attribute(
                x,
                target=source,
                feature_mask=mask,
                baselines=0.0,
                n_samples=LIME_SAMPLES,
                perturbations_per_eval=LIME_SAMPLES,
            )
        )


class InputXGradientMap(Attribution):
    label = "Input×Gradient"

    def explain(self, x, source, target):
        from captum.attr import InputXGradient

        return _channel_sum(
            InputXGradient(self.task.classifier).attribute(x.clone(), target=source)
        )


def cam_layer(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """The last module (in execution order) that outputs a spatial feature map: the CAM layer."""
    seen: list[torch.nn.Module] = []
    hooks = [
        m.register_forward_hook(
            lambda m, i, o: (
                seen.append(m) if torch.is_tensor(o) and o.dim() == 4 and o.shape[-1] > 1 else None
            )
        )
        for m in model.modules()
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return seen[-1]


class _CAMMap(Attribution):
    """A grad-cam method (``kind``, its class name) on ``cam_layer``, for the source class."""

    kind = "GradCAM"

    def explain(self, x, source, target):
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        classifier = self.task.classifier
        targets = [ClassifierOutputTarget(int(s)) for s in source]
        cam_class = getattr(pytorch_grad_cam, self.kind)
        with cam_class(model=classifier, target_layers=[cam_layer(classifier, x)]) as cam:
            maps = cam(input_tensor=x.clone().requires_grad_(True), targets=targets)
        return torch.from_numpy(maps).unsqueeze(1).to(x)


class GradCAMMap(_CAMMap):
    label, kind = "Grad-CAM", "GradCAM"


class LayerCAMMap(_CAMMap):
    label, kind = "LayerCAM", "LayerCAM"


class ScoreCAMMap(_CAMMap):
    label, kind = "Score-CAM", "ScoreCAM"


class _NumpyWithInterpolation:
    """numpy, plus the ``quantile(interpolation=...)`` keyword that saliency 0.2.1 still passes
    and numpy 2.4 removed (renamed ``method``)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, interpolation="linear", **kwargs):
        return np.quantile(a, q, method=interpolation, **kwargs)


class GuidedIGMap(Attribution):
    label = "Guided IG"

    def explain(self, x, source, target):
        import saliency.core as saliency
        from saliency.core import guided_ig as guided_ig_module

        def call_model(batch, call_model_args, expected_keys):
            inputs = torch.from_numpy(batch).permute(0, 3, 1, 2).to(x).requires_grad_(True)
            logits = self.task.classifier(inputs)
            (grad,) = torch.autograd.grad(logits[:, call_model_args].sum(), inputs)
            return {saliency.INPUT_OUTPUT_GRADIENTS: grad.permute(0, 2, 3, 1).cpu().numpy()}

        with mock.patch.object(guided_ig_module, "np", _NumpyWithInterpolation()):
            maps = [
                saliency.GuidedIG().GetMask(
                    img.permute(1, 2, 0).cpu().numpy(),
                    call_model,
                    int(s),
                    x_baseline=np.zeros(img.permute(1, 2, 0).shape, np.float32),
                    x_steps=GIG_STEPS,
                    max_dist=1.0,
                    fraction=0.5,
                )
                for img, s in zip(x, source)
            ]
        return torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2).sum(1, keepdim=True).to(x)


class GuidedBackpropMap(Attribution):
    """captum's Guided Backprop; it hooks nn.ReLU modules, which the synthetic classifier uses."""

    label = "Guided Backprop"

    def explain(self, x, source, target):
        import warnings

        from captum.attr import GuidedBackprop

        with torch.enable_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            return _channel_sum(
                GuidedBackprop(self.task.classifier).attribute(x.clone(), target=source)
            )


class LatentAggregatedGradients(Attribution):
    """SLCF's LAG map (``SLCF.explain``), with SLCF's settings for the task."""

    label = "LAG"

    def explain(self, x, source, target):
        slcf = METHODS.build("slcf", self.task, x.device)
        return slcf.explain(Batch(x, source, target, [str(i) for i in range(len(x))]))


class BlackBoxLatentIntegratedGradients(Attribution):
    """GCD's BB-LIG along its g-directions, fitted once per instance (from the task's first
    samples)."""

    label = "BB-LIG (GCD)"

    def __init__(self, task, device):
        super().__init__(task, device)
        self.gcd = None

    def explain(self, x, source, target):
        if self.gcd is None:
            self.gcd = METHODS.build("gcd", self.task, x.device)
            self.gcd.fit(self.task.sample_ids(64), 0, None)
        return self.gcd.explain(Batch(x, source, target, [str(i) for i in range(len(x))]))
