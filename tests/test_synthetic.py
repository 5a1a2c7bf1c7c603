import numpy as np
import torch

from cfbench.tasks.worlds import animals


def test_render_is_deterministic_per_seed_and_index():
    a, b = animals.render(5, 17, 2), animals.render(5, 17, 2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.causal, b.causal)
    c = animals.render(5, 18, 2)
    d = animals.render(6, 17, 2)
    assert not np.array_equal(a.image, c.image) and not np.array_equal(a.image, d.image)


def test_masks_partition_the_image():
    for label in range(len(animals.CLASSES)):
        for index in range(5):
            s = animals.render(0, index, label)
            assert s.image.shape == (64, 64, 3) and 0 <= s.image.min() and s.image.max() <= 1
            assert not (s.causal & ~s.object).any(), "causal must lie inside the object"
            assert np.array_equal(s.spurious, ~s.object)
            parts = (
                s.causal.astype(int) + (s.object & ~s.causal).astype(int) + s.spurious.astype(int)
            )
            assert (parts == 1).all()
            assert 0.03 < s.causal.mean() < 0.4 and (s.object & ~s.causal).any()


def test_pair_differs_only_in_the_coat():
    """Same (seed, index) in both classes of a pair: pixels outside the coat are identical
    except where the silhouette draw differs, which it must not within a pair."""
    a, b = animals.render(1, 3, 2), animals.render(1, 3, 3)
    assert np.array_equal(a.object, b.object) and np.array_equal(a.causal, b.causal)
    outside = ~a.causal
    assert np.allclose(a.image[outside], b.image[outside])
    assert np.abs(a.image[a.causal] - b.image[a.causal]).mean() > 0.05


def test_background_correlation_ties_tone_to_class():
    def mean_bg(label, rate):
        vals = [animals.render(0, i, label, rate) for i in range(40)]
        return np.mean([v.image[v.spurious].mean(0) for v in vals], axis=0)

    spread_off = np.abs(mean_bg(0, 0.0) - mean_bg(1, 0.0)).max()
    spread_on = np.abs(mean_bg(0, 1.0) - mean_bg(1, 1.0)).max()
    assert spread_on > 2 * spread_off


def test_task_loads_both_directions(task):
    ids = task.sample_ids(6)
    s = task.load(ids)
    assert s.images.shape == (6, 3, 64, 64) and s.images.dtype == torch.float32
    assert set(s.labels.tolist()) == set(task.pair)
    assert (task.target_of(s.labels) != s.labels).all()
    assert set(s.gt_masks) == {"causal", "object", "spurious"}


def test_one_direction_tasks_explain_only_their_source_class():
    """CECAS A.1 evaluates one direction per pair (cougar -> cheetah, ...): registered by name."""
    from cfbench.catalog import TASKS
    from cfbench.tasks.worlds import animals

    task = TASKS.build("synth_cougar_to_cheetah")
    samples = task.load(task.sample_ids(6))
    cougar, cheetah = (animals.CLASSES.index(c) for c in ("cougar", "cheetah"))
    assert task.name == "synth_cougar_to_cheetah" and task.explained == (cougar,)
    assert samples.labels.tolist() == [cougar] * 6
    assert task.target_of(samples.labels).tolist() == [cheetah] * 6
    both = TASKS.build("synth_cheetah_cougar")
    assert set(task.sample_ids(6)) < set(both.sample_ids(12))  # the same renders, one class
