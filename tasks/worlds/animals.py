"""Procedural animal images with ground-truth masks (the offline stand-in for the ImageNet pairs).

Every image is a deterministic function of (seed, index). Six classes mirror the pairs the VCE
papers use; within a pair the silhouette distribution is identical, so the only class evidence
is the coat texture. That makes the coat the *causal* region and lets cfbench measure locality
against the truth.

Masks partition the image: ``causal`` (the coat) is inside ``object``; ``object - causal`` holds
class-independent parts (eye, ears, muzzle, hooves/paws); ``spurious`` = ``1 - object`` is the
background. Exactly one of {causal, object-only, spurious} is set at every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

SIZE = 64
CLASSES = ("zebra", "sorrel", "cheetah", "cougar", "egyptian_cat", "persian_cat")
PAIRS = {  # task name -> (class id, class id); both directions are flipped
    "zebra_sorrel": (0, 1),
    "cheetah_cougar": (2, 3),
    "egyptian_persian": (4, 5),
}
_FAMILY = {0: "horse", 1: "horse", 2: "bigcat", 3: "bigcat", 4: "cat", 5: "cat"}
# Background tone a class is tied to when ``bg_correlation`` > 0 (a spurious shortcut).
_CLASS_TONE = {
    0: (0.80, 0.72, 0.45),
    1: (0.35, 0.60, 0.30),
    2: (0.85, 0.65, 0.35),
    3: (0.55, 0.55, 0.60),
    4: (0.75, 0.70, 0.60),
    5: (0.45, 0.40, 0.55),
}


@dataclass
class SynthSample:
    image: np.ndarray  # H x W x 3 float32 in [0, 1]
    label: int
    causal: np.ndarray  # H x W bool
    object: np.ndarray  # H x W bool
    spurious: np.ndarray  # H x W bool


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _smooth_noise(rng: np.random.Generator, cells: int, amp: float) -> np.ndarray:
    """Low-frequency noise: a coarse random grid bilinearly upsampled to SIZE x SIZE."""
    grid = rng.normal(0.0, amp, (cells + 1, cells + 1))
    t = np.linspace(0, cells, SIZE)
    i = np.minimum(t.astype(int), cells - 1)
    f = t - i
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def partner(label: int) -> int:
    """The other class of ``label``'s pair."""
    return next(b if label == a else a for a, b in PAIRS.values() if label in (a, b))


def _background(rng: np.random.Generator, label: int, bg_correlation: float) -> np.ndarray:
    if bg_correlation > 0 and rng.random() < bg_correlation:
        tone = np.array(_CLASS_TONE[label]) + rng.normal(0, 0.03, 3)
    else:
        tone = rng.uniform(0.25, 0.85, 3)
    ground = np.clip(tone * rng.uniform(0.6, 0.9) + rng.normal(0, 0.05, 3), 0, 1)
    horizon = rng.uniform(0.35, 0.65) * SIZE + _smooth_noise(rng, 2, 3.0)[0]
    yy = np.arange(SIZE)[:, None].repeat(SIZE, 1)
    below = (yy > horizon[None, :]).astype(np.float32)[..., None]
    img = tone * (1 - below) + ground * below
    img = img + _smooth_noise(rng, 4, 0.06)[..., None]
    return img


def _local_coords(rng: np.random.Generator, family: str):
    """Animal-frame coordinates (u along the body, v downward) for every pixel."""
    scale = {
        "horse": rng.uniform(17.5, 21.5),
        "bigcat": rng.uniform(18.5, 22.5),
        "cat": rng.uniform(18.0, 21.5),
    }[family]
    cx = rng.uniform(29, 35)
    cy = rng.uniform(24, 31)
    theta = rng.uniform(-0.25, 0.25)
    flip = rng.choice([-1.0, 1.0])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / scale * flip
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / scale
    return u, v


def _ellipse(u, v, cu, cv, au, av):
    return ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0


def _silhouette(rng: np.random.Generator, family: str, u, v):
    """Return (coat mask, non-causal parts mask) in the animal frame."""
    shape = {  # body axes, leg length, head centre/axes, neck
        "horse": dict(
            body=(1.0, 0.55), leg=0.95, head=(1.45, -0.95, 0.38, 0.2), neck=True, tail=0.7
        ),
        "bigcat": dict(
            body=(1.1, 0.5), leg=0.7, head=(1.25, -0.35, 0.32, 0.27), neck=False, tail=1.1
        ),
        "cat": dict(body=(0.95, 0.6), leg=0.55, head=(1.0, -0.55, 0.4, 0.36), neck=False, tail=0.9),
    }[family]
    bu, bv = shape["body"]
    bu *= rng.uniform(0.9, 1.1)
    coat = _ellipse(u, v, 0, 0, bu, bv)
    hu, hv, hau, hav = shape["head"]
    hu, hv = hu * bu, hv + rng.uniform(-0.1, 0.1)
    coat |= _ellipse(u, v, hu, hv, hau, hav)
    if shape["neck"]:  # a thick segment from the shoulder to the head
        t = np.clip(
            ((u - 0.7) * (hu - 0.7) + (v + 0.1) * (hv + 0.1)) / ((hu - 0.7) ** 2 + (hv + 0.1) ** 2),
            0,
            1,
        )
        pu, pv = 0.7 + t * (hu - 0.7), -0.1 + t * (hv + 0.1)
        coat |= (u - pu) ** 2 + (v - pv) ** 2 <= 0.2**2
    parts = np.zeros_like(coat)
    leg_len = shape["leg"] * rng.uniform(0.85, 1.15)
    for x0 in (-0.7 * bu, -0.45 * bu, 0.45 * bu, 0.7 * bu):
        swing = rng.uniform(-0.35, 0.35)
        du = u - (x0 + swing * (v - 0.2))
        leg_end = bv - 0.2 + leg_len
        leg = (np.abs(du) <= 0.09) & (v >= 0.1) & (v <= leg_end)
        foot = leg & (v >= leg_end - 0.13)
        coat |= leg & ~foot
        parts |= foot
    tail_len = shape["tail"] * rng.uniform(0.8, 1.2)
    curl = rng.uniform(-0.6, 0.6)
    tail_v = -0.1 + curl * (u + bu) ** 2
    coat |= (u <= -bu + 0.05) & (u >= -bu - tail_len) & (np.abs(v - tail_v) <= 0.06)
    # Class-independent parts: eye, muzzle or ears.
    parts |= _ellipse(u, v, hu + 0.35 * hau, hv - 0.3 * hav, 0.07, 0.07)
    if family == "horse":
        parts |= _ellipse(u, v, hu + 0.85 * hau, hv + 0.1 * hav, 0.16, 0.15)
    else:
        for du_ear in (-0.45, 0.35):
            eu, ev = hu + du_ear * hau, hv - hav
            parts |= (
                (np.abs(u - eu) <= 0.12 * (1 - (ev - v) / 0.3)) & (v <= ev + 0.05) & (v >= ev - 0.3)
            )
    coat &= ~parts
    return coat, parts


def _coat_texture(rng: np.random.Generator, label: int, u, v) -> np.ndarray:
    shade = (1.0 - 0.12 * v)[..., None]
    if label == 0:  # zebra: black/white stripes across the body
        freq = rng.uniform(2.2, 3.2)
        phase = rng.uniform(0, 1)
        stripes = np.sin(2 * np.pi * (u * freq + phase) + 2.5 * np.sin(1.5 * v)) > 0
        base = np.where(
            stripes[..., None], np.array([0.92, 0.92, 0.9]), np.array([0.08, 0.08, 0.1])
        )
    elif label == 1:  # sorrel: plain red-brown
        base = np.broadcast_to(
            np.array([0.62, 0.30, 0.14]) + rng.normal(0, 0.04, 3), u.shape + (3,)
        )
    elif label in (2, 3):  # cheetah (spots) / cougar (plain) share the tan coat
        tan = np.array([0.80, 0.62, 0.36]) + rng.normal(0, 0.04, 3)
        base = np.broadcast_to(tan, u.shape + (3,)).copy()
        if label == 2:
            base[_spots(rng, u, v, 120, 0.07, 0.1)] = np.array([0.12, 0.09, 0.06])
    elif label == 4:  # Egyptian cat: grey with dark spots and stripes
        grey = np.array([0.62, 0.62, 0.60]) + rng.normal(0, 0.03, 3)
        base = np.broadcast_to(grey, u.shape + (3,)).copy()
        dark = _spots(rng, u, v, 70, 0.06, 0.09)
        dark |= (np.sin(2 * np.pi * (u * 3.0 + rng.uniform(0, 1))) > 0.75) & (np.abs(u) > 0.6)
        base[dark] = np.array([0.18, 0.18, 0.2])
    else:  # Persian cat: light, fluffy coat
        cream = np.array([0.93, 0.88, 0.80]) + rng.normal(0, 0.02, 3)
        fluff = rng.normal(0, 0.07, u.shape)
        fluff = (fluff + np.roll(fluff, 1, 0) + np.roll(fluff, 1, 1)) / 2
        base = cream + fluff[..., None]
    return base * shade + rng.normal(0, 0.015, u.shape + (3,))


def _spots(rng, u, v, n, rmin, rmax) -> np.ndarray:
    cu = rng.uniform(-2.2, 2.2, n)
    cv = rng.uniform(-1.4, 1.4, n)
    r = rng.uniform(rmin, rmax, n)
    d = (u[..., None] - cu) ** 2 + (v[..., None] - cv) ** 2
    return (d <= r**2).any(-1)


def _clutter(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Texture on the background: spots and stripes of random colours, and patches of any
    class's coat (zebra stripes, cheetah spots, ...).

    Used only to train the classifier: it learns that a coat texture counts only on the animal,
    so it cannot be flipped by painting texture onto the background, and its evidence (and so
    every gradient-based mask) stays inside the ground-truth ``causal`` region.
    """
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    out = img.copy()
    for _ in range(rng.integers(1, 4)):
        colour = rng.uniform(0, 1, 3)
        kind = rng.random()
        if kind < 0.4:  # a patch of a random class's coat, in an arbitrary frame
            u, v = (xx - rng.uniform(0, SIZE)) / 20, (yy - rng.uniform(0, SIZE)) / 20
            coat = _coat_texture(rng, int(rng.integers(len(CLASSES))), u, v)
            hit = _smooth_noise(rng, 3, 1.0) > 0.7
            out[hit] = coat[hit]
            continue
        if kind < 0.7:
            cy, cx = rng.uniform(0, SIZE, (2, rng.integers(5, 40)))
            r = rng.uniform(1.0, 3.0, len(cy))
            hit = ((yy[..., None] - cy) ** 2 + (xx[..., None] - cx) ** 2 <= r**2).any(-1)
        else:
            angle, freq = rng.uniform(0, np.pi), rng.uniform(0.1, 0.3)
            hit = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * freq * 2 * np.pi) > 0.6
            hit &= _smooth_noise(rng, 2, 1.0) > 0.3
        out[hit] = colour
    return out


def render(
    seed: int,
    index: int,
    label: int,
    bg_correlation: float = 0.0,
    clutter: bool = False,
    tone_of: int | None = None,
) -> SynthSample:
    """Render one image of class ``label``; the same arguments always give the same pixels.
    ``tone_of`` (default ``label``) is the class whose background tone a correlated background
    takes: the same scene with another class's tone, to measure or intervene on the shortcut."""
    rng = _rng(seed, index)
    family = _FAMILY[label]
    img = _background(rng, label if tone_of is None else tone_of, bg_correlation)
    if clutter:
        img = _clutter(np.random.default_rng(np.random.SeedSequence([seed, index, 1])), img)
    u, v = _local_coords(rng, family)
    coat, parts = _silhouette(rng, family, u, v)
    img = np.where(coat[..., None], _coat_texture(rng, label, u, v), img)
    part_colour = np.array([0.15, 0.12, 0.1]) if family == "horse" else np.array([0.85, 0.6, 0.6])
    img = np.where(parts[..., None], part_colour, img)
    obj = coat | parts
    return SynthSample(np.clip(img, 0, 1).astype(np.float32), label, coat, obj, ~obj)


def label_for(index: int, classes: tuple[int, ...] | None = None) -> int:
    """Classes (default: all six) alternate with the index, so any prefix of a dataset is
    balanced."""
    classes = tuple(range(len(CLASSES))) if classes is None else classes
    return classes[index % len(classes)]


def images(
    seed: int,
    n: int,
    classes: tuple[int, ...] | None = None,
    bg_correlation: float = 0.0,
    clutter_rate: float = 0.0,
    animal_noise: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rendered images as a uint8 tensor N x 3 x 64 x 64 (compact in memory) and labels;
    every image whose index falls in the first ``clutter_rate`` of each 100 gets background clutter.
    ``animal_noise``: that share of the images shows the pair partner's animal while keeping its
    label and its background (a fixed per-index draw), so the animal is a noisier cue than a
    background tied to the label."""
    imgs = np.empty((n, SIZE, SIZE, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in tqdm(range(n), desc=f"render seed={seed}", leave=False):
        label = label_for(i, classes)
        noisy = animal_noise > 0 and np.random.default_rng([seed, i, 2]).random() < animal_noise
        s = render(
            seed,
            i,
            partner(label) if noisy else label,
            bg_correlation,
            clutter=(i // 6) % 100 < clutter_rate * 100,
            tone_of=label,
        )
        imgs[i] = np.round(s.image * 255)
        labels[i] = label
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def pairs(seed: int, n: int, bg_correlation: float = 0.0, tones: list[int] | None = None):
    """Scenes 0..n-1 and the same scenes with the pair partner's animal (the background unchanged:
    its tone stays that of ``tones``, default each scene's label), as float N x 3 x H x W images,
    with both labels."""
    labels = [label_for(i) for i in range(n)]
    tones = labels if tones is None else tones
    out = []
    for lab in (labels, [partner(y) for y in labels]):
        images = np.stack(
            [
                render(seed, i, y, bg_correlation, tone_of=t).image
                for i, (y, t) in enumerate(zip(lab, tones))
            ]
        )
        out.append(torch.from_numpy(images).permute(0, 3, 1, 2))
    return out[0], out[1], torch.tensor(labels), torch.tensor([partner(y) for y in labels])


class AnimalWorld:
    """This module as a ``cfbench.api.world.SyntheticWorld`` (registered as ``animals``)."""

    size, classes = SIZE, CLASSES
    render = staticmethod(render)
    partner = staticmethod(partner)
    label_for = staticmethod(label_for)
    images = staticmethod(images)
    pairs = staticmethod(pairs)


ANIMALS = AnimalWorld()
