"""Model wrappers that follow cfbench's image convention (B x 3 x H x W in [0, 1], RGB).

Each wrapper normalises or rescales inside, so methods and metrics never need to know what
a model expects. The small architectures here are the ones the synthetic assets are trained with.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    """ResNet-style backbone for 64 x 64 inputs; ``features`` is the penultimate activation."""

    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        self.normalize = Normalize()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers.append(_Block(cin, w, 1 if i == 0 else 2))
            cin = w
        self.layers = nn.Sequential(*layers)
        self.out_dim = widths[-1]

    def features(self, x):
        h = self.layers(self.stem(self.normalize(x)))
        return h.mean(dim=(2, 3))


class SynthClassifier(nn.Module):
    """Six-way classifier of the synthetic animals; logits B x 6."""

    def __init__(self, num_classes: int = 6):
        super().__init__()
        self.backbone = SmallResNet()
        self.fc = nn.Linear(self.backbone.out_dim, num_classes)

    def penultimate(self, x):
        return self.backbone.features(x)

    def forward(self, x):
        return self.fc(self.penultimate(x))


class SimSiam(nn.Module):
    """SimSiam (Chen & He 2021): backbone + projector; the predictor is used only in training."""

    def __init__(self, dim: int = 128, pred_dim: int = 32):
        super().__init__()
        self.backbone = SmallResNet()
        w = self.backbone.out_dim
        self.projector = nn.Sequential(
            nn.Linear(w, w, bias=False), nn.BatchNorm1d(w), nn.ReLU(),
            nn.Linear(w, dim, bias=False), nn.BatchNorm1d(dim, affine=False))
        self.predictor = nn.Sequential(nn.Linear(dim, pred_dim, bias=False), nn.BatchNorm1d(pred_dim),
                                       nn.ReLU(), nn.Linear(pred_dim, dim))

    def embed(self, x):
        """Encoder with projector: the embedding S^3 compares."""
        return self.projector(self.backbone.features(x))

    forward = embed


def autoencoder_config() -> dict:
    """diffusers AutoencoderKL with a 16-channel latent on a 32 x 32 grid at 64 x 64 (factor 2).

    A latent cell then spans 1/32 of the image width, as in the kl-f8-d16 autoencoder SLCF uses on
    256-pixel images, so the paper's mask sigma (in latent cells) keeps its meaning. A 16 x 16 grid
    (factor 4) was tried first: its decoder spreads any edit so far around the thin synthetic
    animals that even the true counterfactual, passed through it, put only 59% of its L1 mass on
    the coat.
    """
    return dict(in_channels=3, out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2,
                block_out_channels=(16, 32), layers_per_block=1,
                latent_channels=16, norm_num_groups=8, sample_size=64)


class LatentAutoencoder(nn.Module):
    """[0, 1]-image interface over a ``diffusers.AutoencoderKL`` (which works in [-1, 1]).

    ``encode`` returns the posterior mode (deterministic, as latent-editing methods use) times the
    model's ``scaling_factor`` (the diffusers convention that gives latents unit variance, so
    latent step sizes mean the same across autoencoders); ``decode`` returns an image in [0, 1].
    """

    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.scale = float(vae.config.scaling_factor)

    def encode(self, x):
        return self.vae.encode(x * 2 - 1).latent_dist.mode() * self.scale

    def decode(self, z):
        z = z.contiguous(memory_format=torch.channels_last)   # NHWC throughout the decoder (see Task)
        return (self.vae.decode(z / self.scale).sample.clamp(-1, 1) + 1) / 2

    def forward(self, x):
        return self.decode(self.encode(x))
