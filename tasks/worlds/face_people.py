"""The people of the synthetic faces: identities (what a seed fixes about a person), the
CelebA-named attributes and how a render draws them with CelebA-like correlations (Male with
Mustache and a beard, Young against Gray_Hair and Eyeglasses, Smiling with Mouth_Slightly_Open,
lipstick and earrings mostly without Male)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZE = 64
ATTRIBUTES = (
    "Smiling",
    "Young",
    "Male",
    "Eyeglasses",
    "Mustache",
    "No_Beard",
    "Bangs",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Mouth_Slightly_Open",
    "Gray_Hair",
    "Blond_Hair",
    "Pale_Skin",
    "Wearing_Earrings",
)
PERSONAL = ("Male", "Blond_Hair", "Pale_Skin")  # fixed by the identity
HAIR = {
    "black": (0.10, 0.08, 0.07),
    "brown": (0.33, 0.20, 0.11),
    "auburn": (0.50, 0.22, 0.10),
    "blond": (0.86, 0.72, 0.42),
}
GREY = np.array([0.72, 0.72, 0.74])
SKIN = np.array(
    [
        (0.93, 0.78, 0.66),
        (0.86, 0.66, 0.52),
        (0.74, 0.54, 0.40),
        (0.55, 0.38, 0.27),
        (0.40, 0.27, 0.19),
    ]
)
PALE = np.array([0.97, 0.90, 0.86])


@dataclass(frozen=True)
class Identity:
    id: int
    male: bool
    blond: bool
    pale: bool
    skin: tuple
    hair: tuple
    hair_style: int  # 0 short, 1 medium, 2 long, 3 side-parted
    face_w: float
    face_h: float
    jaw: float  # > 1: a wider lower face
    eye_dx: float
    eye_y: float
    eye_size: float
    iris: tuple
    nose_len: float
    nose_w: float
    brow_thick: float
    brow_tilt: float
    mouth_w: float


def seeded_rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def identity(seed: int, index: int) -> Identity:
    """The person of (seed, index); different seeds give disjoint identities."""
    r = seeded_rng(seed, index, 7)
    male = bool(r.random() < 0.42)
    hair_name = r.choice(
        list(HAIR), p=[0.3, 0.35, 0.12, 0.23] if not male else [0.4, 0.4, 0.1, 0.1]
    )
    skin = SKIN[r.integers(len(SKIN))] + r.normal(0, 0.025, 3)
    return Identity(
        id=seed * 1_000_000 + index,
        male=male,
        blond=hair_name == "blond",
        pale=bool(r.random() < 0.06),
        skin=tuple(np.clip(skin, 0, 1)),
        hair=tuple(np.clip(np.array(HAIR[hair_name]) + r.normal(0, 0.03, 3), 0, 1)),
        hair_style=int(
            r.choice(4, p=[0.55, 0.25, 0.05, 0.15] if male else [0.08, 0.3, 0.47, 0.15])
        ),
        face_w=r.uniform(12.5, 15.0) * (1.04 if male else 1.0),
        face_h=r.uniform(16.0, 18.5),
        jaw=r.uniform(0.85, 1.0) + (0.1 if male else 0.0),
        eye_dx=r.uniform(5.0, 6.5),
        eye_y=r.uniform(-3.5, -2.0),
        eye_size=r.uniform(1.6, 2.2),
        iris=tuple(
            r.choice([(0.25, 0.15, 0.08), (0.2, 0.35, 0.55), (0.3, 0.45, 0.25), (0.12, 0.1, 0.08)])
        ),
        nose_len=r.uniform(4.0, 6.0),
        nose_w=r.uniform(1.6, 2.6),
        brow_thick=r.uniform(0.7, 1.3) + (0.35 if male else 0),
        brow_tilt=r.uniform(-0.15, 0.15),
        mouth_w=r.uniform(4.5, 6.0),
    )


def sample_attributes(
    r: np.random.Generator, person: Identity, given: dict[str, int]
) -> dict[str, int]:
    """A render's attributes, with CelebA-like correlations, conditioned on ``given``."""
    a = {
        "Male": int(person.male),
        "Pale_Skin": int(person.pale),
        **{k: v for k, v in given.items() if k != "Male"},
    }

    def draw(name, p):
        if name not in a:
            a[name] = int(r.random() < p)

    draw("Young", 0.75)
    draw("Smiling", 0.5)
    draw("Gray_Hair", 0.02 if a["Young"] else 0.55)
    a.setdefault("Blond_Hair", int(person.blond and not a["Gray_Hair"]))
    draw("Mouth_Slightly_Open", 0.7 if a["Smiling"] else 0.15)
    draw("Mustache", (0.3 if not a["Young"] else 0.15) if person.male else 0.0)
    draw("No_Beard", (0.55 if a["Mustache"] else 0.8) if person.male else 1.0)
    draw("Eyeglasses", 0.08 if a["Young"] else 0.3)
    draw("Bangs", 0.1 if person.male else 0.25)
    draw("Wearing_Hat", 0.07)
    draw("Wearing_Lipstick", 0.03 if person.male else 0.7)
    draw("Wearing_Earrings", 0.03 if person.male else 0.4)
    return {k: a[k] for k in ATTRIBUTES}


# -- drawing -----------------------------------------------------------------------------------
