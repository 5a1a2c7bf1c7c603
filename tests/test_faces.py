"""Synthetic faces: renders are deterministic, the causal mask is exactly what flipping the task's
attribute changes, attributes carry CelebA-like correlations, and identities persist."""

import numpy as np
import pytest

from cfbench.catalog import TASKS
from cfbench.tasks.worlds import faces


def test_a_render_is_a_function_of_its_arguments():
    a, b = faces.SMILE.render(3, 7, 1), faces.SMILE.render(3, 7, 1)
    assert np.array_equal(a.image, b.image) and a.attributes == b.attributes
    assert not np.array_equal(a.image, faces.SMILE.render(3, 8, 1).image)


@pytest.mark.parametrize("world, attribute", [(faces.SMILE, "Smiling"), (faces.AGE, "Young")])
def test_the_causal_mask_is_what_flipping_the_attribute_changes(world, attribute):
    for index in range(6):
        s = world.render(11, index, index % 2)
        assert s.attributes[attribute] == s.label == index % 2
        person = faces.identity(11, index)
        flipped = dict(s.attributes, **{attribute: 1 - s.attributes[attribute]})
        other, _ = faces.render_face(person, flipped, 11, index)
        change = np.abs(other - s.image).sum(-1)
        assert change[~s.causal].max() <= 3 / 255 + 1e-6  # nothing else moves
        assert s.causal.sum() > 20 and change[s.causal].min() > 3 / 255
        assert not (s.causal & s.spurious).any() and np.array_equal(s.spurious, ~s.object)


def test_attributes_carry_celeba_like_correlations():
    _, table = faces.BOTH.annotations(21, 1200)
    table = table.numpy().astype(float)
    col = {a: i for i, a in enumerate(faces.ATTRIBUTES)}

    def corr(a, b):
        return np.corrcoef(table[:, col[a]], table[:, col[b]])[0, 1]

    assert corr("Male", "Mustache") > 0.2 and corr("Male", "No_Beard") < -0.2
    assert corr("Young", "Gray_Hair") < -0.3
    assert corr("Smiling", "Mouth_Slightly_Open") > 0.3
    assert corr("Male", "Wearing_Lipstick") < -0.5
    assert abs(table[:, col["Smiling"]].mean() - 0.5) < 0.02  # the classes are balanced


def test_an_identity_persists_across_its_renders():
    images, who = faces.BOTH.identity_views(5, people=3, views=4)
    assert images.shape == (12, 3, 64, 64) and who.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    person = faces.identity(5, 1)
    assert person == faces.identity(5, 1) and person != faces.identity(6, 1)


def test_face_tasks_are_registered_with_ground_truth():
    task = TASKS.build("synth_age")
    samples = task.load(task.sample_ids(4))
    assert samples.labels.tolist() == [0, 1, 0, 1] and task.pair == (0, 1)
    assert set(samples.gt_masks) == {"causal", "object", "spurious"}
    assert samples.images.shape == (4, 3, 64, 64)
    assert task.target_of(samples.labels).tolist() == [1, 0, 1, 0]


def test_the_other_sample_control_returns_another_person_of_the_target_class():
    import torch
    from conftest import make_batch

    from cfbench.catalog import METHODS

    task = TASKS.build("synth_smile")
    method = METHODS.build("other_sample", task, torch.device("cpu"))
    out = method.generate(make_batch(task, ["00000", "00003"]))
    # labels alternate 0, 1, 0, 1: the next sample of the target class is the next one
    torch.testing.assert_close(out.images, task.load(["00001", "00004"]).images)
