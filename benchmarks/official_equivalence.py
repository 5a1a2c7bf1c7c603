"""cfbench's ADM UNet and I2SB bridge against the released code, on the same random weights.

For each checkout given, the official module is built from it (the released code is imported from
the checkout, never vendored), random weights are drawn into it and loaded into cfbench's module
key for key, and the two are compared on the same inputs: network outputs and one sampler step.
Printed: the largest relative difference
max |ours - theirs| / max |theirs| of each comparison; the bar is 1e-5.

    .venv/bin/python benchmarks/official_equivalence.py --guided-diffusion DIR --i2sb DIR

A checkout is a working tree of the released repository (``git -C <fetched repo> archive HEAD |
tar -x -C DIR``): openai/guided-diffusion, NVlabs/I2SB.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import types
from pathlib import Path

import numpy as np
import torch

BAR = 1e-5


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours.double() - theirs.double()).abs().max() / theirs.double().abs().max())


# what the released training code imports and the compared modules never call
TRAINING_ONLY = (
    "ipdb",
    "torch_ema",
    "torchmetrics",
    "wandb",
    "prefetch_generator",
    "torch.utils.tensorboard",
    "lmdb",
    "pytorch_lightning",
    "easydict",
)


class _Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None})


@contextlib.contextmanager
def official(path: Path, *packages: str):
    """Import ``packages`` from the checkout at ``path`` (and forget them afterwards, so two
    checkouts holding a ``guided_diffusion`` do not mix); training-only dependencies are stubs."""
    for name in TRAINING_ONLY:
        sys.modules.setdefault(name, _Stub(name))
    sys.path.insert(0, str(path))
    try:
        yield [importlib.import_module(p) for p in packages]
    finally:
        sys.path.remove(str(path))
        local = {p.name.removesuffix(".py") for p in path.iterdir()}
        for name in list(sys.modules):
            if name.split(".")[0] in local:
                del sys.modules[name]


def randomise(module: torch.nn.Module, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.05 for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    return state


def guided_diffusion(root: Path) -> list[tuple[str, float]]:
    from cfbench.components.adm_unet import ADMConfig, ADMUNet
    from cfbench.components.gaussian_diffusion import GaussianDiffusion, named_betas

    found = []
    layouts = {  # the two head layouts of the released models, at test widths
        "heads (CelebA DDPM)": dict(num_heads=4, num_head_channels=-1),
        "head channels (ImageNet 256)": dict(num_heads=4, num_head_channels=32),
    }
    with official(root, "guided_diffusion.script_util") as (script_util,):
        for name, heads in layouts.items():
            flags = dict(
                image_size=32,
                num_channels=64,
                num_res_blocks=1,
                channel_mult="1,2",
                attention_resolutions="16",
                learn_sigma=True,
                resblock_updown=True,
                use_scale_shift_norm=True,
                **heads,
            )
            theirs = script_util.create_model(
                class_cond=False,
                use_checkpoint=False,
                dropout=0.0,
                use_fp16=False,
                num_heads_upsample=-1,
                use_new_attention_order=False,
                **flags,
            ).eval()
            state = randomise(theirs, 0)
            ours = ADMUNet(ADMConfig.from_flags(flags)).eval()
            ours.load_state_dict(state)
            x, t = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)), None
            t = torch.tensor([5, 400])
            with torch.no_grad():
                a, b = ours(x, t), theirs(x, t)
            found.append((f"ADM UNet output, {name}", relative(a, b)))
        # one respaced ancestral step (learned range) and one DDIM step, same model output
        diffusion = script_util.create_gaussian_diffusion(
            steps=500, learn_sigma=True, noise_schedule="linear", timestep_respacing="50"
        )
        process = GaussianDiffusion(named_betas("linear", 500)).respaced("50")
        gen = torch.Generator().manual_seed(2)
        x_t = torch.randn(2, 3, 8, 8, generator=gen)
        out = torch.randn(2, 6, 8, 8, generator=gen) * 0.5
        i = 30

        def model(x, t, **_):
            return out

        t = torch.full((2,), i)
        theirs = diffusion.p_mean_variance(model, x_t, t, clip_denoised=True)
        eps, values = out[:, :3], out[:, 3:]
        x0 = process.predict_x0(x_t, i, eps, clip=True)
        mean, log_var = process.posterior(x_t, i, x0, values)
        found.append(("ADM posterior mean, respaced 50 of T = 500", relative(mean, theirs["mean"])))
        found.append(("ADM learned-range log variance", relative(log_var, theirs["log_variance"])))
        ddim = diffusion.ddim_sample(model, x_t, t, clip_denoised=True, eta=0.0)["sample"]
        found.append(("ADM DDIM step", relative(process.ddim_step(x_t, i, x0), ddim)))
        official_map = [int(v) for v in diffusion.timestep_map]
        found.append(
            ("respaced timesteps equal", 0.0 if official_map == process.timestep_map else 1)
        )
    return found


def i2sb(root: Path) -> list[tuple[str, float]]:
    from cfbench.components.adm_unet import ADMConfig
    from cfbench.components.i2sb import Bridge, BridgeConfig

    packages = ("i2sb.diffusion", "i2sb.runner", "guided_diffusion.script_util")
    with official(root, *packages) as (diff, runner, script_util):
        flags = dict(
            image_size=32,
            num_channels=64,
            num_res_blocks=1,
            channel_mult="1,2",
            attention_resolutions="16",
            num_heads=4,
            num_head_channels=32,
            resblock_updown=True,
            use_scale_shift_norm=True,
        )
        unet = script_util.create_model(
            learn_sigma=False,
            class_cond=False,
            use_checkpoint=False,
            dropout=0.0,
            use_fp16=False,
            num_heads_upsample=-1,
            use_new_attention_order=False,
            **flags,
        ).eval()
        bridge = Bridge(BridgeConfig(ADMConfig.from_flags(flags), beta_max=1.0, ot_ode=True))
        state = randomise(unet, 3)
        bridge.net.diffusion_model.load_state_dict(state)
        bridge.net.eval()
        # I2SB's Image256Net: diffusion_model(x, noise_levels[steps]); its schedule
        # the schedule as I2SB's Runner builds it: make_beta_schedule, its first half mirrored
        betas = runner.make_beta_schedule(n_timestep=1000, linear_end=1.0 / 1000)
        betas = np.concatenate([betas[:500], np.flip(betas[:500])])
        theirs = diff.Diffusion(betas, "cpu")
        holder = types.SimpleNamespace(diffusion=theirs)
        gen = torch.Generator().manual_seed(4)
        x_t = torch.randn(2, 3, 32, 32, generator=gen)
        step = 599
        levels = torch.linspace(1e-4, 1.0, 1000) * 1000
        with torch.no_grad():
            out = unet(x_t, levels[torch.full((2,), step)])
            x0_theirs = runner.Runner.compute_pred_x0(holder, torch.full((2,), step), x_t, out)
            x0_ours = bridge.predict_x0(x_t, step)
        found = [("I2SB network and x0 estimate", relative(x0_ours, x0_theirs))]
        prev_theirs = theirs.p_posterior(593, step, x_t, x0_theirs, ot_ode=True)
        prev_ours = bridge.posterior(593, step, x_t, x0_ours)
        found.append(("I2SB posterior step (OT-ODE)", relative(prev_ours, prev_theirs)))
        x0 = torch.randn(2, 3, 32, 32, generator=gen)
        x1 = torch.randn(2, 3, 32, 32, generator=gen)
        q_theirs = theirs.q_sample(torch.full((2,), 699), x0, x1, ot_ode=True)
        found.append(("I2SB bridge marginal", relative(bridge.q_sample(699, x0, x1), q_theirs)))
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guided-diffusion", type=Path)
    ap.add_argument("--i2sb", type=Path)
    args = ap.parse_args()
    rows = []
    for checkout, compare in (
        (args.guided_diffusion, guided_diffusion),
        (args.i2sb, i2sb),
    ):
        if checkout is not None:
            rows += compare(checkout)
    if not rows:
        ap.error("give at least one checkout")
    print("| comparison | max relative difference | within 1e-5 |\n|:--|--:|:--|")
    for name, value in rows:
        print(f"| {name} | {value:.2e} | {'yes' if value <= BAR else 'NO'} |")
    return 0 if all(v <= BAR for _, v in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
