"""How the synthetic I2SB inpainters are trained and measured (``cfbench assets build --only
animal_bridge`` and ``face_bridge``): I2SB's objective on the world's renders with the masks RCSB
fills at test time, an ADM UNet sized for the CPU, weights averaged as I2SB's EMA.

Masks, half each: free-form brush strokes covering 10-30% of the image (I2SB's freeform1020 and
freeform2030 ranges, drawn by ``cfbench/strokes.py`` rather than from Palette's mask file), and
cell masks like RCSB's IG regions: c x c cells (c of 1, 2 or 4 pixels) chosen where a smooth random
field is highest until they cover 10-30% of the image, so the chosen cells cluster as attribution
cells do. (The test-time IG cells come from the explained classifier, which a bridge trained for
a world must not be fitted to.)
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.nn import functional as F

from cfbench.components.adm_unet import ADMConfig
from cfbench.components.i2sb import INTERVAL, Bridge, BridgeConfig, space_indices

# the CPU-sized UNet: ADM's blocks and flags, 64 px, widths 32-32-64-64
CPU_UNET = dict(
    image_size=64,
    num_channels=32,
    channel_mult=(1, 1, 2, 2),
    num_res_blocks=1,
    attention_resolutions=(8,),
    num_heads=1,
    resblock_updown=True,
)


def cell_masks(gen: torch.Generator, n: int, size: int, lo=0.1, hi=0.3) -> torch.Tensor:
    """(n,1,size,size) masks of clustered c x c cells covering a share in [lo, hi]."""
    masks = []
    for _ in range(n):
        cell = [1, 2, 4][int(torch.randint(3, (1,), generator=gen))]
        grid = size // cell
        field = F.interpolate(
            torch.randn(1, 1, 4, 4, generator=gen), size=(grid, grid), mode="bicubic"
        ) + 0.3 * torch.randn(1, 1, grid, grid, generator=gen)
        share = lo + (hi - lo) * float(torch.rand(1, generator=gen))
        k = max(1, round(share * grid * grid))
        chosen = torch.zeros(grid * grid)
        chosen[field.flatten().argsort(descending=True)[:k]] = 1
        masks.append(
            chosen.view(1, 1, grid, grid).repeat_interleave(cell, 2).repeat_interleave(cell, 3)
        )
    return torch.cat(masks)


def training_masks(gen: torch.Generator, n: int, size: int) -> torch.Tensor:
    """Half free-form strokes, half cell masks, in a per-batch random order."""
    strokes = n // 2
    masks = torch.cat([_freeform(gen, strokes, size), cell_masks(gen, n - strokes, size)])
    return masks[torch.randperm(n, generator=gen)]


def bridge_loss(bridge: Bridge, x0: torch.Tensor, mask: torch.Tensor, gen) -> torch.Tensor:
    """I2SB's training step for inpainting: x1 is x0 with Gaussian noise in the region, a step
    drawn per image, x_t on the bridge between them, and the network's error on
    (x_t - x0) / std_fwd inside the region (``F.mse_loss`` of the masked tensors, as I2SB)."""
    step = torch.randint(0, INTERVAL, (len(x0),), generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    x1 = x0 * (1 - mask) + mask * noise
    x_t = bridge.q_sample(step, x0, x1, torch.randn(x0.shape, generator=gen))
    label = bridge.training_label(x_t, x0, step)
    out = bridge.net(x_t.contiguous(memory_format=torch.channels_last), step)
    return F.mse_loss(out * mask, label * mask)


def train_synthetic(
    world,
    n_train: int = 12000,
    steps: int = 5000,
    batch: int = 16,
    lr: float = 5e-4,
    warmup: int = 200,
    ema_decay: float = 0.999,
    unet: dict | None = None,
    seed: int = 0,
    checkpoint: Path | None = None,
):
    """The bridge trained from scratch (fixed seeds), weights averaged; returns the averaged
    bridge and its held-out inpainting measurements."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, as_float, fit

    torch.manual_seed(seed)
    x, _ = world.images(TRAIN_SEED + 9, n_train)
    config = BridgeConfig(ADMConfig.from_flags({**CPU_UNET, **(unet or {})}))
    bridge = Bridge(config)
    ema = AveragedModel(bridge.net, multi_avg_fn=get_ema_multi_avg_fn(ema_decay))
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        idx = torch.randint(n_train, (batch,), generator=gen)
        x0 = as_float(x[idx]) * 2 - 1
        return bridge_loss(bridge, x0, training_masks(gen, batch, world.size), gen)

    def warmup_cosine(opt):
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps))
        )

    bridge.net.train()
    fit(
        bridge.net.parameters(),
        steps,
        loss,
        "bridge",
        schedule=warmup_cosine,
        optimizer=lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=0.0),
        after_step=lambda: ema.update_parameters(bridge.net),
        checkpoint=checkpoint,
        state={"net": bridge.net, "ema": ema, "generator": gen},
        recipe=dict(
            n_train=n_train,
            batch=batch,
            lr=lr,
            warmup=warmup,
            ema_decay=ema_decay,
            unet=config.unet.flags(),
            seed=seed,
        ),
    )
    bridge.net.load_state_dict(ema.module.state_dict())
    bridge.net.eval()
    measured = measure(bridge, world, HELDOUT_SEED)
    return bridge, {"steps": steps, "ema_decay": ema_decay, **measured}


@torch.no_grad()
def measure(bridge: Bridge, world, seed: int, n: int = 128, nfe: int = 20) -> dict:
    """Held-out inpainting at ``nfe`` sampler steps: PSNR inside the region against the true
    image, for free-form and cell masks (the outside is the input by construction), beside the
    PSNR of filling the region with the image's mean outside colour (the bar a prior must beat)."""
    from cfbench.components.training import as_float

    images, _ = world.images(seed, n)
    x0 = as_float(images) * 2 - 1
    gen = torch.Generator().manual_seed(seed)
    found = {"heldout_n": n, "nfe": nfe}
    for name, masks in (
        ("freeform", _freeform(gen, n, world.size)),
        ("cells", cell_masks(gen, n, world.size)),
    ):
        outside = (x0 * (1 - masks)).sum((2, 3), keepdim=True) / (1 - masks).sum(
            (2, 3), keepdim=True
        )
        mean_fill = x0 * (1 - masks) + outside * masks
        for label, out in (("", inpaint(bridge, x0, masks, gen, nfe)), ("_mean_fill", mean_fill)):
            found[f"{name}{label}_psnr_db"] = _region_psnr(out, x0, masks)
    return found


def _region_psnr(out: torch.Tensor, x0: torch.Tensor, masks: torch.Tensor) -> float:
    err = ((out - x0) ** 2 * masks).flatten(1).sum(1) / (3 * masks.flatten(1).sum(1))
    return round(float((10 * torch.log10(4 / err.clamp_min(1e-10))).mean()), 2)  # span [-1, 1]


def _freeform(gen: torch.Generator, n: int, size: int) -> torch.Tensor:
    from cfbench.strokes import freeform

    seeds = torch.randint(2**62, (n,), generator=gen).tolist()
    return freeform([torch.Generator().manual_seed(s) for s in seeds], size, 0.1, 0.3)


@torch.no_grad()
def inpaint(bridge: Bridge, x0, mask, gen, nfe: int) -> torch.Tensor:
    """I2SB's sampler from the corrupted image over ``nfe`` steps, known pixels reset each step."""
    x1 = x0 * (1 - mask) + mask * torch.randn(x0.shape, generator=gen)
    steps = space_indices(INTERVAL, nfe + 1)
    return bridge.inpaint(x1, mask, steps, noise=lambda: torch.randn(x0.shape, generator=gen))
