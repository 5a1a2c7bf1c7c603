"""I2SB's inpainting bridge (Liu et al. 2023, ``NVlabs/I2SB``): the generative model RCSB edits
with.

An Image-to-Image Schroedinger Bridge runs from the corrupted image x1 (the region filled with
Gaussian noise) to the clean image x0. Its network is an ADM UNet (``components/adm_unet.py``,
held as ``diffusion_model``, so the keys are ``diffusion_model.input_blocks...``) called with
I2SB's noise level of a step (``noise_levels[step]`` = 1000 (1e-4 + step (1 - 1e-4) / 999)) and
predicting (x_t - x0) / std_fwd[step]. The schedule is I2SB's symmetric one: betas
linspace(sqrt 1e-4, sqrt(beta_max / 1000), 1000)^2, its first half mirrored; std_fwd, std_bwd and
the bridge's Gaussian-product coefficients are computed in float64 and used in float32, as the
released code does.

Locations (``CFBENCH_RCSB_BRIDGE``, a task file's ``rcsb_bridge``): I2SB's released ``latest.pt``
(``{'net', 'ema', 'optimizer', 'sched'}``; the EMA's ``shadow_params`` follow the network's
parameter order and are the weights sampled with), with its ``options.pkl`` or a ``config.json``
beside it for what the file does not say (``beta_max``, ``ot_ode``, the UNet's flags when they
differ from I2SB's ADM-256 ones), or a folder holding them. The shipped synthetic bridges are such
folders (``latest.pt`` in I2SB's layout and ``config.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cfbench.api.component import Component, read_torch_file, state_mismatch
from cfbench.components.adm_unet import ADMConfig, ADMUNet
from cfbench.errors import UserError
from cfbench.numerics import Numerics

CHECKPOINT, CONFIG = "latest.pt", "config.json"
INTERVAL, T0, T1 = 1000, 1e-4, 1.0
# I2SB's ckpt_util.create_argparser: the ADM 256 unconditional flags without learned sigma
I2SB_UNET = ADMConfig(
    image_size=256,
    num_channels=256,
    attention_resolutions=(32, 16, 8),
    num_head_channels=64,
    resblock_updown=True,
)


@dataclass(frozen=True)
class BridgeConfig:
    unet: ADMConfig = I2SB_UNET
    beta_max: float = 1.0  # I2SB's inpainting runs (scripts/train.sh: --beta-max 1.0 --ot-ode)
    ot_ode: bool = True

    def flags(self) -> dict:
        return {"unet": self.unet.flags(), "beta_max": self.beta_max, "ot_ode": self.ot_ode}


class I2SBNetwork(nn.Module):
    """I2SB's ``Image256Net``: the ADM UNet under ``diffusion_model``, fed the step's noise
    level."""

    def __init__(self, unet: ADMConfig):
        super().__init__()
        self.diffusion_model = ADMUNet(unet)
        levels = torch.linspace(T0, T1, INTERVAL) * INTERVAL
        self.register_buffer("noise_levels", levels, persistent=False)

    def forward(self, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        return self.diffusion_model(x, self.noise_levels[steps])


def symmetric_betas(beta_max: float, n: int = INTERVAL) -> np.ndarray:
    betas = np.linspace(T0**0.5, (beta_max / n) ** 0.5, n, dtype=np.float64) ** 2
    half = betas[: n // 2]
    return np.concatenate([half, np.flip(half)])


def gaussian_product(s1: np.ndarray, s2: np.ndarray):
    """I2SB's ``compute_gaussian_product_coef``: the coefficients of x0 and x1 and the variance."""
    denominator = s1**2 + s2**2
    return s2**2 / denominator, s1**2 / denominator, s1**2 * s2**2 / denominator


def space_indices(num_steps: int, count: int) -> list[int]:
    """I2SB's ``space_indices``: ``count`` indices from 0 to ``num_steps - 1``, the stride added up
    and each rounded as Python rounds."""
    stride = 1 if count <= 1 else (num_steps - 1) / (count - 1)
    found, current = [], 0.0
    for _ in range(count):
        found.append(round(current))
        current += stride
    return found


class Bridge(nn.Module):
    """The bridge's network and schedule, in cfbench's [0, 1] image convention at its edges."""

    numerics = Numerics()  # ``--dtype`` / ``--compile`` (the task sets its own)

    def __init__(self, config: BridgeConfig, source: str = ""):
        super().__init__()
        self.config = config
        self.source = source
        self.net = I2SBNetwork(config.unet)
        betas = symmetric_betas(config.beta_max)
        self.std_fwd = np.sqrt(np.cumsum(betas))
        self.std_bwd = np.sqrt(np.flip(np.cumsum(np.flip(betas))))
        self.mu_x0, self.mu_x1, variance = gaussian_product(self.std_fwd, self.std_bwd)
        self.std_sb = np.sqrt(variance)

    @staticmethod
    def step_indices(num_steps: int, count: int) -> list[int]:
        """I2SB's ``space_indices``, for methods, which reach components only through the object."""
        return space_indices(num_steps, count)

    def _at(self, table: np.ndarray, step, like: torch.Tensor) -> torch.Tensor:
        """``table[step]`` in float32 for one step (an int) or one step per sample (a tensor)."""
        if isinstance(step, torch.Tensor):
            values = torch.tensor(table, dtype=torch.float32, device=like.device)
            return values[step.to(like.device)].view(-1, *([1] * (like.dim() - 1)))
        return torch.tensor(float(table[step]), dtype=torch.float32, device=like.device)

    def q_sample(self, step, x0: torch.Tensor, x1: torch.Tensor, noise=None) -> torch.Tensor:
        """The bridge's marginal at ``step`` (an int, or one per sample) between x0 and x1 (model
        scale); ``noise`` is added unless ``ot_ode``."""
        x_t = self._at(self.mu_x0, step, x0) * x0 + self._at(self.mu_x1, step, x0) * x1
        if not self.config.ot_ode:
            x_t = x_t + self._at(self.std_sb, step, x0) * noise
        return x_t

    def predict_x0(self, x_t: torch.Tensor, step: int) -> torch.Tensor:
        """I2SB's ``compute_pred_x0``: x_t - std_fwd[step] * network(x_t, step) (no clipping, as
        ``--clip-denoise`` is off by default)."""
        steps = torch.full((len(x_t),), step, device=x_t.device, dtype=torch.long)
        with self.numerics.precision(x_t.device):
            out = self.numerics.network(self.net)(x_t, steps).to(x_t.dtype)
        return x_t - self._at(self.std_fwd, step, x_t) * out

    def posterior(
        self, previous: int, step: int, x_t: torch.Tensor, x0: torch.Tensor, noise=None
    ) -> torch.Tensor:
        """I2SB's ``p_posterior``: x_previous from x_step and the x0 estimate (noise only without
        ``ot_ode`` and before step 0)."""
        var_prev = float(self.std_fwd[previous]) ** 2
        var_now = float(self.std_fwd[step]) ** 2
        mu_x0, mu_xt = 1 - var_prev / var_now, var_prev / var_now
        x_prev = mu_x0 * x0 + mu_xt * x_t
        if not self.config.ot_ode and previous > 0:
            x_prev = x_prev + (var_prev * (var_now - var_prev) / var_now) ** 0.5 * noise
        return x_prev

    def inpaint(self, x_start, region, steps: list[int], guide=None, noise=None) -> torch.Tensor:
        """I2SB's sampler from ``x_start`` (at ``steps[-1]``) down ``steps`` to step 0, x_start's
        pixels put back outside ``region`` after every step. ``guide(x_t, step)`` may move x_t and
        return (moved x_t, x0 estimate) in place of the plain estimate; ``noise()`` draws the
        posterior's noise when the bridge is not an OT-ODE."""
        x_t = x_start
        for previous, step in zip(steps[-2::-1], steps[:0:-1]):
            if guide is None:
                x0 = self.predict_x0(x_t, step)
            else:
                x_t, x0 = guide(x_t, step)
            fresh = None if self.config.ot_ode or previous == 0 else noise()
            x_t = self.posterior(previous, step, x_t, x0, fresh)
            x_t = (1 - region) * x_start + region * x_t
        return x_t

    def training_label(self, x_t: torch.Tensor, x0: torch.Tensor, step: torch.Tensor):
        """I2SB's ``compute_label``: (x_t - x0) / std_fwd[step], per sample."""
        std = torch.tensor(self.std_fwd, dtype=torch.float32, device=x_t.device)[step]
        return (x_t - x0) / std.view(-1, 1, 1, 1)

    def save(self, folder: Path, step: int = 0, decay: float = 0.99) -> None:
        """I2SB's checkpoint layout: ``net`` and a torch_ema ``ema`` whose shadow parameters are
        the averaged weights (shipped bridges hold only those: ``net`` is the average too), plus
        this bridge's configuration."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        params = [p.detach().clone() for p in self.net.parameters()]
        ema = {"decay": decay, "num_updates": step, "shadow_params": params}
        ema["collected_params"] = None
        torch.save({"net": self.net.state_dict(), "ema": ema}, folder / CHECKPOINT)
        (folder / CONFIG).write_text(json.dumps(self.config.flags(), indent=2) + "\n")


def _config(checkpoint: Path) -> tuple[BridgeConfig, str]:
    """The bridge's configuration: ``config.json`` beside the file, else I2SB's ``options.pkl``
    (read without running code from it), else I2SB's released defaults for inpainting."""
    beside = checkpoint.parent / CONFIG
    if beside.is_file():
        try:
            text = json.loads(beside.read_text())
            unet = ADMConfig.from_flags(text.get("unet", {})) if "unet" in text else I2SB_UNET
            return (
                BridgeConfig(unet, float(text.get("beta_max", 1.0)), bool(text.get("ot_ode", 1))),
                f"configuration {beside}",
            )
        except (ValueError, TypeError, AttributeError) as err:
            raise UserError(f"{beside} is not an I2SB bridge configuration: {err}.") from None
    options = checkpoint.parent / "options.pkl"
    if options.is_file():
        found = _options(options)
        return BridgeConfig(
            I2SB_UNET, float(found.get("beta_max", 1.0)), bool(found.get("ot_ode", True))
        ), f"I2SB options {options}"
    return BridgeConfig(), "I2SB's inpainting defaults (beta_max 1.0, ot_ode)"


def _options(path: Path) -> dict:
    """The training options I2SB pickles (an argparse Namespace), as a dict, without running code
    from the file."""
    import pickle

    class _Namespace:
        def __init__(self, *args, **kwargs):
            pass

        def __setstate__(self, state):
            self.__dict__.update(state if isinstance(state, dict) else {})

    class _Reader(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("argparse", "Namespace"):
                return _Namespace
            if module == "builtins" and name in ("set", "frozenset", "tuple", "list", "dict"):
                return super().find_class(module, name)
            return type(name, (_Namespace,), {})

    try:
        with open(path, "rb") as fh:
            found = _Reader(fh).load()
    except Exception as err:  # any unreadable file: name it
        raise UserError(f"{path} cannot be read as I2SB's options ({err}).") from None
    return vars(found) if hasattr(found, "__dict__") else {}


def load_bridge(where: Path) -> Bridge:
    """I2SB's ``latest.pt`` as a ``Bridge``, sampled with its EMA weights as I2SB samples."""
    checkpoint = where / CHECKPOINT if where.is_dir() else where
    if not checkpoint.is_file():
        raise UserError(f"No I2SB checkpoint at {checkpoint}: expected I2SB's {CHECKPOINT}.")
    config, named = _config(checkpoint)
    stored = read_torch_file(checkpoint, "I2SB's latest.pt")
    if not isinstance(stored, dict) or not isinstance(stored.get("net"), dict):
        raise UserError(
            f"{checkpoint} is not an I2SB checkpoint: it should hold 'net' (the network's state "
            "dict) and 'ema' (torch_ema's state), as I2SB's latest.pt."
        )
    bridge = Bridge(config, f"{checkpoint} ({named})")
    state = stored["net"]
    if problem := state_mismatch(bridge.net, state):
        raise UserError(
            f"The I2SB checkpoint {checkpoint} does not fit its UNet flags ({named}): {problem}. "
            f"Give the UNet's flags in a {CONFIG} beside it (I2SB's own are ADM-256's without "
            "learned sigma)."
        )
    bridge.net.load_state_dict(state)
    shadow = (stored.get("ema") or {}).get("shadow_params")
    if shadow is not None:
        params = list(bridge.net.parameters())
        if len(shadow) != len(params) or any(s.shape != p.shape for s, p in zip(shadow, params)):
            raise UserError(
                f"The EMA of {checkpoint} does not follow its network's parameters "
                f"({len(shadow)} shadow parameters for {len(params)})."
            )
        with torch.no_grad():
            for p, s in zip(params, shadow):
                p.copy_(s)
    return bridge


class RCSBBridge(Component):
    kind = "rcsb_bridge"
    what = "an I2SB inpainting bridge (RCSB fills its region with it)"
    how = (
        "I2SB's released latest.pt (e.g. results/inpaint-freeform2030/latest.pt) with its "
        f"options.pkl or a {CONFIG} beside it, or a folder holding them"
    )
    assets = {
        "animal_bridge": {"world": "animals"},
        "face_bridge": {"world": "faces"},
    }
    asset_suffix = ""
    channels_last = True
    generative = True

    @classmethod
    def load(cls, where, needs, shipped):
        return load_bridge(Path(where))

    @classmethod
    def train(cls, out, needs, world, **options):
        from cfbench.components.i2sb_training import train_synthetic

        out = Path(out)
        bridge, stats = train_synthetic(
            world, **options, checkpoint=out.with_name(out.name + ".training.pt")
        )
        bridge.save(out, step=stats["steps"], decay=stats["ema_decay"])
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                "project-trained I2SB inpainting bridge (ADM UNet, I2SB's schedule and sampler, "
                "tasks/assets)"
            )
        return f"I2SB bridge {where}"
