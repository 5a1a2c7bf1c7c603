"""guided-diffusion's ADM as cfbench reads it, without the released code: its respacing and
schedule values as guided-diffusion computes them (computed with its own functions), and a
state dict loaded key for key with its flags (``benchmarks/official_equivalence.py`` compares the
networks with a checkout)."""

from __future__ import annotations

import json

import pytest
import torch

from cfbench.components.adm_unet import ADMConfig, ADMUNet
from cfbench.components.gaussian_diffusion import GaussianDiffusion, named_betas, space_timesteps

TINY = dict(image_size=32, num_channels=32, num_res_blocks=1, channel_mult=[1, 2])
TINY |= dict(attention_resolutions=[16], num_head_channels=32, learn_sigma=True)


def test_guided_diffusion_respacing_and_ddim_grids():
    assert space_timesteps(500, "200")[:6] == [0, 3, 5, 8, 10, 13]
    assert space_timesteps(500, "200")[-1] == 499 and len(space_timesteps(500, "200")) == 200
    assert (
        space_timesteps(500, "50")[:4] == [0, 10, 20, 31] and space_timesteps(500, "50")[-1] == 499
    )
    assert space_timesteps(1000, "250")[:3] == [0, 4, 8] and space_timesteps(1000, "250")[-1] == 999
    assert space_timesteps(1000, "ddim25") == list(range(0, 1000, 40))
    process = GaussianDiffusion(named_betas("linear", 500)).respaced("200")
    assert process.betas[0] == pytest.approx(2e-4)
    assert process.betas[1] == pytest.approx(0.0010781758, rel=1e-6)
    assert process.betas[-1] == pytest.approx(0.1150435, rel=1e-5)
    assert process.abar[-1] == pytest.approx(3.766e-5, rel=1e-3)


def test_an_adm_state_dict_loads_key_for_key_with_its_flags(tmp_path):
    from cfbench.catalog import COMPONENTS

    torch.manual_seed(0)
    net = ADMUNet(ADMConfig.from_flags(TINY))
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    prior = COMPONENTS.get("diffusion_prior").load().load(tmp_path / "model.pt", {}, False)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3, 300])
    with torch.no_grad():
        eps, values = prior.predict(x, t)
        out = net(x, t)
    # the prior runs the UNet channels-last, whose kernels round differently in the last bits
    torch.testing.assert_close(eps, out[:, :3], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values, out[:, 3:], rtol=1e-5, atol=1e-6)
    assert prior.learned_variance and prior.num_train_timesteps == 1000
