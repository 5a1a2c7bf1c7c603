"""The autoencoder whose latent SLCF edits: a ``diffusers.AutoencoderKL`` behind a [0, 1] interface.

Synthetic tasks ship a small one (``asset:autoencoder``, a diffusers folder); real tasks load
the kl-f8-d16 autoencoder SLCF uses from a diffusers folder or a locally cached hub id.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component
from cfbench.errors import UserError
from cfbench.numerics import Numerics


def autoencoder_config() -> dict:
    """diffusers AutoencoderKL with a 16-channel latent on a 32 x 32 grid at 64 x 64 (factor 2).

    A latent cell then spans 1/32 of the image width, as kl-f8-d16 (factor 8) gives on cfbench's
    256-pixel real tasks (SLCF's released code feeds it 512-pixel images: a 64 x 64 grid, 1/64 of
    the width, which ``slcf_code`` reproduces on real tasks), so a mask sigma in latent cells
    means about the same share of the image. A 16 x 16 grid
    (factor 4) was tried first: its decoder spreads any edit so far around the thin synthetic
    animals that even the true counterfactual, passed through it, put only 59% of its L1 mass on the
    coat."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=64,
    )


class LatentAutoencoder(nn.Module):
    """[0, 1]-image interface over a ``diffusers.AutoencoderKL`` (which works in [-1, 1]).

    ``encode`` returns the posterior mode (deterministic, as latent-editing methods use) times the
    model's ``scaling_factor`` (the diffusers convention that gives latents unit variance, so
    latent step sizes mean the same across autoencoders); ``decode`` returns an image in [0, 1].
    """

    numerics = Numerics()  # ``--dtype`` / ``--compile`` (the task sets its own)

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.scale = float(vae.config.scaling_factor)

    def encode(self, x):
        with self.numerics.precision(x.device):
            code = self.vae.encode(x * 2 - 1).latent_dist.mode().to(x.dtype)
        return code * self.scale

    def decode(self, z):
        # NHWC throughout the decoder (see Task)
        z = z.contiguous(memory_format=torch.channels_last)
        with self.numerics.precision(z.device):
            out = self.vae.decode(z / self.scale).sample.to(z.dtype)
        return (out.clamp(-1, 1) + 1) / 2

    def forward(self, x):
        return self.decode(self.encode(x))


def set_scaling_factor(vae, images: torch.Tensor) -> None:
    """Record 1 / std of the latent modes as the config's ``scaling_factor`` (diffusers
    convention)."""
    from cfbench.components.training import as_float

    with torch.no_grad():
        z = torch.cat(
            [vae.encode(as_float(b) * 2 - 1).latent_dist.mode() for b in images.split(128)]
        )
    vae.register_to_config(scaling_factor=float(1 / z.std()))


def train_synthetic(
    world, n_train=12000, steps=2400, batch=32, seed=0, kl_weight=1e-6, crop=32, full_steps=200
):
    """Fully convolutional, so most steps train on random ``crop`` x ``crop`` patches (4x cheaper
    on a CPU); the last ``full_steps`` use whole images so the mid-block attention sees them."""
    from diffusers import AutoencoderKL

    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit, psnr

    torch.manual_seed(seed)
    x, _ = world.images(TRAIN_SEED + 1, n_train)
    vae = AutoencoderKL(**autoencoder_config())
    gen = torch.Generator().manual_seed(seed)

    def loss(step):
        xb = as_float(x[torch.randint(len(x), (batch,), generator=gen)])
        if step < steps - full_steps:
            top, left = (
                int(v) for v in torch.randint(0, 64 - crop + 1, (2,), generator=gen) // 2 * 2
            )
            xb = xb[:, :, top : top + crop, left : left + crop]
        post = vae.encode(xb * 2 - 1).latent_dist
        rec = (vae.decode(post.sample()).sample + 1) / 2
        kl = post.kl().mean() / xb[0].numel()
        return F.l1_loss(rec, xb) + F.mse_loss(rec, xb) + kl_weight * kl

    vae.train()
    fit(vae.parameters(), steps, loss, "autoencoder")
    vae.eval()
    set_scaling_factor(vae, x[:1024])
    ae = LatentAutoencoder(vae)
    xv, _ = world.images(HELDOUT_SEED, 512)
    with torch.no_grad():
        p = torch.cat([psnr(ae(as_float(xb)), as_float(xb)) for xb in xv.split(64)])
    return vae, {
        "heldout_psnr_db": float(p.mean()),
        "heldout_psnr_db_min": float(p.min()),
        "heldout_n": len(xv),
        "scaling_factor": vae.config.scaling_factor,
    }


class Autoencoder(Component):
    kind = "autoencoder"
    what = "the autoencoder SLCF edits in (kl-f8-d16 in the paper)"
    how = "a diffusers AutoencoderKL folder, or a hub id already in the local cache"
    assets = {"autoencoder": {}, "face_autoencoder": {"world": "faces"}}
    asset_suffix = ""
    hub_ids = True
    channels_last = True
    generative = True  # --dtype applies; --compile does not (its encode/decode are not forward)

    @classmethod
    def load(cls, where, needs, shipped):
        from diffusers import AutoencoderKL

        try:  # low_cpu_mem_usage=False: no accelerate notice, and accelerate is not needed
            vae = AutoencoderKL.from_pretrained(
                str(where), local_files_only=True, low_cpu_mem_usage=False
            )
        except (OSError, ValueError) as err:
            raise UserError(
                f"Could not load the autoencoder '{where}' offline ({err}). Download it once with "
                "network access, or point to a local diffusers AutoencoderKL folder."
            ) from err
        return LatentAutoencoder(vae)

    @classmethod
    def train(cls, out, needs, world, **options):
        vae, stats = train_synthetic(world, **options)
        vae.save_pretrained(str(out))
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained diffusers AutoencoderKL, 16-ch latent, 32x32 grid (stand-in for "
                "kl-f8-d16; "
                "tasks/assets)"
            )
        return f"diffusers AutoencoderKL {where}"
