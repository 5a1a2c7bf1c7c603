"""GCD's proxy (Alg. 1-2 of the paper): proxy data around a source image, and the MLP
z_sem -> (f, s) fitted to them, whose gradient and Hessian give the directions.

Proxy data: N perturbations delta of the source image's z_sem, rendered with its own x_T; the
targets are the classifier's score f and a distance s to the image (``GCD.score``,
``GCD.distance``). ``perturbation="ball"`` draws delta uniformly in the n-ball of radius r (the
paper), ``"uniform_norm"`` a uniform direction with a norm uniform in [0, r] (the released code).
The MLP has hidden widths 256-128-64 with sigmoids between them, AdamW, batch 128, one batch in
eight held out, early stopping when the validation loss rises above the mean of its last five
values (from epoch ``early_stop_from``); its loss weighs s by ``proxy_weight`` (paper 1, released
configs 3). The released proxy squashes s with a sigmoid (``distance_head``).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from cfbench.methods.gcd.params import CODE_G_WEIGHTS

# proxy data are rendered this many at a time: on CPU a UNet call costs less per image at 16 than
# at 64 (the activations stay in cache; benchmarks/method_cost.py)
RENDER_CHUNK = 16


class Proxy(nn.Module):
    """The paper's MLP z_sem -> (f, s): three sigmoid hidden layers; ``sigmoid_distance`` squashes
    s into [0, 1] as the released proxy does (LPIPS lies there)."""

    def __init__(self, z_dim: int, widths=(256, 128, 64), sigmoid_distance: bool = False):
        super().__init__()
        layers, cin = [], z_dim
        for w in widths:
            layers += [nn.Linear(cin, w), nn.Sigmoid()]
            cin = w
        self.net = nn.Sequential(*layers, nn.Linear(cin, 2))
        self.sigmoid_distance = sigmoid_distance

    def forward(self, z):
        out = self.net(z)
        if self.sigmoid_distance:
            return torch.cat([out[:, :1], torch.sigmoid(out[:, 1:])], 1)
        return out


def fit_proxy(
    z: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    lr: float,
    max_epochs: int,
    gen: torch.Generator,
    stop_from: int = 6,
    sigmoid_distance: bool = False,
) -> tuple[Proxy, float, int]:
    """Train on all but one batch in eight; from epoch ``stop_from`` on, stop when the validation
    loss exceeds the mean of its last (up to) five values. Returns the proxy, its final validation
    loss and the epochs run."""
    batch = 128
    order = torch.randperm(len(z), generator=gen)
    held = order[: max(1, len(z) // 8)]
    train = order[len(held) :]
    # initial weights from ``gen`` too, so the run's seed fixes the fit
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        proxy = Proxy(z.shape[1], sigmoid_distance=sigmoid_distance)
    opt = torch.optim.AdamW(proxy.parameters(), lr=lr)

    def loss(idx):
        return (((proxy(z[idx]) - targets[idx]) ** 2) * weights).sum(1).mean()

    history: list[float] = []
    epochs = 0
    for _ in range(max_epochs):
        epochs += 1
        for chunk in train[torch.randperm(len(train), generator=gen)].split(batch):
            opt.zero_grad(set_to_none=True)
            loss(chunk).backward()
            opt.step()
        with torch.no_grad():
            val = float(loss(held))
        recent = history[-5:]
        if len(history) >= stop_from - 1 and recent and val > sum(recent) / len(recent):
            break
        history.append(val)
    return proxy.eval(), val, epochs


def proxy_around(
    method, sid: str, x, source: int, scale: float, seed: int, block: int = 0
) -> tuple[Proxy, dict]:
    """The proxy GCD ``method`` fits around the source image (Alg. 1-2): proxy data rendered from
    perturbed codes, then the MLP. A study's ``method.shared_fits`` may already hold the one
    fitted with the same inputs; the recorded cost stays the fit's own."""
    h = method.hparams
    key = (
        "gcd-proxy",
        method.task.name,
        tuple(sorted(method.task.components.items())),
        str(method.device),
        sid,
        source,
        seed,
        block,
        scale,
        *(
            getattr(h, k)
            for k in (
                "score",
                "lpips_net",
                "distance_head",
                "early_stop_from",
                "encode_steps",
                "search_steps",
                "n_proxy",
                "radius",
                "perturbation",
                "proxy_weight",
                "proxy_lr",
                "proxy_epochs",
            )
        ),
    )
    shared = method.shared_fits
    if shared is not None and key in shared:
        proxy, facts = shared[key]
        return proxy, dict(facts, proxy_reused=True)
    t0 = time.perf_counter()
    target = int(method.task.target_of(torch.tensor([source]))[0])
    gen = torch.Generator().manual_seed(seed * 1000 + source + 10**6 * block)
    z0, x_T = method.dae.encode(x, h.encode_steps)
    dim = z0.shape[1]
    u = torch.randn(h.n_proxy, dim, generator=gen)
    u = u / u.norm(dim=1, keepdim=True)
    radial = torch.rand(h.n_proxy, 1, generator=gen)
    radial = radial ** (1 / dim) if h.perturbation == "ball" else radial
    delta = (u * radial * h.radius).to(method.device)  # in units of ``scale``
    f, s = [], []
    for i, chunk in enumerate(delta.split(RENDER_CHUNK)):
        method.progress(
            f"proxy data {i * RENDER_CHUNK + len(chunk)}/{h.n_proxy}"
            + (f", block {block + 1}/{h.blocks}" if h.blocks > 1 else "")
        )
        imgs = method.dae.decode(
            z0 + chunk * scale, x_T.expand(len(chunk), -1, -1, -1), h.search_steps
        )
        logits = method.classifier(imgs)
        src = torch.full((len(chunk),), source, device=method.device)
        f.append(method.score(logits, src, torch.full_like(src, target)))
        s.append(method.distance(x.expand(len(chunk), -1, -1, -1), imgs))
    targets = torch.stack([torch.cat(f), torch.cat(s)], 1).cpu()
    method.progress("fitting the proxy")
    weights = torch.tensor([1.0, h.proxy_weight])
    with torch.enable_grad():
        proxy, val_loss, epochs = fit_proxy(
            delta.cpu(),
            targets,
            weights,
            h.proxy_lr,
            h.proxy_epochs,
            gen,
            stop_from=h.early_stop_from,
            sigmoid_distance=h.distance_head == "sigmoid",
        )
    facts = {
        "z_dim": dim,
        "n_proxy": h.n_proxy,
        "radius": h.radius,
        "perturbation": h.perturbation,
        "proxy_val_loss": round(val_loss, 6),
        "proxy_epochs": epochs,
        "f_range": [round(float(targets[:, 0].min()), 4), round(float(targets[:, 0].max()), 4)],
        "proxy_seconds": round(time.perf_counter() - t0, 2),
    }
    if shared is not None:
        shared[key] = (proxy, facts)
    return proxy, facts


def directions_of(proxy: Proxy, dim: int, h) -> list[tuple[torch.Tensor, dict]]:
    """The directions one proxy offers (Alg. 3), with their facts: the g-direction(s) (the
    gradient of f + lam * s at z_sem, or one per released weight pair) or the h-direction
    ``index`` (an eigenvector of the Hessian of f)."""
    origin = torch.zeros(1, dim, requires_grad=True)
    if h.direction == "g":
        weights = ((1.0, h.lam),) if h.g_weights == "paper" else CODE_G_WEIGHTS
        found = []
        for w_f, w_s in weights:
            with torch.enable_grad():
                out = proxy(origin)
                (grad,) = torch.autograd.grad(w_f * out[0, 0] + w_s * out[0, 1], origin)
            facts = {"kind": "g", "weights": [w_f, w_s]}
            found.append((-grad[0], dict(facts, gradient_norm=round(float(grad.norm()), 6))))
        return found
    hessian = torch.autograd.functional.hessian(
        lambda v: proxy(v.unsqueeze(0))[0, 0], origin[0].detach()
    )
    values, vectors = torch.linalg.eigh(hessian)
    order = values.abs().argsort(descending=True)
    values, vectors = values[order], vectors[:, order]
    # the code moves z - step * e, e = -v for a positive eigenvalue, else v: we add -e
    d = vectors[:, h.index] * (1 if values[h.index] > 0 else -1)
    eigenvalues = [round(float(v), 6) for v in values[:8]]
    return [(d, {"kind": "h", "index": h.index, "eigenvalues": eigenvalues})]
