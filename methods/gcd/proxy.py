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
    """The paper's MLP z_sem -> (f, s): three sigmoid hidden layers; ``outputs`` > 2 predicts every
    class logit and s instead (the released proxy), f then read from the logits by ``read_f``;
    ``sigmoid_distance`` squashes s into [0, 1] as the released proxy does (LPIPS lies there)."""

    def __init__(
        self, z_dim: int, widths=(256, 128, 64), sigmoid_distance: bool = False, outputs: int = 2
    ):
        super().__init__()
        layers, cin = [], z_dim
        for w in widths:
            layers += [nn.Linear(cin, w), nn.Sigmoid()]
            cin = w
        self.net = nn.Sequential(*layers, nn.Linear(cin, outputs))
        self.sigmoid_distance = sigmoid_distance
        self.read_f = lambda out: out[:, 0]  # the logits variant sets GCD's score of the logits

    def forward(self, z):
        out = self.net(z)
        if self.sigmoid_distance:
            return torch.cat([out[:, :-1], torch.sigmoid(out[:, -1:])], 1)
        return out

    def f_and_s(self, z) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(z)
        return self.read_f(out[:, :-1]), out[:, -1]


def split_held_out(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(held-out, training) indices of n proxy samples: one batch in eight held out."""
    order = torch.randperm(n, generator=gen)
    held = order[: max(1, n // 8)]
    return held, order[len(held) :]


def fit_proxy(
    z: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    lr: float,
    max_epochs: int,
    gen: torch.Generator,
    stop_from: int = 6,
    sigmoid_distance: bool = False,
    split: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[Proxy, float, int]:
    """Train a fresh MLP on the training share (``split``: held-out and training indices; default
    one batch in eight held out at random); from epoch ``stop_from`` on, stop when the validation
    loss exceeds the mean of its last (up to) five values. The loss weighs each output's squared
    error by ``weights``. Returns the proxy, its final validation loss and the epochs run."""
    batch = 128
    held, train = split if split is not None else split_held_out(len(z), gen)
    # initial weights from ``gen`` too, so the run's seed fixes the fit
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        proxy = Proxy(z.shape[1], sigmoid_distance=sigmoid_distance, outputs=targets.shape[1])
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


def proxy_data(method, x, source: int, scale: float, gen: torch.Generator, block: int):
    """One block of proxy data around the source image: ``n_proxy`` perturbations of its z_sem
    (in units of ``scale``) rendered with its x_T, and their targets: (f, s), or every class logit
    and s (``proxy_outputs="logits"``)."""
    h = method.hparams
    target = int(method.task.target_of(torch.tensor([source]))[0])
    z0, x_T = method.dae.encode(x, h.encode_steps)
    dim = z0.shape[1]
    u = torch.randn(h.n_proxy, dim, generator=gen)
    u = u / u.norm(dim=1, keepdim=True)
    radial = torch.rand(h.n_proxy, 1, generator=gen)
    radial = radial ** (1 / dim) if h.perturbation == "ball" else radial
    delta = (u * radial * h.radius).to(method.device)
    rows = []
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
        s = method.distance(x.expand(len(chunk), -1, -1, -1), imgs)
        if h.proxy_outputs == "logits":
            rows.append(torch.cat([logits, s[:, None]], 1))
        else:
            f = method.score(logits, src, torch.full_like(src, target))
            rows.append(torch.stack([f, s], 1))
    return delta.cpu(), torch.cat(rows).cpu()


def proxy_around(
    method, sid: str, x, source: int, scale: float, seed: int, block: int = 0
) -> tuple[Proxy, dict]:
    """The proxy GCD ``method`` fits around the source image (Alg. 1-2) at ``block``: a fresh MLP
    on this block's proxy data, or on those of blocks 0..block (``proxy_data="accumulate"``,
    earlier blocks' data kept on the method). A study's ``method.shared_fits`` may already hold
    the one fitted with the same inputs; the recorded cost stays the fit's own."""
    h = method.hparams
    settings = (
        method.task.name,
        tuple(sorted(method.task.components.items())),
        str(method.device),
        sid,
        source,
        seed,
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
                "proxy_data",
                "proxy_outputs",
            )
        ),
    )
    key = ("gcd-proxy", *settings, block)
    shared = method.shared_fits
    if shared is not None and key in shared:
        proxy, facts = shared[key]
        return proxy, dict(facts, proxy_reused=True)
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed * 1000 + source + 10**6 * block)
    blocks = method.__dict__.setdefault("proxy_blocks", {}).setdefault(settings, {})
    delta, targets = proxy_data(method, x, source, scale, gen, block)
    held, train = split_held_out(len(delta), gen)
    blocks[block] = (delta, targets, held, train)
    used = range(block + 1) if h.proxy_data == "accumulate" else [block]
    if any(b not in blocks for b in used):
        raise RuntimeError("GCD's proxy blocks are fitted in order, each after the ones before it")
    z, t, held_all, train_all, offset = [], [], [], [], 0
    for b in used:
        d, tb, hb, rb = blocks[b]
        z.append(d)
        t.append(tb)
        held_all.append(hb + offset)
        train_all.append(rb + offset)
        offset += len(d)
    z, t = torch.cat(z), torch.cat(t)
    split = (torch.cat(held_all), torch.cat(train_all))
    outputs = t.shape[1] - 1
    weights = torch.tensor([1.0 / outputs] * outputs + [h.proxy_weight])
    method.progress("fitting the proxy")
    with torch.enable_grad():
        proxy, val_loss, epochs = fit_proxy(
            z,
            t,
            weights,
            h.proxy_lr,
            h.proxy_epochs,
            gen,
            stop_from=h.early_stop_from,
            sigmoid_distance=h.distance_head == "sigmoid",
            split=split,
        )
    if h.proxy_outputs == "logits":
        target = int(method.task.target_of(torch.tensor([source]))[0])

        def read_f(logits):
            src = torch.full((len(logits),), source)
            return method.score(logits, src, torch.full_like(src, target))

        proxy.read_f = read_f
    f = proxy.read_f(t[:, :-1])
    facts = {
        "z_dim": delta.shape[1],
        "n_proxy": h.n_proxy,
        "proxy_samples": len(z),
        "radius": h.radius,
        "perturbation": h.perturbation,
        "proxy_val_loss": round(val_loss, 6),
        "proxy_epochs": epochs,
        "f_range": [round(float(f.min()), 4), round(float(f.max()), 4)],
        "proxy_seconds": round(time.perf_counter() - t0, 2),
    }
    if shared is not None:
        shared[key] = (proxy, facts)
    return proxy, facts


def directions_of(proxy: Proxy, dim: int, h) -> list[tuple[torch.Tensor, dict]]:
    """The directions one proxy offers (Alg. 3), with their facts: the g-direction(s) (the
    gradient of f + lam * s at z_sem, or one per released weight pair) or the h-direction
    ``index``: an eigenvector of the Hessian of f + lam * s (Eq. 4) or of f alone (the code), by
    decreasing |eigenvalue|. The Hessian is symmetric, so ``eigh`` gives the code's ``eig``
    eigenvectors up to their sign, which neither fixes."""
    origin = torch.zeros(1, dim, requires_grad=True)
    if h.direction == "g":
        weights = ((1.0, h.lam),) if h.g_weights == "paper" else CODE_G_WEIGHTS
        found = []
        for w_f, w_s in weights:
            with torch.enable_grad():
                f, s = proxy.f_and_s(origin)
                (grad,) = torch.autograd.grad(w_f * f[0] + w_s * s[0], origin)
            facts = {"kind": "g", "weights": [w_f, w_s]}
            found.append((-grad[0], dict(facts, gradient_norm=round(float(grad.norm()), 6))))
        return found
    lam = h.lam if h.hessian_of == "f_and_s" else 0.0

    def objective(v):
        f, s = proxy.f_and_s(v.unsqueeze(0))
        return f[0] + lam * s[0]

    hessian = torch.autograd.functional.hessian(objective, origin[0].detach())
    values, vectors = torch.linalg.eigh(hessian)
    order = values.abs().argsort(descending=True)
    values, vectors = values[order], vectors[:, order]
    # the code moves z - step * e, e = -v for a positive eigenvalue, else v: we add -e
    d = vectors[:, h.index] * (1 if values[h.index] > 0 else -1)
    eigenvalues = [round(float(v), 6) for v in values[:8]]
    facts = {"kind": "h", "index": h.index, "eigenvalues": eigenvalues, "weights": [1.0, lam]}
    return [(d, facts)]
