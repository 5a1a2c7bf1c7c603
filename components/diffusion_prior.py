"""The diffusion prior of CECAS's purification and refinement (and of RCSB's SGM ablation): a
pixel-space DDPM behind one [0, 1]-image interface, read from either of two layouts.

- guided-diffusion's ADM (``256x256_diffusion_uncond.pt``, DiME/ACE's CelebA DDPM): the released
  state dict, loaded key for key into ``components/adm_unet.py``'s UNet, with guided-diffusion's
  process (``components/gaussian_diffusion.py``: its beta schedule over its T, learned-range
  variance). Its flags come from a ``config.json`` beside the file (the name of a released one,
  e.g. ``"celeba_ddpm"``, or guided-diffusion's flags) or, for a released file under its own
  name, from cfbench's table (``adm_unet.RELEASED``).
- a ``diffusers`` DDPM pipeline folder (``unet/`` + ``scheduler/``), as the synthetic tasks ship.

Why pixel space: region-constrained inpainting must leave every pixel outside the region exactly as
it was and edit freely inside it; a pixel-space prior sees the region boundary at full resolution,
and it does not depend on the autoencoder. Why so small: it is trained on a shared 2-core CPU in
about 20 minutes. The UNet has no attention, so it is fully convolutional: it is trained on random
32 x 32 crops (4x cheaper than whole images) and applied to whole 64 x 64 images; the coat textures
it must synthesise are local. The noise schedule is the cosine one (better for small images).

The synthetic prior (this module's recipe) is a small diffusers pipeline folder."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component
from cfbench.errors import UserError
from cfbench.numerics import Numerics

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

    numerics = Numerics()  # ``--dtype`` / ``--compile`` (the task sets its own)

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
        x_t = x_t.contiguous(memory_format=torch.channels_last)
        with self.numerics.precision(x_t.device):
            out = self.numerics.network(self.unet)(x_t, t).sample.to(x_t.dtype)
        return (out[:, :3], out[:, 3:]) if self.learned_variance else (out, None)

    def epsilon(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.predict(x_t, t)[0]

    def denoise(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted noise, Tweedie estimate of x0 as an image in [0, 1]) at timestep ``t``."""
        eps = self.epsilon(x_t, torch.full((len(x_t),), t, device=x_t.device))
        x0 = self.ddim.step(eps, t, x_t).pred_original_sample
        return eps, ((x0 + 1) / 2).clamp(0, 1)


class ADMPrior(nn.Module):
    """guided-diffusion's ADM behind ``DiffusionPrior``'s interface: noising and the Tweedie
    estimate on its own process, the learned variance where the model predicts one."""

    numerics = Numerics()

    def __init__(self, config, source: str = ""):
        from diffusers import DDPMScheduler

        from cfbench.components.adm_unet import ADMUNet
        from cfbench.components.gaussian_diffusion import GaussianDiffusion, named_betas

        super().__init__()
        self.source = source
        self.config = config
        self.unet = ADMUNet(config)
        betas = named_betas(config.noise_schedule, config.diffusion_steps)
        self.process = GaussianDiffusion(betas)
        self.num_train_timesteps = config.diffusion_steps
        self.learned_variance = config.learn_sigma
        # the same betas as a diffusers scheduler, for samplers written against one
        self.scheduler = DDPMScheduler(
            num_train_timesteps=len(betas), trained_betas=betas.tolist(), clip_sample=False
        )
        self.register_buffer(
            "alphas_cumprod", torch.tensor(self.process.abar, dtype=torch.float32), persistent=False
        )

    def noised(self, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        return a.sqrt() * (x * 2 - 1) + (1 - a).sqrt() * noise

    def predict(self, x_t, t):
        x_t = x_t.contiguous(memory_format=torch.channels_last)
        with self.numerics.precision(x_t.device):
            out = self.numerics.network(self.unet)(x_t, t).to(x_t.dtype)
        return (out[:, :3], out[:, 3:]) if self.learned_variance else (out, None)

    def epsilon(self, x_t, t):
        return self.predict(x_t, t)[0]

    def denoise(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        eps = self.epsilon(x_t, torch.full((len(x_t),), t, device=x_t.device))
        x0 = self.process.predict_x0(x_t, t, eps, clip=False)
        return eps, ((x0 + 1) / 2).clamp(0, 1)


def load_adm(path: Path) -> ADMPrior:
    """A released ADM state dict with its flags (``config.json`` beside it, or its own name)."""
    import json

    from cfbench.api.component import read_torch_file, state_mismatch
    from cfbench.components.adm_unet import RELEASED, ADMConfig

    beside = path.parent / "config.json"
    if beside.is_file():
        text = json.loads(beside.read_text())
        name = text if isinstance(text, str) else text.get("name")
        if name is not None and name not in RELEASED:
            raise UserError(
                f"{beside} names the ADM configuration {name!r}, which cfbench does not know; "
                f"known: {', '.join(RELEASED)} (or give guided-diffusion's flags)."
            )
        try:
            config = RELEASED[name] if name else ADMConfig.from_flags(text)
        except (TypeError, ValueError) as err:
            raise UserError(f"{beside} holds no ADM flags cfbench can read: {err}.") from None
        named = name or f"flags from {beside}"
    elif path.stem in RELEASED:
        config, named = RELEASED[path.stem], path.stem
    else:
        raise UserError(
            f"Which ADM configuration {path} has cannot be told: its name is not a released one "
            f"({', '.join(RELEASED)}); put a config.json beside it holding a released name (e.g. "
            '"celeba_ddpm") or its guided-diffusion flags.'
        )
    state = read_torch_file(
        path, "a guided-diffusion state dict (e.g. 256x256_diffusion_uncond.pt)"
    )
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise UserError(f"{path} is not a guided-diffusion state dict (name -> tensor).")
    prior = ADMPrior(config, f"{path} ({named})")
    if problem := state_mismatch(prior.unet, state):
        fits = [n for n, c in RELEASED.items() if state_mismatch(_meta_unet(c), state) is None]
        raise UserError(
            f"The ADM checkpoint {path} does not fit the configuration {named} ({problem})."
            + (f" It fits {', '.join(fits)}: name it in config.json." if fits else "")
        )
    prior.unet.load_state_dict(state)
    return prior


def _meta_unet(config):
    from cfbench.components.adm_unet import ADMUNet

    with torch.device("meta"):
        return ADMUNet(config)


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
    what = "a diffusion prior (CECAS purifies and refines with it; RCSB's SGM ablation inpaints)"
    how = (
        "guided-diffusion's ADM checkpoint (e.g. 256x256_diffusion_uncond.pt; another one with a "
        "config.json beside it naming its configuration or flags), or a diffusers DDPM pipeline "
        "folder ('unet/' + 'scheduler/')"
    )
    assets = {"diffusion_prior": {}, "face_diffusion_prior": {"world": "faces"}}
    asset_suffix = ""
    channels_last = True
    generative = True

    @classmethod
    def load(cls, where, needs, shipped):
        where = Path(where)
        return load_pipeline_folder(where) if where.is_dir() else load_adm(where)

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
        return f"diffusers DDPM pipeline {where}" if Path(where).is_dir() else f"ADM {where}"
