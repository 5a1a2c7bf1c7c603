"""guided-diffusion's ADM UNet (Dhariwal & Nichol 2021, ``guided_diffusion/unet.py``'s
``UNetModel``), written here with the released parameter names and shapes, so a released state
dict (``256x256_diffusion_uncond.pt``, DiME/ACE's CelebA DDPM, I2SB's bridge network) loads key
for key. Its building blocks (time embedding, 32-group float32 GroupNorm, residual blocks with
optional up/down sampling, scale-shift and a second condition, QKV attention in both head orders)
serve DiffAE's networks too.

The model maps x_t (B x C x H x W in the model's [-1, 1] scale) and timesteps (B,) to the network
output (epsilon, then the learned-variance values when ``learn_sigma``). Flags follow
guided-diffusion's ``create_model``: ``channel_mult`` empty means its table per image size;
``attention_resolutions`` are pixel resolutions, turned into downsampling factors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn import functional as F

# guided-diffusion's script_util.create_model, channel_mult="" (DiME/ACE add 224 and 28)
CHANNEL_MULT = {
    512: (0.5, 1, 1, 2, 2, 4, 4),
    256: (1, 1, 2, 2, 4, 4),
    224: (1, 1, 2, 3, 4),
    128: (1, 1, 2, 3, 4),
    64: (1, 2, 3, 4),
    28: (1, 1, 2),
}


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B, dim): cosines then sines of t * 10000^(-i/half); odd dims padded."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (the released ``normalization``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.detach().zero_()
    return module


class Resample(nn.Module):
    """Parameter-free nearest upsampling or 2x2 average pooling (inside an up/down ResBlock)."""

    def __init__(self, up: bool):
        super().__init__()
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.up else F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 conv (key ``conv``), where up-ResBlocks are not used."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, *_):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Downsample(nn.Module):
    """A strided 3x3 conv (key ``op``), where down-ResBlocks are not used."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, *_):
        return self.op(x)


class ResBlock(nn.Module):
    """The released residual block: norm, SiLU, (resample,) conv; then the time embedding as
    scale-shift (``scale_shift``) or added; DiffAE's second condition multiplies by (1 + c)
    (``cond_channels``); norm, SiLU, dropout, zero-initialised conv; a 1x1 skip when the width
    changes. ``conditioned=False`` is DiffAE's encoder block: only the first half."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        dropout: float = 0.0,
        scale_shift: bool = True,
        up: bool = False,
        down: bool = False,
        cond_channels: int | None = None,
        conditioned: bool = True,
        groups=lambda c: 32,
    ):
        super().__init__()
        out = out_channels or channels
        self.scale_shift, self.conditioned = scale_shift, conditioned
        self.in_layers = nn.Sequential(
            GroupNorm32(groups(channels), channels), nn.SiLU(), nn.Conv2d(channels, out, 3, 1, 1)
        )
        self.resample = Resample(up) if up or down else None
        if conditioned:
            self.emb_layers = nn.Sequential(
                nn.SiLU(), nn.Linear(emb_channels, 2 * out if scale_shift else out)
            )
            if cond_channels is not None:
                self.cond_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(cond_channels, out))
            self.out_layers = nn.Sequential(
                GroupNorm32(groups(out), out),
                nn.SiLU(),
                nn.Dropout(dropout),
                zero(nn.Conv2d(out, out, 3, 1, 1)),
            )
        self.skip_connection = nn.Identity() if out == channels else nn.Conv2d(channels, out, 1)

    def forward(self, x, emb=None, cond=None, lateral=None):
        if lateral is not None:
            x = torch.cat([x, lateral], dim=1)
        if self.resample is not None:
            h = self.in_layers[2](self.resample(self.in_layers[:2](x)))
            x = self.resample(x)
        else:
            h = self.in_layers(x)
        if self.conditioned:
            emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
            norm, rest = self.out_layers[0], self.out_layers[1:]
            if self.scale_shift:
                scale, shift = emb_out.chunk(2, dim=1)
                h = norm(h) * (1 + scale) + shift
            else:
                h = norm(h + emb_out)
            if hasattr(self, "cond_emb_layers") and cond is not None:
                h = h * (1 + self.cond_emb_layers(cond).type(h.dtype)[..., None, None])
            h = rest(h)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over positions (keys ``norm``, ``qkv``, ``proj_out``); the legacy head order
    splits heads before q, k, v (the released models), the new order after."""

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        new_order: bool = False,
        groups=lambda c: 32,
    ):
        super().__init__()
        self.heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.new_order = new_order
        self.norm = GroupNorm32(groups(channels), channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x, *_):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        length, ch = qkv.shape[-1], c // self.heads
        if self.new_order:
            q, k, v = (t.reshape(b * self.heads, ch, length) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * self.heads, 3 * ch, length).split(ch, dim=1)
        scale = ch**-0.25
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        h = torch.einsum("bts,bcs->bct", weight, v).reshape(b, -1, length)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class EmbedSequential(nn.Sequential):
    """Blocks in order; residual blocks receive the embeddings (and the skip, the first one)."""

    def forward(self, x, emb=None, cond=None, lateral=None):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, cond, lateral)
                lateral = None
            else:
                x = layer(x)
        return x


@dataclass(frozen=True)
class ADMConfig:
    """guided-diffusion's model and diffusion flags (``model_and_diffusion_defaults`` names)."""

    image_size: int = 64
    num_channels: int = 128
    num_res_blocks: int = 2
    channel_mult: tuple = ()  # empty: the released table per image size
    attention_resolutions: tuple = (16, 8)
    num_heads: int = 4
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    dropout: float = 0.0
    learn_sigma: bool = False
    in_channels: int = 3
    out_channels: int = 3  # before learn_sigma doubles it
    diffusion_steps: int = 1000
    noise_schedule: str = "linear"

    @classmethod
    def from_flags(cls, flags: dict) -> ADMConfig:
        """From guided-diffusion's flag values (strings such as "32,16,8" accepted)."""
        known = {f.name: f for f in fields(cls)}
        if unknown := sorted(set(flags) - set(known)):
            raise ValueError(f"unknown ADM flags {', '.join(unknown)}")
        values = {}
        for name, value in flags.items():
            if name in ("channel_mult", "attention_resolutions") and isinstance(value, str):
                value = tuple(float(v) if "." in v else int(v) for v in value.split(",") if v)
            elif name in ("channel_mult", "attention_resolutions"):
                value = tuple(value)
            values[name] = value
        return cls(**values)

    def flags(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def mult(self) -> tuple:
        return tuple(self.channel_mult) or CHANNEL_MULT[self.image_size]


# the released checkpoints cfbench knows by name (flags from their READMEs and scripts)
RELEASED = {
    # guided-diffusion README: 256x256_diffusion_uncond.pt (ACE's ImageNet scripts use it too)
    "256x256_diffusion_uncond": ADMConfig(
        image_size=256,
        num_channels=256,
        attention_resolutions=(32, 16, 8),
        num_head_channels=64,
        resblock_updown=True,
        learn_sigma=True,
    ),
    # DiME / ACE CelebA DDPM (celeba-attack.sh): 128 px, 4 heads, T = 500
    "celeba_ddpm": ADMConfig(
        image_size=128,
        num_channels=128,
        attention_resolutions=(32, 16, 8),
        num_heads=4,
        resblock_updown=True,
        learn_sigma=True,
        diffusion_steps=500,
    ),
}


class ADMUNet(nn.Module):
    """guided-diffusion's ``UNetModel`` (unconditional): ``forward(x, t)``."""

    def __init__(self, config: ADMConfig):
        super().__init__()
        c = self.config = config
        mc, emb = c.num_channels, 4 * c.num_channels
        attention_ds = {c.image_size // r for r in c.attention_resolutions}
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))

        def res(cin, cout, **kw):
            return ResBlock(cin, emb, cout, c.dropout, c.use_scale_shift_norm, **kw)

        def attention(ch, heads):
            return AttentionBlock(ch, heads, c.num_head_channels, c.use_new_attention_order)

        ch = int(c.mult[0] * mc)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(c.in_channels, ch, 3, 1, 1))])
        skips, ds = [ch], 1
        for level, mult in enumerate(c.mult):
            for _ in range(c.num_res_blocks):
                layers = [res(ch, int(mult * mc))]
                ch = int(mult * mc)
                if ds in attention_ds:
                    layers.append(attention(ch, c.num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                skips.append(ch)
            if level != len(c.mult) - 1:
                down = res(ch, ch, down=True) if c.resblock_updown else Downsample(ch)
                self.input_blocks.append(EmbedSequential(down))
                skips.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(res(ch, ch), attention(ch, c.num_heads), res(ch, ch))
        heads_up = c.num_heads if c.num_heads_upsample == -1 else c.num_heads_upsample
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(c.mult))[::-1]:
            for i in range(c.num_res_blocks + 1):
                layers = [res(ch + skips.pop(), int(mult * mc))]
                ch = int(mult * mc)
                if ds in attention_ds:
                    layers.append(attention(ch, heads_up))
                if level and i == c.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if c.resblock_updown else Upsample(ch))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        out = c.out_channels * (2 if c.learn_sigma else 1)
        self.out = nn.Sequential(
            GroupNorm32(32, ch), nn.SiLU(), zero(nn.Conv2d(int(c.mult[0] * mc), out, 3, 1, 1))
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.config.num_channels))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)
