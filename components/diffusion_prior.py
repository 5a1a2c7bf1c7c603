"""The diffusion prior: a ``diffusers`` UNet2DModel + DDPM noise schedule (RCSB's inpainting prior).

Why pixel space: region-constrained inpainting must leave every pixel outside the region exactly as
it was and edit freely inside it; a pixel-space prior sees the region boundary at full resolution,
and it does not depend on the autoencoder. Why so small: it is trained on a shared 2-core CPU in
about 20 minutes. The UNet has no attention, so it is fully convolutional: it is trained on random
32 x 32 crops (4x cheaper than whole images) and applied to whole 64 x 64 images; the coat textures
it must synthesise are local. The noise schedule is the cosine one (better for small images).

On disk a prior is a standard diffusers DDPM pipeline folder (``model_index.json``, ``unet/``,
``scheduler/``), so a real task can use any diffusers checkpoint of that layout
(``CFBENCH_DIFFUSION_PRIOR``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component
from cfbench.errors import UserError

CROP = 32


def unet_config() -> dict:
    return dict(
        sample_size=64,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(32, 32, 64),
        down_block_types=("DownBlock2D",) * 3,
        up_block_types=("UpBlock2D",) * 3,
        norm_num_groups=8,
    )


def scheduler_config() -> dict:
    return dict(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=False,
    )


class DiffusionPrior(nn.Module):
    """[0, 1]-image interface over an epsilon-predicting UNet and its scheduler's noise schedule.

    The model works in [-1, 1]; ``noised`` and ``denoise`` convert, so callers stay in cfbench's
    image convention. Noising is the scheduler's ``add_noise``; ``denoise`` is Tweedie's formula,
    the posterior-mean estimate of x0, as a DDIM step's ``pred_original_sample``.
    """

    def __init__(self, unet, scheduler, source: str = ""):
        from diffusers import DDIMScheduler

        super().__init__()
        self.source = source  # where it was loaded from, for run.json
        self.unet = unet
        self.scheduler = scheduler
        self.num_train_timesteps = scheduler.config.num_train_timesteps
        self.ddim = DDIMScheduler.from_config(scheduler.config)
        self.ddim.set_timesteps(self.num_train_timesteps)
        self.register_buffer(
            "alphas_cumprod", scheduler.alphas_cumprod.clone().float(), persistent=False
        )

    def noised(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t in model space ([-1, 1] scale) for images x in [0, 1]."""
        return self.scheduler.add_noise(x * 2 - 1, noise, t)

    @property
    def learned_variance(self) -> bool:
        """Whether the UNet also predicts its variance (6 output channels, guided-diffusion's
        ``learn_sigma``)."""
        return self.unet.config.out_channels == 6

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(predicted noise, the learned variance's interpolation value in [-1, 1] or None)."""
        out = self.unet(x_t.contiguous(memory_format=torch.channels_last), t).sample
        return (out[:, :3], out[:, 3:]) if self.learned_variance else (out, None)

    def epsilon(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.predict(x_t, t)[0]

    def denoise(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted noise, Tweedie estimate of x0 as an image in [0, 1]) at timestep ``t``."""
        eps = self.epsilon(x_t, torch.full((len(x_t),), t, device=x_t.device))
        x0 = self.ddim.step(eps, t, x_t).pred_original_sample
        return eps, ((x0 + 1) / 2).clamp(0, 1)


def load_pipeline_folder(path: Path) -> DiffusionPrior:
    """A diffusers DDPM pipeline folder (``unet/`` + ``scheduler/``) as a ``DiffusionPrior``."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(path)
    if not (path / "unet").is_dir() or not (path / "scheduler").is_dir():
        raise UserError(
            f"The diffusion prior at '{path}' is not a diffusers DDPM pipeline folder: expected "
            "'unet/' (UNet2DModel, epsilon prediction, 3 channels) and 'scheduler/' "
            "(DDPMScheduler), "
            "e.g. one saved with DDPMPipeline.save_pretrained()."
        )
    # no accelerate notice
    unet = UNet2DModel.from_pretrained(str(path), subfolder="unet", low_cpu_mem_usage=False)
    scheduler = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler")
    if scheduler.config.prediction_type != "epsilon" or unet.config.in_channels != 3:
        raise UserError(
            f"The diffusion prior at '{path}' must predict epsilon on 3-channel images "
            f"(it has prediction_type={scheduler.config.prediction_type!r}, "
            f"in_channels={unet.config.in_channels})."
        )
    return DiffusionPrior(unet, scheduler, str(path))


def train_synthetic(world, n_train=6000, steps=1000, batch=32, lr=2e-3, seed=0):
    """Epsilon-prediction DDPM training on random crops with horizontal flips (fixed seeds)."""
    from diffusers import DDPMScheduler, UNet2DModel

    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit, psnr

    torch.manual_seed(seed)
    x, _ = world.images(TRAIN_SEED + 3, n_train)
    unet, scheduler = UNet2DModel(**unet_config()), DDPMScheduler(**scheduler_config())
    prior = DiffusionPrior(unet, scheduler)
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        xb = as_float(x[torch.randint(len(x), (batch,), generator=gen)])
        top, left = (int(v) for v in torch.randint(0, 64 - CROP + 1, (2,), generator=gen))
        xb = xb[:, :, top : top + CROP, left : left + CROP]
        if torch.rand(1, generator=gen) < 0.5:
            xb = xb.flip(-1)
        t = torch.randint(0, prior.num_train_timesteps, (batch,), generator=gen)
        noise = torch.randn(xb.shape, generator=gen)
        return F.mse_loss(prior.epsilon(prior.noised(xb, noise, t), t), noise)

    unet.train()
    fit(
        unet.parameters(),
        steps,
        loss,
        "diffusion_prior",
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=1e-4),
    )
    unet.eval()
    # Held-out evidence that it denoises: PSNR of the Tweedie estimate vs. of the noisy input.
    xv = as_float(world.images(HELDOUT_SEED, 128)[0])
    stats = {"heldout_n": len(xv)}
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for level in (100, 300, 600):
            t = torch.full((len(xv),), level)
            x_t = prior.noised(xv, torch.randn(xv.shape, generator=gen), t)
            noisy = ((x_t / prior.alphas_cumprod[level].sqrt() + 1) / 2).clamp(0, 1)
            stats[f"psnr_db_t{level}"] = {
                "noisy": round(float(psnr(noisy, xv).mean()), 2),
                "denoised": round(float(psnr(prior.denoise(x_t, level)[1], xv).mean()), 2),
            }
    return prior, stats


class Prior(Component):
    kind = "diffusion_prior"
    what = "a diffusion prior (RCSB inpaints with it)"
    how = (
        "a diffusers DDPM pipeline folder ('unet/' + 'scheduler/', e.g. saved with "
        "DDPMPipeline.save_pretrained) trained on images of this task's domain"
    )
    assets = {"diffusion_prior": {}, "face_diffusion_prior": {"world": "faces"}}
    asset_suffix = ""
    channels_last = True

    @classmethod
    def load(cls, where, needs, shipped):
        return load_pipeline_folder(where)

    @classmethod
    def train(cls, out, needs, world, **options):
        from diffusers import DDPMPipeline

        prior, stats = train_synthetic(world, **options)
        DDPMPipeline(unet=prior.unet, scheduler=prior.scheduler).save_pretrained(str(out))
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained pixel-space diffusers UNet2DModel + DDPM cosine schedule "
                "(tasks/assets)"
            )
        return f"diffusers DDPM pipeline {where}"
