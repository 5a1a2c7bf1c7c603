"""The DiffAE's coat-swap texture loss: it must rank a cheetah coat with other spots nearer than a
blurred, spotless mean, and that nearer than the plain cougar coat; pixel MSE does not."""

from __future__ import annotations

import numpy as np
import torch

from cfbench.components.diffae import CoatTexture
from cfbench.components.training import TRAIN_SEED
from cfbench.tasks.worlds import animals

CHEETAH, COUGAR = 2, 3


def _scenes(label, monkeypatch=None, n=16):
    images = []
    for i in range(n):
        if monkeypatch is not None:  # same scene, spots drawn from another generator
            other = np.random.default_rng([TRAIN_SEED, i, 99])
            spots = animals._spots
            with monkeypatch.context() as m:
                m.setattr(animals, "_spots", lambda rng, *a, _s=spots, _o=other: _s(_o, *a))
                images.append(animals.render(TRAIN_SEED, i, label).image)
        else:
            images.append(animals.render(TRAIN_SEED, i, label).image)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) * 2 - 1


def test_texture_distance_prefers_other_spots_to_the_mean_and_the_mean_to_no_spots(monkeypatch):
    cheetah, relaid, cougar = _scenes(CHEETAH), _scenes(CHEETAH, monkeypatch), _scenes(COUGAR)
    texture = CoatTexture()
    to_relaid, to_mean, to_cougar = (
        texture.distance(y, cheetah, 500.0).median()
        for y in (relaid, (cheetah + relaid) / 2, cougar)
    )
    assert to_relaid < to_mean < to_cougar
    pixel = [(y - cheetah).pow(2).mean((1, 2, 3)).median() for y in (relaid, cougar)]
    assert pixel[0] > pixel[1]  # why the plain epsilon loss learns spotless coats
