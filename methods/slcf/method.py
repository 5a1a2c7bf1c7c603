"""SLCF: Simple Localized Counterfactuals (latent edits with latent-aggregated-gradient masks).

x is encoded to z by the task's autoencoder and a latent offset dz is learned so that the decoded
image is classified as the target, with loss  lambda_c * CE(f(x_cf), target) + lambda_s * ||dz||_1.
The L1 norm is averaged over latent elements (per sample), so lambda_s = 0.1 means the same for any
latent size; summed over the thousands of elements of a 16-channel latent it would outweigh the
class term
and no edit would ever flip (measured: p(target) stays 0.00 for 60 steps).
"Maximise the target logit" is implemented as cross-entropy toward the target, which raises the
target logit relative to the others (a raw logit can grow without the prediction changing).

Stage 1: Adam on dz for at most ``stage1_steps`` steps or until the prediction flips, summing the
gradients dL/d(dz) along the way (latent aggregated gradients, LAG). The mask is |LAG| summed
over channels, Gaussian-filtered (sigma in latent cells), normalised by its maximum and zeroed
below ``threshold`` (soft above). Stage 2 restarts from the masked stage-1 edit, optimises
z + M * dz with a small random perturbation of the masked latent at every step and stops a sample
once p(target) >= ``confidence`` for ``patience`` consecutive steps (at most ``stage2_steps``).

``residual=True`` (cfbench's default) returns x + D(z + M dz) - D(z): the decoded *change* applied
to the input, so the autoencoder's reconstruction error is not counted as part of the edit.
``residual=False`` returns D(z + M dz) as in the paper's figures. Everything is batched; finished
samples are frozen (per-sample Adam), so a sample's result does not depend on its batch.

The paper's ablations are presets of this one class (registry lines in ``cfbench/catalog.py``), so
every variant runs the same two-stage loop and the same mask post-processing: ``mask`` picks the
attribution the stage-2 mask is made from (``lag``; ``lig`` latent integrated gradients; ``ig``
pixel Integrated Gradients; ``none``: edit everywhere; see ``methods/attributions.py``),
``space`` the edit space (``latent``, or ``pixel``: no autoencoder), and ``lambda_t`` > 0 adds the
sparse-autoencoder trait loss lambda_t * ||h_enc(x_cf) - h_enc(x)||_1 on the classifier's
penultimate features ("Ours + SAE"). The loop itself takes a *goal* (loss and stopping rule), so
trait isolation (``experiments/traits.py``) runs ``SLCF.edit`` with a one-feature goal instead of
the class."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from cfbench.api.method import CounterfactualMethod
from cfbench.api.types import Batch, Counterfactuals
from cfbench.methods.attributions import (
    latent_integrated_gradients,
    pixel_integrated_gradients,
    to_grid,
)
from cfbench.methods.slcf.edit import (
    AfterMask,
    Edit,
    Goal,
    LatentEditSpace,
    PixelEditSpace,
    Trajectory,
    optimise_offsets,
)
from cfbench.methods.slcf.params import SLCFParams, effective_units, units_record
from cfbench.methods.toolkit.masks import postprocess_mask, upsample


def trait_l1(
    codes: torch.Tensor, reference: torch.Tensor, dead_zone: float = 1e-4, mean: bool = False
) -> torch.Tensor:
    """||codes - reference||_1 per sample (``mean``: divided by the number of SAE features, as the
    released code's ``nn.L1Loss``), ignoring differences below ``dead_zone``. At the start of an
    edit the codes equal the reference up to float noise whose sign, and so the gradient of |.|,
    would otherwise depend on the batch the sample runs in."""
    per_feature = ((codes - reference).abs() - dead_zone).clamp_min(0)
    return per_feature.mean(1) if mean else per_feature.sum(1)


class SLCF(CounterfactualMethod):
    name = "slcf"
    Params = SLCFParams

    def __init__(self, task, device, params=None, **hparams):
        super().__init__(task, device, params, **hparams)
        h = self.hparams
        self.classifier = task.classifier
        self.ae = task.component("autoencoder") if h.space == "latent" else None
        shipped = task.declared().get("autoencoder", "").startswith("asset:")
        self.vae_size = 0 if self.ae is None or shipped else h.vae_size
        self.lr, self.noise, self.lambda_s, self.sigma = effective_units(
            h, self.ae, task, self.vae_size
        )
        self.sae = None
        if h.lambda_t > 0:
            from cfbench.api.classifier import split

            self.sae = task.component("sae")
            self.features, self.head = split(self.classifier, task.image_size)
            if h.sae_features == "masked_spatial":
                from cfbench.api.classifier import split_spatial

                self.spatial, self.pool, _ = split_spatial(self.classifier, task.image_size)

    def provenance(self) -> dict:
        if self.ae is None:
            return {}
        units = (self.lr, self.noise, self.lambda_s, self.sigma)
        return units_record(
            self.hparams, self.ae, self.vae_size or self.task.image_size, self.vae_size, units
        )

    @classmethod
    def requires(cls, params):
        return (
            ("classifier",)
            + (("autoencoder",) if params.space == "latent" else ())
            + (("sae",) if params.lambda_t > 0 else ())
        )

    def generate(self, batch: Batch) -> Counterfactuals:
        h = self.hparams
        x, target = batch.images.to(self.device), batch.target.to(self.device)
        reference, second = None, None
        if self.sae is not None:
            with torch.no_grad():
                seen = (
                    x
                    if h.sae_reference == "input" or self.ae is None
                    else self.ae.decode(self.ae.encode(x))
                )
            if h.sae_features == "masked_spatial":
                second = AfterMask(lambda mask: self.masked_goal(target, seen, mask))
            else:
                with torch.no_grad():
                    reference = self.sae.encode(self.features(seen))
        first = self.class_goal(
            target,
            h.confidence if h.stop_rule == "code" else None,
            reference,
            roundtrip=h.roundtrip,
        )
        edit = self.edit(batch, first, second or self.class_goal(target, h.confidence, reference))
        stage1, stage2 = edit.stage1, edit.stage2
        images = stage2.images
        if h.return_noiseless:
            with torch.no_grad():
                space = edit.space
                grid_mask = (
                    torch.ones_like(space.code[:, :1])
                    if edit.mask is None
                    else upsample(edit.mask, space.code.shape[-1])
                )
                images = space.render(
                    space.code + grid_mask * stage2.delta, torch.arange(len(x), device=x.device)
                )
        extra_nfe = h.ig_steps if h.mask in ("lig", "ig") else 0
        info = {
            "steps": stage1.steps + stage2.steps,
            "nfe": stage1.nfe + stage2.nfe + extra_nfe,
            "stage1_steps": stage1.steps,
            "converged": stage2.done,
        }
        mask = None if edit.mask is None else upsample(edit.mask, x.shape[-1])
        return Counterfactuals(images, mask, info)

    def edit(self, batch: Batch, first: Goal, second: Goal | AfterMask) -> Edit:
        """SLCF's two-stage localized edit toward any goal (``Goal``: per-sample loss and whether it
        is reached): stage 1 on the whole code until ``first`` is reached; the mask from the
        configured attribution of stage 1; stage 2 from the masked stage-1 offset until ``second``
        is reached. Trait isolation edits toward one SAE feature with it."""
        h = self.hparams
        space = self.edit_space(batch.images.to(self.device))
        ones = torch.ones_like(space.code[:, :1])
        patience1 = h.patience if h.stop_rule == "code" else 1
        stage1 = self.optimise(
            space,
            first,
            ones,
            torch.zeros_like(space.code),
            h.stage1_steps,
            patience=patience1,
            noise=0.0,
            generators=None,
            stage=1,
        )
        attribution = self.attribution(space, batch, stage1)
        mask = (
            None if attribution is None else postprocess_mask(attribution, self.sigma, h.threshold)
        )
        edit_mask = ones if mask is None else upsample(mask, space.code.shape[-1])
        start = stage1.delta if h.stage2_start == "stage1" else torch.zeros_like(stage1.delta)
        if isinstance(second, AfterMask):
            second = second.make(mask)
        stage2 = self.optimise(
            space,
            second,
            edit_mask,
            start,
            h.stage2_steps,
            patience=h.patience,
            noise=self.noise,
            generators=batch.generators,
            stage=2,
        )
        return Edit(stage1, mask, stage2, space)

    def explain(self, batch: Batch) -> torch.Tensor:
        """LAG as an attribution map (B,1,H,W) for Table-4 localisation: stage 1 toward the target,
        |accumulated gradients| summed over channels, Gaussian-filtered and normalised like the mask
        but not thresholded (the thresholded mask ties everything below the threshold at 0)."""
        x, target = batch.images.to(self.device), batch.target.to(self.device)
        space = self.edit_space(x)
        ones = torch.ones_like(space.code[:, :1])
        stage1 = self.optimise(
            space,
            self.class_goal(target, None, None),
            ones,
            torch.zeros_like(space.code),
            self.hparams.stage1_steps,
            patience=1,
            noise=0.0,
            generators=None,
            stage=1,
        )
        lag = to_grid(self.lag(stage1.grad_sum), self.mask_grid(space))
        return upsample(postprocess_mask(lag, self.sigma, 0.0), x.shape[-1])

    def lag(self, grad_sum: torch.Tensor) -> torch.Tensor:
        """Latent aggregated gradients as a (B,1,h,w) map: |sum| or its positive part,
        channel-summed."""
        kept = grad_sum.abs() if self.hparams.lag_sign == "abs" else grad_sum.clamp_min(0)
        return kept.sum(1, keepdim=True)

    def edit_space(self, x: torch.Tensor):
        if self.hparams.space == "pixel":
            return PixelEditSpace(x)
        return LatentEditSpace.encode(self.ae, x, self.hparams.residual, self.vae_size)

    def masked_goal(
        self, target: torch.Tensor, seen: torch.Tensor, mask: torch.Tensor | None
    ) -> Goal:
        """The released SAE pipeline's stage-2 goal: the mask, averaged to the classifier's spatial
        grid (bicubic with antialiasing, as the code's torchvision ``F.resize``) and min-max
        normalised, weights the spatial features before pooling, both
        for the class loss and for the SAE codes, whose reference is read the same way from
        ``seen``."""
        with torch.no_grad():
            grid = self.spatial(seen).shape[-2:]
            weights = (
                torch.ones(len(seen), 1, *grid, device=seen.device)
                if mask is None
                else F.interpolate(
                    mask, size=tuple(grid), mode="bicubic", align_corners=False, antialias=True
                )
            )
            low = weights.flatten(1).amin(1).view(-1, 1, 1, 1)
            span = weights.flatten(1).amax(1).view(-1, 1, 1, 1) - low
            weights = torch.where(
                span > 0, (weights - low) / span.clamp_min(1e-12), torch.ones_like(weights)
            )
            reference = self.sae.encode(self.pool(self.spatial(seen) * weights))
        return self.class_goal(target, self.hparams.confidence, reference, feature_weights=weights)

    def class_goal(
        self,
        target: torch.Tensor,
        confidence: float | None,
        reference: torch.Tensor | None,
        roundtrip: bool = False,
        feature_weights: torch.Tensor | None = None,
    ) -> Goal:
        """Class loss lambda_c * CE toward the target, or minus the target logit (``class_loss``),
        plus the trait loss when ``reference`` codes are given. Reached: the prediction is the
        target (``confidence`` None), else p(target) >= confidence (paper) or the prediction is the
        target and p(target) > confidence (``stop_rule="code"``). ``roundtrip``: the classifier
        sees D(E(x_cf)). ``feature_weights`` (B,1,h,w on the classifier's spatial grid) weight the
        spatial features before pooling (``masked_goal``)."""
        h = self.hparams

        def goal(x_cf, rows):
            if roundtrip and self.ae is not None:
                x_cf = self.ae.decode(self.ae.encode(x_cf))
            if feature_weights is not None:
                feats = self.pool(self.spatial(x_cf) * feature_weights[rows])
            else:
                feats = None if reference is None else self.features(x_cf)
            logits = self.classifier(x_cf) if feats is None else self.head(feats)
            picked = target[rows]
            if h.class_loss == "ce":
                loss = h.lambda_c * F.cross_entropy(logits, picked, reduction="none")
            else:
                loss = -h.lambda_c * logits.gather(1, picked[:, None]).squeeze(1)
            if feats is not None:
                loss = loss + h.lambda_t * trait_l1(
                    self.sae.encode(feats), reference[rows], mean=h.sae_loss == "mean"
                )
            p_target = logits.softmax(1).gather(1, picked[:, None]).squeeze(1)
            if confidence is None:
                reached = logits.argmax(1) == picked
            elif h.stop_rule == "code":
                reached = (logits.argmax(1) == picked) & (p_target > confidence)
            else:
                reached = p_target >= confidence
            return loss, reached

        return goal

    def mask_grid(self, space) -> tuple[int, int]:
        """Grid the mask is made on: the latent grid, or for pixel edits cells of ``pixel_cell``
        pixels (the autoencoder's downsampling factor), so that sigma, and hence the mask's
        extent in the image, mean the same in both edit spaces."""
        h, w = space.code.shape[-2:]
        if self.hparams.space == "pixel":
            return h // self.hparams.pixel_cell, w // self.hparams.pixel_cell
        return h, w

    def attribution(self, space, batch: Batch, stage1: Trajectory) -> torch.Tensor | None:
        """Non-negative (B,1,h,w) map on ``mask_grid`` that the stage-2 mask is made from."""
        kind, steps = self.hparams.mask, self.hparams.ig_steps
        grid = self.mask_grid(space)
        if kind == "none":
            return None
        if kind == "lag":
            return to_grid(self.lag(stage1.grad_sum), grid)
        if kind == "lig":
            target = batch.target.to(self.device)
            rows = torch.arange(len(target), device=self.device)

            def score(code):
                return (
                    self.classifier(space.render(code, rows)).gather(1, target[:, None]).squeeze(1)
                )

            lig = latent_integrated_gradients(score, space.code, stage1.delta, steps)
            return to_grid(lig.abs().sum(1, keepdim=True), grid)
        ig = pixel_integrated_gradients(
            self.classifier, batch.images.to(self.device), batch.source.to(self.device), steps
        )
        return to_grid(ig.abs().sum(1, keepdim=True), grid)

    def optimise(
        self,
        space,
        goal: Goal,
        mask: torch.Tensor,
        init: torch.Tensor,
        max_steps: int,
        patience: int,
        noise: float,
        generators,
        stage: int,
    ) -> Trajectory:
        """One stage of the edit (``optimise_offsets``) with this configuration's step size,
        sparsity weight and LAG rule."""
        return optimise_offsets(
            space,
            goal,
            mask,
            init,
            max_steps,
            patience,
            noise,
            generators,
            self.lr,
            self.lambda_s,
            self.hparams.lag_stop_step,
            lambda status: self.progress(f"stage {stage} {status}"),
        )
