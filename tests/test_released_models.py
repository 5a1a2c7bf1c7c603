"""I2SB's bridge as cfbench reads it, without the released code:
checkpoint layouts read as their code reads them, and schedule values as I2SB computes them
(computed with its own functions; ``benchmarks/official_equivalence.py`` compares the networks
themselves with a checkout)."""

from __future__ import annotations

import json

import pytest
import torch

from cfbench.components.adm_unet import ADMConfig
from cfbench.components.i2sb import Bridge, BridgeConfig, I2SBNetwork, load_bridge, space_indices

TINY = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult=[1, 2])
TINY |= dict(attention_resolutions=[16], num_head_channels=32)


def test_i2sb_schedule_and_step_grid():
    bridge = Bridge(BridgeConfig(ADMConfig.from_flags(TINY)))
    assert bridge.std_fwd[0] == pytest.approx(0.01, rel=1e-5)
    assert bridge.std_bwd[0] == pytest.approx(0.496919, rel=1e-5)
    assert bridge.mu_x0[0] == pytest.approx(0.999595, rel=1e-5)
    assert bridge.std_fwd[599] == pytest.approx(0.403023, rel=1e-5)
    assert (bridge.mu_x0[599], bridge.mu_x1[599]) == pytest.approx((0.343135, 0.656865), rel=1e-5)
    assert bridge.std_sb[599] == pytest.approx(0.236082, rel=1e-5)
    assert bridge.mu_x0[699] == pytest.approx(0.217970, rel=1e-5)
    assert bridge.std_fwd[999] == pytest.approx(0.496919, rel=1e-5)
    assert space_indices(1000, 3) == [0, 500, 999]
    assert space_indices(600, 101)[:3] == [0, 6, 12] and space_indices(600, 101)[-1] == 599
    levels = bridge.net.noise_levels
    assert (float(levels[0]), float(levels[999])) == pytest.approx((0.1, 1000.0))


def test_an_i2sb_checkpoint_samples_with_its_ema_weights(tmp_path):
    """I2SB's Runner samples under ``ema.average_parameters()``: the shadow parameters, in the
    network's parameter order, not ``net``."""
    flags = TINY
    torch.manual_seed(0)
    net = I2SBNetwork(ADMConfig.from_flags(flags))
    shadow = [torch.randn_like(p) * 0.05 for p in net.parameters()]
    ema = {"decay": 0.99, "num_updates": 3, "shadow_params": shadow, "collected_params": None}
    torch.save(
        {"net": net.state_dict(), "ema": ema, "optimizer": {}, "sched": None},
        tmp_path / "latest.pt",
    )
    (tmp_path / "config.json").write_text(json.dumps({"unet": flags, "beta_max": 1.0}))
    bridge = load_bridge(tmp_path)
    for ours, theirs in zip(bridge.net.parameters(), shadow):
        assert torch.equal(ours, theirs)


def test_the_bridge_trainer_masks_and_sampler_keep_the_known_pixels():
    """Cell masks cover 10-30% of the image, and I2SB's inpainting sampler returns the input
    outside the region whatever the network predicts."""
    from cfbench.components.i2sb_training import cell_masks, inpaint

    gen = torch.Generator().manual_seed(0)
    masks = cell_masks(gen, 6, 32)
    shares = masks.flatten(1).mean(1)
    assert ((shares >= 0.1 - 1e-3) & (shares <= 0.3 + 1e-3)).all()
    bridge = Bridge(BridgeConfig(ADMConfig.from_flags(TINY)))
    x0 = torch.rand(6, 3, 32, 32) * 2 - 1
    out = inpaint(bridge, x0, masks, gen, nfe=3)
    assert torch.equal(out * (1 - masks), x0 * (1 - masks))
    assert not torch.allclose(out * masks, x0 * masks)
