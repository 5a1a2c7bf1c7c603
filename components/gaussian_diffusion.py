"""The Gaussian diffusion process of guided-diffusion (``gaussian_diffusion.py``, ``respace.py``),
shared by the ADM prior and DiffAE (which vendors the same code): beta schedules, timestep
respacing, the posterior, the learned-range variance and DDIM steps both ways.

Tables are computed in float64 from the betas of the kept timesteps, as the released code does
(respaced betas 1 - abar(t_i) / abar(t_{i-1}), so a respaced abar equals the original one at the
kept steps), and gathered per step as float32. A network is called with the *original* timestep
of a respaced index (``timestep_map``), unscaled (``rescale_timesteps`` is off in every released
model cfbench loads).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def named_betas(schedule: str, steps: int) -> np.ndarray:
    """guided-diffusion's ``get_named_beta_schedule``: ``linear`` scales 1e-4..0.02 by 1000/T."""
    if schedule == "linear":
        scale = 1000 / steps
        return np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)
    if schedule == "cosine":

        def abar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        return np.array(
            [min(1 - abar((i + 1) / steps) / abar(i / steps), 0.999) for i in range(steps)]
        )
    raise ValueError(f"unknown beta schedule {schedule!r} (linear or cosine)")


def space_timesteps(num_timesteps: int, spec: str | int) -> list[int]:
    """guided-diffusion's ``space_timesteps``: ``"ddimN"`` takes the smallest integer stride giving
    N steps (``range(0, T, stride)``); otherwise comma-separated counts per equal section, each
    spread over its section and rounded as Python rounds (half to even)."""
    spec = str(spec)
    if spec.startswith("ddim"):
        wanted = int(spec[len("ddim") :])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == wanted:
                return list(range(0, num_timesteps, stride))
        raise ValueError(f"cannot create exactly {wanted} steps with an integer stride")
    counts = [int(c) for c in spec.split(",")]
    size, extra = divmod(num_timesteps, len(counts))
    kept, start = [], 0
    for k, count in enumerate(counts):
        section = size + (k < extra)
        if section < count:
            raise ValueError(f"cannot divide a section of {section} steps into {count}")
        stride = 1 if count <= 1 else (section - 1) / (count - 1)
        current = 0.0
        for _ in range(count):
            kept.append(start + round(current))
            current += stride
        start += section
    return sorted(set(kept))


class GaussianDiffusion:
    """The process over the kept timesteps of ``betas`` (all of them by default)."""

    def __init__(self, betas: np.ndarray, kept: list[int] | None = None):
        full = np.cumprod(1.0 - np.asarray(betas, dtype=np.float64))
        self.timestep_map = list(range(len(betas))) if kept is None else sorted(kept)
        self.original_steps = len(betas)
        abar = full[self.timestep_map]
        prev = np.append(1.0, abar[:-1])
        beta = 1.0 - abar / prev
        self.betas = beta
        self.abar, self.abar_prev = abar, prev
        self.abar_next = np.append(abar[1:], 0.0)
        variance = beta * (1.0 - prev) / (1.0 - abar)
        self.posterior_variance = variance
        # log of the posterior variance with its first entry replaced by the second (no log 0)
        self.posterior_log_variance = np.log(np.append(variance[1], variance[1:]))
        self.coef_x0 = beta * np.sqrt(prev) / (1.0 - abar)
        self.coef_xt = (1.0 - prev) * np.sqrt(1.0 - beta) / (1.0 - abar)

    @property
    def num_timesteps(self) -> int:
        return len(self.timestep_map)

    def respaced(self, spec: str | int) -> GaussianDiffusion:
        """The same process over ``space_timesteps(T, spec)`` of its original steps."""
        return GaussianDiffusion(self._original_betas(), space_timesteps(self.original_steps, spec))

    def _original_betas(self) -> np.ndarray:
        if self.timestep_map != list(range(self.original_steps)):
            raise ValueError("respace the original process, not a respaced one")
        return self.betas

    def model_timesteps(self, i: int, batch: int, device) -> torch.Tensor:
        """The original timestep of respaced index ``i``, as the network is called with it."""
        return torch.full((batch,), self.timestep_map[i], device=device, dtype=torch.long)

    @staticmethod
    def _at(table: np.ndarray, i: int, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(table[i], dtype=torch.float32, device=like.device)

    def q_sample(self, x0: torch.Tensor, i: int, noise: torch.Tensor) -> torch.Tensor:
        a = self._at(self.abar, i, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: torch.Tensor, i: int, eps: torch.Tensor, clip: bool) -> torch.Tensor:
        x0 = (
            self._at(np.sqrt(1.0 / self.abar), i, x_t) * x_t
            - self._at(np.sqrt(1.0 / self.abar - 1), i, x_t) * eps
        )
        return x0.clamp(-1, 1) if clip else x0

    def eps_from_x0(self, x_t: torch.Tensor, i: int, x0: torch.Tensor) -> torch.Tensor:
        return (self._at(np.sqrt(1.0 / self.abar), i, x_t) * x_t - x0) / self._at(
            np.sqrt(1.0 / self.abar - 1), i, x_t
        )

    def posterior(
        self, x_t: torch.Tensor, i: int, x0: torch.Tensor, variance_values: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log variance) of p(x_{i-1} | x_i) from the x0 estimate; with a learned range
        (``variance_values`` in [-1, 1]) the log variance interpolates between the posterior's
        and log beta, else it is the fixed large one (beta, posterior at the first step)."""
        mean = self._at(self.coef_x0, i, x_t) * x0 + self._at(self.coef_xt, i, x_t) * x_t
        if variance_values is not None:
            low = self._at(self.posterior_log_variance, i, x_t)
            high = self._at(np.log(self.betas), i, x_t)
            frac = (variance_values + 1) / 2
            return mean, frac * high + (1 - frac) * low
        large = np.log(np.append(self.posterior_variance[1], self.betas[1:]))
        return mean, torch.full_like(x_t, float(large[i]))

    def ddim_step(self, x_t: torch.Tensor, i: int, x0: torch.Tensor) -> torch.Tensor:
        """x_{i-1} by DDIM with eta 0 (``ddim_sample``), the noise re-derived from ``x0``."""
        eps = self.eps_from_x0(x_t, i, x0)
        prev = self._at(self.abar_prev, i, x_t)
        return x0 * prev.sqrt() + (1 - prev).sqrt() * eps

    def ddim_reverse_step(self, x_t: torch.Tensor, i: int, x0: torch.Tensor) -> torch.Tensor:
        """x_{i+1} by deterministic DDIM inversion (``ddim_reverse_sample``)."""
        eps = self.eps_from_x0(x_t, i, x0)
        following = self._at(self.abar_next, i, x_t)
        return x0 * following.sqrt() + (1 - following).sqrt() * eps
