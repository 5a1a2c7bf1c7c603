import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from cfbench.methods.toolkit.masks import gaussian_blur, postprocess_mask
from cfbench.methods.toolkit.optim import PerSampleAdam


def test_blur_equals_scipy_reflect_filter():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 1, 16, 12)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(maps), 3.0).numpy()
    ref = np.stack(
        [gaussian_filter(m[0].astype(np.float64), 3.0, mode="reflect")[None] for m in maps]
    )
    assert np.abs(ours - ref).max() < 1e-5


def test_postprocess_normalises_thresholds_and_keeps_soft_values():
    attr = torch.zeros(2, 1, 16, 16)
    attr[0, 0, 4, 4] = 5.0
    attr[1, 0, 10:12, 10:12] = 1.0
    m = postprocess_mask(attr, sigma=1.0, threshold=0.5)
    assert torch.allclose(m.flatten(1).amax(1), torch.ones(2))
    nonzero = m[m > 0]
    assert nonzero.min() >= 0.5 and (nonzero < 1).any()  # soft above the threshold
    assert m[0, 0, 4, 4] == 1 and m[0, 0, 12, 12] == 0  # zero far from the peak


def test_per_sample_adam_leaves_other_rows_untouched_and_counts_steps_per_row():
    p = torch.zeros(3, 4)
    opt = PerSampleAdam(p, lr=0.1)
    g = torch.ones(2, 4)
    opt.step(p, g, torch.tensor([0, 2]))
    assert (p[1] == 0).all() and torch.allclose(p[0], torch.full((4,), -0.1))
    opt.step(p, torch.ones(1, 4), torch.tensor([1]))
    assert torch.allclose(p[1], p[0]), "row 1's first step equals row 0's first step"
