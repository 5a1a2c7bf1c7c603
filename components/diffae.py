"""Diffusion autoencoder (DiffAE, Preechakul et al. 2022): the generative model GCD searches in.

A semantic encoder maps an image to a flat code z_sem; a noise predictor conditioned on z_sem
(a diffusers ``UNet2DModel`` whose ``class_embed_type="identity"`` adds z_sem to its time
embedding, so every residual block is modulated by it) turns noise into that image.
Deterministic DDIM runs both ways: ``encode`` gives (z_sem, x_T) and ``decode(z_sem, x_T)``
gives the image back; editing z_sem with x_T fixed edits the semantics and keeps the rest.

Why z_sem has 64 numbers: the synthetic images have a handful of semantic factors (class, the
animal's position, size, angle and facing, background tone and horizon), and GCD fits a proxy
on z_sem from about a thousand rendered samples; 64 gives room for those factors while keeping
that fit well posed, and equals the UNet's time-embedding width (4 x its first block width), so
the code is added as is: ``new_diffae`` takes z_sem's length from the UNet it builds.

On disk (the layout a real task's DiffAE folder must have; the official DiffAE checkpoints are
not in diffusers format and need converting into it): ``unet/`` (a diffusers UNet2DModel with
``class_embed_type="identity"``, epsilon prediction), ``scheduler/`` (a DDIMScheduler config) and
``encoder/`` (``config.json`` with this module's ``SemanticEncoder`` arguments and
``model.safetensors``). Images are B x 3 x H x W in [0, 1]; the model works in [-1, 1].
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component
from cfbench.errors import UserError


def unet_config(
    image_size: int = 64, widths: tuple[int, ...] = (16, 32, 64, 64), layers_per_block: int = 1
) -> dict:
    return dict(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        layers_per_block=layers_per_block,
        block_out_channels=tuple(widths),
        down_block_types=("DownBlock2D",) * 4,
        up_block_types=("UpBlock2D",) * 4,
        norm_num_groups=8,
        add_attention=False,
        resnet_time_scale_shift="scale_shift",
        class_embed_type="identity",
    )


def scheduler_config() -> dict:
    return dict(
        num_train_timesteps=1000,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=False,
        set_alpha_to_one=True,
    )


class SemanticEncoder(nn.Module):
    """Strided convolutions down to 4 x 4, flattened (so the code keeps where things are) to
    z_sem."""

    def __init__(
        self, z_dim: int, image_size: int = 64, widths: tuple[int, ...] = (32, 64, 128, 128)
    ):
        super().__init__()
        self.config = {"z_dim": z_dim, "image_size": image_size, "widths": list(widths)}
        layers, cin = [], 3
        for w in widths:
            layers += [
                nn.Conv2d(cin, w, 3, 2, 1),
                nn.GroupNorm(8, w),
                nn.SiLU(),
                nn.Conv2d(w, w, 3, 1, 1),
                nn.GroupNorm(8, w),
                nn.SiLU(),
            ]
            cin = w
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)
        self.head = nn.Linear(cin * side * side, z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2 - 1).flatten(1))


class DiffusionAutoencoder(nn.Module):
    def __init__(self, encoder: SemanticEncoder, unet, scheduler_cfg: dict, source: str = ""):
        super().__init__()
        self.encoder, self.unet = encoder, unet
        self.scheduler_cfg = dict(scheduler_cfg)
        self.source = source
        from diffusers import DDIMScheduler

        self.register_buffer(
            "alphas_cumprod",
            DDIMScheduler(**self.scheduler_cfg).alphas_cumprod.float(),
            persistent=False,
        )

    @property
    def z_dim(self) -> int:
        return self.encoder.config["z_dim"]

    def epsilon(self, x_t: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
        # NHWC with the UNet (see Task): a third less time per call on CPU
        return self.unet(
            x_t.contiguous(memory_format=torch.channels_last), t, class_labels=z_sem
        ).sample

    def semantic(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def _schedulers(self, steps: int):
        from diffusers import DDIMInverseScheduler, DDIMScheduler

        forward, inverse = (
            DDIMScheduler(**self.scheduler_cfg),
            DDIMInverseScheduler(**self.scheduler_cfg),
        )
        forward.set_timesteps(steps)
        inverse.set_timesteps(steps)
        return forward, inverse

    @torch.no_grad()
    def stochastic(self, x: torch.Tensor, z_sem: torch.Tensor, steps: int) -> torch.Tensor:
        """x_T: deterministic DDIM inversion of images ``x`` conditioned on ``z_sem``."""
        _, inverse = self._schedulers(steps)
        sample = x * 2 - 1
        for t in inverse.timesteps:
            level = torch.full((len(x),), int(t), device=x.device)
            sample = inverse.step(self.epsilon(sample, level, z_sem), t, sample).prev_sample
        return sample

    @torch.no_grad()
    def decode(self, z_sem: torch.Tensor, x_T: torch.Tensor, steps: int) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) from x_T conditioned on z_sem; an image in [0, 1]."""
        forward, _ = self._schedulers(steps)
        sample = x_T
        for t in forward.timesteps:
            level = torch.full((len(x_T),), int(t), device=x_T.device)
            sample = forward.step(
                self.epsilon(sample, level, z_sem), t, sample, eta=0.0
            ).prev_sample
        return ((sample + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        z_sem = self.semantic(x)
        return z_sem, self.stochastic(x, z_sem, steps)

    def save(self, folder: Path) -> None:
        from diffusers import DDIMScheduler
        from safetensors.torch import save_file

        folder = Path(folder)
        self.unet.save_pretrained(str(folder / "unet"))
        DDIMScheduler(**self.scheduler_cfg).save_pretrained(str(folder / "scheduler"))
        (folder / "encoder").mkdir(parents=True, exist_ok=True)
        (folder / "encoder" / "config.json").write_text(
            json.dumps(self.encoder.config, indent=2) + "\n"
        )
        save_file(self.encoder.state_dict(), str(folder / "encoder" / "model.safetensors"))

    @classmethod
    def load(cls, folder: Path) -> DiffusionAutoencoder:
        from diffusers import DDIMScheduler, UNet2DModel
        from safetensors.torch import load_file

        folder = Path(folder)
        unet = UNet2DModel.from_pretrained(str(folder / "unet"), low_cpu_mem_usage=False)
        scheduler = DDIMScheduler.from_pretrained(str(folder / "scheduler"))
        config = json.loads((folder / "encoder" / "config.json").read_text())
        encoder = SemanticEncoder(config["z_dim"], config["image_size"], tuple(config["widths"]))
        encoder.load_state_dict(load_file(str(folder / "encoder" / "model.safetensors")))
        keys = scheduler_config().keys()
        return cls(encoder, unet, {k: scheduler.config[k] for k in keys}, str(folder))


def new_diffae(image_size: int = 64, **unet) -> DiffusionAutoencoder:
    from diffusers import UNet2DModel

    unet = UNet2DModel(**unet_config(image_size, **unet))
    # z_sem joins the time embedding
    z_dim = unet.config.time_embedding_dim or unet.config.block_out_channels[0] * 4
    return DiffusionAutoencoder(SemanticEncoder(z_dim, image_size), unet, scheduler_config())


class CoatTexture(nn.Module):
    """Texture statistics that do not depend on where the spots or stripes are: Gram matrices of
    fixed random zero-mean convolutions (3, 5 and 9 pixels, after Ustyuzhaninov et al. 2017) per
    32 x 32 quadrant, plus each quadrant's mean colour.

    Why not the classifier or SimSiam features: GCD is black-box and S3/FID use SimSiam, so the
    generator it searches must owe neither of them anything. On same-scene renderings, with
    weight 500, a cheetah with other spots is nearer than the blurred mean of two layouts and that
    is nearer than the plain cougar (medians 0.006 < 0.011 < 0.039); pixel MSE puts the plain
    cougar nearer than other spots, which is why it teaches a mean, spotless coat.
    """

    def __init__(self, channels: int = 32, sizes: tuple[int, ...] = (3, 5, 9), seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        for k in sizes:
            w = torch.randn(channels, 3, k, k, generator=gen)
            w = w - w.mean((1, 2, 3), keepdim=True)
            self.register_buffer(f"filters{k}", w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        self.sizes = sizes

    def gram(self, x: torch.Tensor, patch: int = 32) -> torch.Tensor:
        f = torch.cat(
            [F.relu(F.conv2d(x, getattr(self, f"filters{k}"), padding=k // 2)) for k in self.sizes],
            1,
        )
        b, c, h, w = f.shape
        f = f.view(b, c, h // patch, patch, w // patch, patch).permute(0, 2, 4, 1, 3, 5)
        f = f.reshape(b, -1, c, patch * patch)
        return f @ f.transpose(-1, -2) / patch**2

    def distance(self, x: torch.Tensor, y: torch.Tensor, texture_weight: float) -> torch.Tensor:
        """Per-sample distance of images in [-1, 1]: quadrant colour MSE + weighted Gram MSE."""
        colour = (F.avg_pool2d(x, 32) - F.avg_pool2d(y, 32)).pow(2).mean((1, 2, 3))
        texture = (self.gram(x.clamp(-1, 1)) - self.gram(y)).pow(2).mean((1, 2, 3))
        return colour + texture_weight * texture


def coat_swap_loss(
    model,
    x0,
    x_partner,
    gen,
    swap_fraction: float,
    swap_from: int,
    texture: CoatTexture | None = None,
    texture_weight: float = 0.0,
) -> torch.Tensor:
    """Epsilon loss with z_sem from the clean image, and for a ``swap_fraction`` of the samples at
    t >= ``swap_from`` x_t noised from the same scene rendered as the pair's other class, the target
    being the noise that leads back to the true image.

    Why: the synthetic classes differ only in coat texture, detail a plain DiffAE leaves to x_T
    (plain training: the coat follows x_T in ~97% of class-swapped decodes). Asking the UNet to
    steer a noised other-coat scene to the coat z_sem names makes z_sem carry the class.
    With ``texture_weight`` > 0 the swapped samples are scored by ``CoatTexture`` on the predicted
    clean image instead (min-SNR-5 weighted, Hang et al. 2023): their spot layout cannot be known
    from the partner's plain coat, and MSE then rewards a spotless mean.
    """
    t = torch.randint(0, len(model.alphas_cumprod), (len(x0),), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    swap = (torch.rand(len(x0), generator=gen) < swap_fraction) & (t >= swap_from)
    clean = x0 * 2 - 1
    start = torch.where(swap.view(-1, 1, 1, 1), x_partner * 2 - 1, clean)
    a = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = a.sqrt() * start + (1 - a).sqrt() * noise
    target = (x_t - a.sqrt() * clean) / (1 - a).sqrt()
    eps = model.epsilon(x_t, t, model.semantic(x0))
    per_sample = (eps - target).pow(2).mean((1, 2, 3))
    if texture_weight > 0 and swap.any():
        snr = (a / (1 - a)).flatten()[swap]
        predicted = (x_t[swap] - (1 - a[swap]).sqrt() * eps[swap]) / a[swap].sqrt()
        per_sample = per_sample.masked_scatter(
            swap, snr.clamp(max=5) * texture.distance(predicted, clean[swap], texture_weight)
        )
    return per_sample.mean()


def train_synthetic(
    world,
    classifier: nn.Module,
    n_train: int = 12000,
    steps: int = 5000,
    batch: int = 32,
    lr: float = 1e-3,
    warmup: int = 200,
    ema_decay: float = 0.999,
    swap_fraction: float = 0.6,
    swap_from: int = 200,
    texture_weight: float = 0.0,
    eval_steps: tuple[int, ...] = (10, 20),
    widths: tuple[int, ...] = (16, 32, 64, 64),
    layers_per_block: int = 1,
    seed: int = 0,
    checkpoint: Path | None = None,
):
    """Joint encoder + UNet training (fixed seeds) with an exponential moving average of the
    weights; returns the averaged model and held-out round-trip and class-swap measurements.
    ``checkpoint``: where ``fit`` keeps its resumable state (the build takes an hour or more on a
    CPU)."""
    import math

    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit

    torch.manual_seed(seed)
    x, x_partner, _, _ = world.pairs(TRAIN_SEED + 4, n_train)
    x, x_partner = (torch.round(v * 255).to(torch.uint8).contiguous() for v in (x, x_partner))
    model = new_diffae(widths=tuple(widths), layers_per_block=layers_per_block)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
    gen = torch.Generator().manual_seed(seed)
    texture = CoatTexture()

    def loss(_):
        idx = torch.randint(n_train, (batch,), generator=gen)
        return coat_swap_loss(
            model,
            as_float(x[idx]),
            as_float(x_partner[idx]),
            gen,
            swap_fraction,
            swap_from,
            texture,
            texture_weight,
        )

    def warmup_cosine(opt):
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps))
        )

    model.train()
    fit(
        model.parameters(),
        steps,
        loss,
        "diffae",
        schedule=warmup_cosine,
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=1e-4),
        after_step=lambda: ema.update_parameters(model),
        checkpoint=checkpoint,
        state={"model": model, "ema": ema, "generator": gen},
        recipe=dict(
            n_train=n_train,
            batch=batch,
            lr=lr,
            warmup=warmup,
            ema_decay=ema_decay,
            swap_fraction=swap_fraction,
            swap_from=swap_from,
            texture_weight=texture_weight,
            widths=list(widths),
            layers_per_block=layers_per_block,
            seed=seed,
        ),
    )
    model.load_state_dict(ema.module.state_dict())
    model.eval()
    return model, measure(model, classifier, world, HELDOUT_SEED, eval_steps)


@torch.no_grad()
def measure(
    model: DiffusionAutoencoder, classifier: nn.Module, world, seed: int, step_counts, n: int = 128
) -> dict:
    """Held-out round trip (PSNR, classifier accuracy) and class swap: z_sem of image A decoded with
    x_T of a same-pair image B of the other class; ``swap_follows_z_sem`` is the rate classified as
    A's class (z_sem carries the class), ``swap_follows_x_T`` as B's."""
    from cfbench.components.training import as_float, psnr

    images, labels = world.images(seed, n)
    images = as_float(images)
    # the world cycles its classes, so the scene of the partner class is in the same cycle
    other = torch.arange(n) - labels + torch.tensor([world.partner(int(y)) for y in labels])
    stats = {"heldout_n": n, "z_sem": model.z_dim}
    for steps in step_counts:
        z_sem, x_T = model.encode(images, steps)
        back = model.decode(z_sem, x_T, steps)
        swapped = classifier(model.decode(z_sem, x_T[other], steps)).argmax(1)
        stats[f"ddim{steps}"] = {
            "psnr_db": round(float(psnr(back, images).mean()), 2),
            "psnr_db_min": round(float(psnr(back, images).min()), 2),
            "roundtrip_accuracy": round(
                float((classifier(back).argmax(1) == labels).float().mean()), 4
            ),
            "swap_follows_z_sem": round(float((swapped == labels).float().mean()), 4),
            "swap_follows_x_T": round(float((swapped == labels[other]).float().mean()), 4),
        }
        for bit, name in enumerate(getattr(world, "attributes", ())):  # faces: per attribute
            kept = (swapped >> bit & 1) == (labels >> bit & 1)
            stats[f"ddim{steps}"][f"swap_follows_z_sem_{name}"] = round(
                float(kept.float().mean()), 4
            )
    return stats


class DiffAE(Component):
    kind = "diffae"
    what = "a diffusion autoencoder (GCD searches its semantic space)"
    how = (
        "a folder with 'unet/' (diffusers UNet2DModel, class_embed_type='identity', epsilon "
        "prediction), "
        "'scheduler/' (DDIMScheduler config) and 'encoder/' (config.json + model.safetensors of "
        "cfbench's SemanticEncoder); the official DiffAE checkpoints must be converted to this "
        "layout"
    )
    assets = {
        "diffae": {"needs": {"classifier": "classifier"}},
        "face_diffae": {"needs": {"classifier": "face_classifier"}, "world": "faces"},
    }
    asset_suffix = ""
    channels_last = True

    @classmethod
    def load(cls, where, needs, shipped):
        where = Path(where)
        missing = [
            p
            for p in ("unet", "scheduler", "encoder/config.json", "encoder/model.safetensors")
            if not (where / p).exists()
        ]
        if missing:
            raise UserError(
                f"The diffusion autoencoder at '{where}' lacks {', '.join(missing)}; it should be "
                f"{cls.how}."
            )
        return DiffusionAutoencoder.load(where)

    @classmethod
    def train(cls, out, needs, world, **options):
        out = Path(out)
        model, stats = train_synthetic(
            world,
            needs["classifier"],
            **options,
            checkpoint=out.with_name(out.name + ".training.pt"),
        )
        model.save(out)
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained diffusion autoencoder (semantic encoder + z_sem-conditioned "
                "diffusers "
                "UNet2DModel, DDIM, tasks/assets)"
            )
        return f"diffusion autoencoder {where}"
