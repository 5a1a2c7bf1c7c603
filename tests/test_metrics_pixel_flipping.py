"""PF through Quantus: the ground-truth coat is a better attribution than the background."""

import numpy as np

from cfbench.metrics.pixel_flipping import features_in_step, flipping_curves, pixel_flipping


def test_step_divides_the_image_and_gives_enough_steps():
    for h, w in [(64, 64), (224, 224), (32, 48)]:
        step = features_in_step(h, w)
        assert (h * w) % step == 0 and 3 * h * w // step >= 48


def test_causal_region_flips_the_prediction_faster_than_the_background(task):
    s = task.load([f"{i:05d}" for i in range(8)])
    causal = pixel_flipping(task.classifier, s.images, s.labels, s.gt_masks["causal"])
    background = pixel_flipping(task.classifier, s.images, s.labels, s.gt_masks["spurious"])
    assert ((0 <= causal) & (causal <= 1)).all() and causal.mean() < background.mean() - 0.3


def test_normalised_auc_is_the_mean_of_the_trapezoid(task):
    s = task.load(["00000", "00001"])
    curves = flipping_curves(task.classifier, s.images, s.labels, s.gt_masks["causal"])
    expected = (curves[:, 1:] + curves[:, :-1]).sum(1) / 2 / (curves.shape[1] - 1)
    assert curves.shape == (2, 48)
    np.testing.assert_allclose(
        pixel_flipping(task.classifier, s.images, s.labels, s.gt_masks["causal"]), expected
    )
