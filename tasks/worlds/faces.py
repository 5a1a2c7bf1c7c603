"""Procedural faces with CelebA-named attributes, identities and ground-truth masks (the offline
stand-in for CelebA smile / age): scenes and the world.

An *identity* is a seed: it fixes face shape, jaw, skin tone, eye spacing, size and colour, nose,
eyebrows, hair style and base colour, and the attributes CelebA records per person but that a
photo does not change (Male, Blond_Hair, Pale_Skin). A *render* of an identity adds pose and scale
jitter, lighting, a background and every other attribute, drawn with CelebA-like correlations
(Male with Mustache and a beard, Young against Gray_Hair and Eyeglasses, Smiling with
Mouth_Slightly_Open, lipstick and earrings mostly without Male). Every render is a deterministic
function of (seed, index, attributes), so the same scene can be rendered with one attribute
changed: the ``causal`` mask of an attribute is exactly the pixels that change when it alone is
flipped; ``object`` is the face, ears, hair and what is worn on the head; ``spurious`` is the rest
(background, neck and shoulders). Images are 64 x 64, drawn with anti-aliased shapes.

``FaceWorld(attribute)`` is a ``cfbench.api.world.SyntheticWorld`` whose two classes are the
attribute off and on (label 1 = on), so the explained classifiers are binary as the field's
CelebA classifiers; ``scene`` also returns all attributes and the identity id (for the attribute
oracle and the identity embedder that the face metrics use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from cfbench.tasks.worlds.face_drawing import render_face
from cfbench.tasks.worlds.face_people import (
    ATTRIBUTES,
    PERSONAL,
    SIZE,
    Identity,
    identity,
    sample_attributes,
    seeded_rng,
)


@dataclass
class FaceScene:
    image: np.ndarray  # H x W x 3 float32 in [0, 1]
    label: int
    attributes: dict[str, int]
    identity: int
    causal: np.ndarray  # H x W bool
    object: np.ndarray
    spurious: np.ndarray


def scene(
    seed: int,
    index: int,
    given: dict[str, int] | None = None,
    person: Identity | None = None,
    changed: tuple[str, ...] = (),
    masks: bool = True,
) -> FaceScene:
    """Render (seed, index): its identity (or ``person``) with attributes drawn given ``given``.
    ``changed`` names the attributes whose ground truth the masks describe: ``causal`` is where
    the image changes when those attributes alone are flipped (``masks=False`` skips that second
    render, for training data)."""
    person = person or identity(seed, index)
    attributes = sample_attributes(seeded_rng(seed, index, 5), person, given or {})
    image, coverage = render_face(person, attributes, seed, index)
    obj = coverage > 0.5
    causal = np.zeros_like(obj)
    if changed and masks:
        flipped = dict(attributes, **{a: 1 - attributes[a] for a in changed})
        other, other_cover = render_face(person, flipped, seed, index)
        causal = np.abs(other - image).sum(-1) > 3 / 255
        obj |= other_cover > 0.5
    label = sum(attributes[a] << bit for bit, a in enumerate(changed))
    return FaceScene(image, label, attributes, person.id, causal, obj | causal, ~(obj | causal))


class FaceWorld:
    """Faces whose classes are the combinations of ``attributes`` (bit k of a label is attribute
    k; one attribute: 0 = off, 1 = on): a ``cfbench.api.world.SyntheticWorld``. A counterfactual
    flips every one of them (``partner``). Beyond that interface it renders identities
    (``identity_views``) and reports every attribute (``annotations``) for the face metrics'
    evaluation models."""

    size = SIZE
    attribute_names = ATTRIBUTES
    switchable = tuple(a for a in ATTRIBUTES if a not in PERSONAL)  # a render may change these

    def __init__(self, *attributes: str):
        if unknown := [a for a in attributes if a not in ATTRIBUTES]:
            raise ValueError(f"unknown face attributes {unknown}")
        self.attributes = attributes
        self.classes = tuple(
            "+".join(
                a.lower() if label >> k & 1 else f"not_{a.lower()}"
                for k, a in enumerate(attributes)
            )
            for label in range(2 ** len(attributes))
        )

    def _given(self, label: int) -> dict[str, int]:
        return {a: int(label >> k & 1) for k, a in enumerate(self.attributes)}

    def render(self, seed: int, index: int, label: int, masks: bool = True) -> FaceScene:
        return scene(seed, index, self._given(label), changed=self.attributes, masks=masks)

    def partner(self, label: int) -> int:
        return label ^ (2 ** len(self.attributes) - 1)

    def label_for(self, index: int, classes: tuple[int, ...] | None = None) -> int:
        classes = tuple(range(len(self.classes))) if classes is None else classes
        return classes[index % len(classes)]

    def images(self, seed: int, n: int, classes: tuple[int, ...] | None = None):
        """Scenes 0..n-1 as uint8 N x 3 x H x W images and their labels."""
        scenes = (self.render(seed, i, self.label_for(i, classes), masks=False) for i in range(n))
        images, labels, _ = _stack(
            tqdm(scenes, total=n, desc=f"render faces seed={seed}", leave=False)
        )
        return images, labels

    def pairs(self, seed: int, n: int):
        """Scenes 0..n-1 and the same scenes with every class attribute flipped, as float
        N x 3 x H x W images, with both labels."""
        out, labels = [], []
        for flip in (False, True):
            scenes = [
                self.render(
                    seed, i, self.label_for(i) ^ (self.partner(0) if flip else 0), masks=False
                )
                for i in tqdm(range(n), desc=f"render face pairs seed={seed}", leave=False)
            ]
            out.append(torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2))
            labels.append(torch.tensor([s.label for s in scenes]))
        return out[0], out[1], labels[0], labels[1]

    def attribute_table(self, seed: int, n: int) -> np.ndarray:
        """The attributes of scenes 0..n-1 (N x A, 0/1, ``ATTRIBUTES`` order), without rendering."""
        table = np.empty((n, len(ATTRIBUTES)), np.int8)
        for i in range(n):
            given = self._given(self.label_for(i))
            drawn = sample_attributes(seeded_rng(seed, i, 5), identity(seed, i), given)
            table[i] = [drawn[a] for a in ATTRIBUTES]
        return table

    def annotations(self, seed: int, n: int):
        """Scenes 0..n-1 as uint8 images and every attribute (N x A, 0/1, ``ATTRIBUTES`` order)."""
        scenes = (self.render(seed, i, self.label_for(i), masks=False) for i in range(n))
        images, _, attributes = _stack(
            tqdm(scenes, total=n, desc=f"render faces seed={seed}", leave=False)
        )
        return images, attributes

    def intervention(self, seed: int, index: int, attribute: str) -> tuple[np.ndarray, np.ndarray]:
        """Scene ``index`` (the person and the attributes it draws) rendered with ``attribute``
        off and on, everything else equal: H x W x 3 images in [0, 1]."""
        person = identity(seed, index)
        drawn = sample_attributes(np.random.default_rng([seed, index]), person, {})
        off, on = (render_face(person, {**drawn, attribute: v}, seed, index)[0] for v in (0, 1))
        return off, on

    def identity_views(self, seed: int, people: int, views: int):
        """``views`` renders of each of ``people`` identities (scenes, poses and the attributes a
        render draws all differ), as uint8 images and identity numbers 0..people-1."""
        scenes, who = [], []
        for k in tqdm(range(people), desc=f"render identities seed={seed}", leave=False):
            person = identity(seed, k)
            for v in range(views):
                index = 1_000_000 + k * views + v
                scenes.append(
                    scene(seed, index, self._given(self.label_for(v)), person=person, masks=False)
                )
                who.append(k)
        return _stack(scenes)[0], torch.tensor(who)


def _stack(scenes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 N x 3 x H x W images, labels and attributes (N x A) of rendered scenes."""
    scenes = list(scenes)
    images = np.stack([np.round(s.image * 255).astype(np.uint8) for s in scenes])
    attributes = torch.tensor([[s.attributes[a] for a in ATTRIBUTES] for s in scenes])
    labels = torch.tensor([s.label for s in scenes])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels, attributes


SMILE = FaceWorld("Smiling")
AGE = FaceWorld("Young")
BOTH = FaceWorld("Smiling", "Young")
