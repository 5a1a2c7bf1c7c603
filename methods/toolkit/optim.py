"""Adam with per-sample state, for batched optimisation with per-sample early stopping.

``torch.optim.Adam`` keeps one step count for the whole tensor and keeps moving rows whose
gradient is zero (momentum), so a finished sample would drift and its result would depend on
its batch. Here each sample has its own step count and only the rows being updated change.
"""

from __future__ import annotations

import torch


class PerSampleAdam:
    def __init__(self, like: torch.Tensor, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.m = torch.zeros_like(like)
        self.v = torch.zeros_like(like)
        self.t = torch.zeros(like.shape[0], device=like.device)

    def step(self, param: torch.Tensor, grad: torch.Tensor, rows: torch.Tensor) -> None:
        """Update ``param[rows]`` in place with ``grad`` (the gradient of those rows only)."""
        t = self.t[rows] + 1
        self.t[rows] = t
        m = self.b1 * self.m[rows] + (1 - self.b1) * grad
        v = self.b2 * self.v[rows] + (1 - self.b2) * grad * grad
        self.m[rows], self.v[rows] = m, v
        shape = (-1,) + (1,) * (grad.dim() - 1)
        m_hat = m / (1 - self.b1**t).view(shape)
        v_hat = v / (1 - self.b2**t).view(shape)
        param[rows] = param[rows] - self.lr * m_hat / (v_hat.sqrt() + self.eps)
