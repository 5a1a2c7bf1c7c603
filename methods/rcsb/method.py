"""RCSB: region-constrained counterfactuals by classifier-guided inpainting of a region R.

Following "Rethinking Visual Counterfactual Explanations Through Region Constraint" (Sobieski et
al., ICLR 2025), only a region R may change: it is extracted automatically (Integrated Gradients
cells covering a share ``a`` of the image) or given (user masks, free-form masks, ground-truth
object masks; see ``toolkit/regions.py``), and it is filled by inpainting guided toward the
target class. The result is composited, ``x_cf = R * x_gen + (1 - R) * x``, so outside R it *is*
the input.

``prior="bridge"`` (``rcsb``, ``rcsb_a|b|c``) is the method: guided sampling on I2SB's inpainting
bridge (``bridge.py``; the task's ``rcsb_bridge``, e.g. I2SB's released inpaint-freeform2030
``latest.pt``). The paper's presets give the classifier x0_hat as an image, (x + 1) / 2; the
released code stretches it per image by min-max first (``rcsb_code``, preset A otherwise). On
natural photographs, which span the range, the two nearly coincide; on renders with a narrow tonal
range the stretch shows the classifier images unlike its training data (on synth_cheetah_cougar, n =
32, the flip rate falls from 100% to 38%). ``prior="sgm"`` (``rcsb_sgm_a|b|c``) is the paper's
ablation with a score-based inpainter: guided DDPM inpainting with the task's ``diffusion_prior``
(``sgm.py``). run.json names the prior that ran.

Region sources (``region``): ``auto`` (default: the ``--regions DIR`` masks when given, else IG
cells), ``ig``, ``freeform`` (area share in [freeform_min, freeform_max]), ``gt_object``, ``user``::

    cfbench run --task synth_cheetah_cougar --methods rcsb_c --n 16
    cfbench run --task synth_cheetah_cougar --methods rcsb_c --regions my_masks/
    cfbench run --task synth_cheetah_cougar --methods rcsb_c --set rcsb_c.region=freeform \\
        --set rcsb_c.freeform_min=0.2 --set rcsb_c.freeform_max=0.3
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cfbench import seeding
from cfbench.api.method import CounterfactualMethod, HParams, hparam
from cfbench.api.types import Batch, Counterfactuals
from cfbench.methods.rcsb.bridge import guided_inpaint
from cfbench.methods.rcsb.sgm import inpaint, timesteps
from cfbench.methods.toolkit import regions


@dataclass(frozen=True)
class RCSBParams(HParams):
    prior: str = hparam(
        "bridge",
        ("bridge", "sgm"),
        "I2SB's inpainting bridge (the method) or a DDPM prior (the paper's SGM ablation)",
    )
    a: float = hparam(0.1, "open_fraction", "IG regions: share of the image the region covers")
    c: int = hparam(4, "count", "IG regions: cell size in pixels of a 256-px image")
    s: float = hparam(3.0, "nonnegative", "guidance scale (0: unguided inpainting)")
    tau: float = hparam(0.6, "open_fraction", "truncation: start at t = tau * T")
    region: str = hparam("auto", regions.SOURCES, "where the region comes from")
    freeform_min: float = hparam(0.1, "fraction", "free-form regions: smallest area share")
    freeform_max: float = hparam(0.2, "fraction", "free-form regions: largest area share")
    ig_steps: int = hparam(50, "count", "IG integration steps")
    nfe: int = hparam(100, "count", "bridge: sampler steps from tau * T to 0 (released: 100)")
    classifier_input: str = hparam(
        "clamp",
        ("clamp", "minmax"),
        "bridge: x0_hat to [0, 1] as every image is, (x + 1) / 2 clamped (the paper's f(x0_hat)), "
        "or by per-image min-max (the released code, rcsb_code)",
    )
    steps: int = hparam(50, "count", "SGM: DDIM steps over the whole schedule (before truncation)")
    lr: float = hparam(0.04, "positive", "SGM: guidance step size on x0_hat")
    tweedie: bool = hparam(
        True, None, "SGM: classifier gradient at the Tweedie estimate, not the noisy state"
    )
    adam: bool = hparam(True, None, "SGM: stabilise the guidance with Adam moments")
    adaptive_norm: bool = hparam(
        True, None, "SGM: divide gradients by the first gradient's RMS over R"
    )
    truncation: bool = hparam(True, None, "SGM: start from the noised original at tau * T")

    def check(self):
        if self.prior == "bridge" and self.nfe >= round(self.tau * 1000):
            raise ValueError(
                f"nfe ({self.nfe}) must be below the bridge's steps from tau * T "
                f"({round(self.tau * 1000)}): I2SB's sampler needs distinct steps"
            )
        if self.freeform_min >= self.freeform_max:
            raise ValueError(
                f"freeform_min ({self.freeform_min}) must be below freeform_max "
                f"({self.freeform_max})"
            )


class RCSB(CounterfactualMethod):
    name = "rcsb"
    Params = RCSBParams

    def __init__(self, task, device, params=None, **hparams):
        super().__init__(task, device, params, **hparams)
        self.classifier = task.classifier
        if self.hparams.prior == "bridge":
            self.bridge = task.component("rcsb_bridge")
        else:
            self.prior = task.component("diffusion_prior")
            self.timesteps = timesteps(self.prior, self.hparams)

    @classmethod
    def requires(cls, params):
        return ("classifier", "rcsb_bridge" if params.prior == "bridge" else "diffusion_prior")

    def provenance(self) -> dict:
        h = self.hparams
        found = {
            "region_cell_px": regions.scaled_cell(h.c, self.task.image_size),
            "region_cell_rule": (
                "c_task = max(1, round(c * H / 256)) (c is in pixels of a 256-px image)"
            ),
        }
        if h.prior == "bridge":
            return found | {
                "prior": "I2SB inpainting bridge (the paper's), guided as the released code",
                "prior_source": self.bridge.source,
            }
        return found | {
            "prior": (
                "SGM ablation, not the method: DDPM prior (epsilon), deterministic DDIM "
                "sampling with known-region re-imposition"
            ),
            "prior_source": self.prior.source,
            "denoising_steps": len(self.timesteps),
        }

    def generate(self, batch: Batch) -> Counterfactuals:
        h = self.hparams
        x, target = batch.images.to(self.device), batch.target.to(self.device)
        region, nfe = regions.extract(
            h.region,
            batch,
            self.task,
            self.classifier,
            a=h.a,
            c=h.c,
            ig_steps=h.ig_steps,
            freeform_area=(h.freeform_min, h.freeform_max),
            method=self.name,
        )
        noise = seeding.randn(batch.generators, tuple(x.shape[1:]), self.device)
        if h.prior == "bridge":

            def fresh():
                return seeding.randn(batch.generators, tuple(x.shape[1:]), self.device)

            x_gen, guided = guided_inpaint(self, x, target, region, noise, fresh)
            steps = guided.clone()
        else:
            x_gen, guided = inpaint(self, x, target, region, noise)
            steps = torch.full_like(nfe, len(self.timesteps))
        info = {"steps": steps, "nfe": nfe + guided}
        return Counterfactuals(region * x_gen + (1 - region) * x, region, info)
