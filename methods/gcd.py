"""GCD: Global Counterfactual Directions (Sobieski & Biecek, ECCV 2024), black-box and global.

One direction in the semantic space of a diffusion autoencoder (``components/diffae.py``) is
fitted from a single image and applied to the whole dataset (the abstract: "g-directions allow
for flipping the decision of a given classifier on an entire dataset of images ... with the use
of only single image"): fitted from a sample of the pair's first class and negated for the other
(``share_direction``, as the released ``direction_transfer.py`` negates it for images predicted
as the other class); ``share_direction=false`` fits one per class.

1. Proxy data (Alg. 1): N perturbations delta of the source image's z_sem, rendered with its own
   x_T; targets are the classifier's score f and a distance s to the image. f (``score``) is a
   score whose sign gives the class: ``margin`` = logit_source - logit_target (the paper), or
   ``logit`` = the logit of the positive class (the pair's second; the attribute of a binary
   task), negated when the source is the negative class (the released
   ``counterfactual_loss_from_general_components.py``); ``pair_prob`` (p(source) among the
   pair's two classes) and ``prob`` (among all classes) are options that saturate.
   ``perturbation="ball"`` draws delta uniformly in the n-ball of radius r (the paper),
   ``"uniform_norm"`` a uniform direction with a norm uniform in [0, r] (the released code).
2. Proxy (Alg. 2): an MLP z -> (f, s) (hidden widths 256-128-64, sigmoid between hidden layers,
   AdamW, batch 128, one batch in eight held out, early stopping when the validation loss rises
   above the mean of its last five values, from epoch ``early_stop_from``); its loss weighs s by
   ``proxy_weight`` (paper 1, released configs 3). The released proxy squashes s with a sigmoid
   (``distance_head``) and is refitted ``blocks`` times (its ``n_iters``), each time on fresh
   samples.
3. Directions (Alg. 3): g is the gradient of f + lam * s of the proxy at z_sem, unit norm, and
   the edit moves along -g (``g_weights="code"``: one candidate per released (w_cls, w_lpips) pair
   instead); h-directions are eigenvectors of the Hessian of f alone, ordered by |eigenvalue|,
   with the released code's sign (the code steps along -e with e = -v for a positive eigenvalue,
   else v) and one-sided like the code's step sizes (``h_signs="both"`` tries both). With more
   than one candidate (blocks, weight pairs) the one whose line search from the source image
   reaches the lowest search loss is kept (the code saves them all for its user to choose).
4. Line search per image over k alphas evenly spaced in [0, alpha_max] (``search_rule``):
   ``paper`` takes the alpha with the lowest L_CF = f + lam * s over all of them (Eq. 5, Alg. 3);
   ``code`` the lowest line-search loss of the released strategy, f alone (``weight_lpips: 0``);
   ``flipped`` (cfbench's earlier rule) the lowest L_CF among renders classified as the target,
   else the lowest f. The chosen alpha is rendered again at ``decode_steps``.
5. Mask: BB-LIG (Alg. 4, Eq. 6; released ``bblig/src/experiment/sig.py``): the baseline is the
   first line-search alpha with p(source) < ``lig_threshold`` (an all-zero map when there is
   none); a fresh path of ``lig_path`` 8-bit renders from alpha 0 to it; the gradient of f per
   pixel, as finite differences between consecutive renders (zero where a pixel did not change;
   the paper, black-box) or exactly (``lig_gradient="exact"``, the code's default); averaged,
   times (x_0 - x_baseline), summed over channels; its absolute value divided by the level of
   its top 2 % of mass and clamped at 1 (the code's normalisation). ``mask_nfe`` counts the
   path's classifier calls apart from ``nfe``.

Units (``units``): ``raw`` (the paper and code: ``max_norm: 1``, step sizes up to 3) takes r and
alpha in z_sem's own units; ``scaled`` multiplies them by the median distance between the z_sem
codes of the task's first 64 samples, so one setting transfers between encoders (the synthetic
tasks' CPU setting). The classifier is only ever called forward (``BlackBox``); ``nfe`` counts a
sample's own calls, the fit's calls are recorded in run.json and amortised over the samples of
the direction's class when the run is summarised.

s is LPIPS (AlexNet) when torchvision's AlexNet weights are present; otherwise the root-mean-square
pixel distance stands in (named in run.json): neither the SimSiam of S3/FID (that would optimise
the evaluation's feature extractor) nor the classifier (GCD is black-box).

Settings: the defaults are the paper's (encode 100 / decode 250 DDIM steps, N = 8192, k = 128,
alpha_max 3); ``gcd_code`` (its line in ``cfbench/catalog.py``) has the released configs (encode
250 / decode 100, 52 blocks of 1024 samples, norm uniform in [0, r], proxy_weight 3, VGG LPIPS,
the sigmoid s head, early stopping from epoch 2, up to 1024 epochs, the two weight pairs, the
signed logit, the code's line-search loss, exact BB-LIG gradients). Where it still differs from
the code: its proxy predicts every class logit and f is read from them (here the proxy predicts
f itself), its line search spends 128 renders over all candidates and six Hessian eigenvectors
(here k per candidate), and its choice among iterations is manual.

Where the diffusion autoencoder is a shipped synthetic stand-in, ``task_defaults`` applies
``CPU_PRESET`` (chosen by measurement) before any preset or ``--set``; run.json records the values.
``gcd_code`` sets its own sizes, which take hours per direction on a CPU: lower them with ``--set``
(``results/paper/gcd_study/README.md`` gives the CPU sizes).
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cfbench.api.method import CounterfactualMethod, HParams, hparam
from cfbench.results import write_json

_SHARED_PROXIES: dict[tuple, tuple[Proxy, dict]] | None = None  # see sharing_proxy_fits


@contextmanager
def sharing_proxy_fits():
    """Within this block a proxy is fitted once per source image and setting and then reused, so
    that a study's g- and h-directions of one source share a fit (outside it every fit is fresh)."""
    global _SHARED_PROXIES
    _SHARED_PROXIES = {}
    try:
        yield
    finally:
        _SHARED_PROXIES = None


CPU_PRESET = dict(
    encode_steps=10,
    decode_steps=10,
    search_steps=10,
    n_proxy=1024,
    k=16,
    lig_path=16,
    units="scaled",
)
BACKBONE_NAMES = {"alex": "AlexNet", "vgg": "VGG-16"}
# proxy data are rendered this many at a time: on CPU a UNet call costs less per image at 16 than
# at 64 (the activations stay in cache; benchmarks/method_cost.py)
RENDER_CHUNK = 16
# the released strategy's (w_cls, w_lpips) pairs (configs: line_search_weight_{cls,lpips}_list)
CODE_G_WEIGHTS = ((1.0, 0.0), (0.05, 1.0))


@dataclass(frozen=True)
class GCDParams(HParams):
    direction: str = hparam(
        "g",
        ("g", "h", "random"),
        "g: gradient of the proxy; h: a Hessian eigenvector; "
        "random: a random unit direction (a control)",
    )
    index: int = hparam(0, "nonnegative", "h-direction number, by decreasing |eigenvalue|")
    source_index: int = hparam(
        0, "nonnegative", "the direction is fitted from this sample of the source class"
    )
    lam: float = hparam(1.0, "nonnegative", "lambda of L_CF = f + lambda * s (App. F.2)")
    score: str = hparam(
        "margin",
        ("margin", "logit", "pair_prob", "prob"),
        "f: logit_source - logit_target (paper), the signed logit of the positive class (code), "
        "p(source) among the pair's two classes, or among all classes",
    )
    share_direction: bool = hparam(
        True, None, "fit one direction from the pair's first class and negate it for the other"
    )
    search_rule: str = hparam(
        "paper",
        ("paper", "code", "flipped"),
        "line search: argmin of f + lam * s (paper), of f alone (code), or the lowest L_CF among "
        "flipped renders (cfbench's earlier rule)",
    )
    units: str = hparam(
        "raw",
        ("raw", "scaled"),
        "r and alpha in z_sem units (paper, code) or in median code distances",
    )
    h_signs: str = hparam(
        "one", ("one", "both"), "h-directions: the code's side only, or both signs"
    )
    lig_threshold: float = hparam(
        0.01, "open_fraction", "BB-LIG baseline: first render with p(source) below"
    )
    proxy_lr: float = hparam(1e-3, "positive", "proxy AdamW learning rate")
    proxy_epochs: int = hparam(300, "count", "proxy: most epochs (early stopping ends it sooner)")
    encode_steps: int = hparam(100, "count", "DDIM steps x -> x_T")
    decode_steps: int = hparam(250, "count", "DDIM steps of the final render")
    search_steps: int = hparam(250, "count", "DDIM steps of proxy data and line-search renders")
    n_proxy: int = hparam(8192, "count", "N: proxy training samples")
    k: int = hparam(128, "count", "line search: number of alphas")
    alpha_max: float = hparam(
        3.0, "positive", "line search: largest alpha (units: median z_sem distance)"
    )
    radius: float = hparam(1.0, "positive", "r: perturbation radius (units: median z_sem distance)")
    perturbation: str = hparam(
        "ball", ("ball", "uniform_norm"), "ball (paper) or uniform_norm (released code)"
    )
    proxy_weight: float = hparam(
        1.0, "nonnegative", "lambda_p: weight of s in the proxy loss (paper 1, code 3)"
    )
    blocks: int = hparam(
        1,
        "count",
        "proxy fits, each on n_proxy fresh samples (code: n_iters 52 of 1024); the candidate "
        "whose line search from the source image reaches the lowest search loss is kept",
    )
    g_weights: str = hparam(
        "paper",
        ("paper", "code"),
        "g: the gradient of f + lam * s (paper), or one candidate per released (w_cls, w_lpips) "
        "pair, (1, 0) and (0.05, 1)",
    )
    lpips_net: str = hparam("alex", ("alex", "vgg"), "s: the LPIPS backbone (code: vgg)")
    distance_head: str = hparam(
        "linear", ("linear", "sigmoid"), "the proxy's s output: linear, or a sigmoid (code)"
    )
    early_stop_from: int = hparam(
        6,
        "count",
        "first epoch at which the proxy's early stopping can fire: 6, once five validation "
        "losses exist, or 2 (code: the mean of however many of the last five there are)",
    )
    lig_path: int = hparam(128, "count", "BB-LIG: renders on the path from alpha 0 to the baseline")
    lig_gradient: str = hparam(
        "finite",
        ("finite", "exact"),
        "BB-LIG: finite differences between 8-bit renders (paper, black-box) or the classifier's "
        "gradient (code's approx_grad: false)",
    )

    def check(self):
        if self.k < 2:
            raise ValueError(f"k must be at least 2 (got {self.k})")
        if self.lig_path < 2:
            raise ValueError(f"lig_path must be at least 2 (got {self.lig_path})")


class BlackBox:
    """The classifier as GCD may see it: forward only, no gradients, every image counted."""

    def __init__(self, classifier: nn.Module):
        self.classifier = classifier

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(images).detach()


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


class GCD(CounterfactualMethod):
    name = "gcd"
    Params = GCDParams
    # for studies, which reach GCD by its name
    sharing_proxy_fits = staticmethod(sharing_proxy_fits)

    def __init__(self, task, device, params=None, **hparams):
        super().__init__(task, device, params, **hparams)
        self.dae = task.component("diffae")
        self.classifier = BlackBox(task.classifier)
        # source class -> unit direction (the edit adds it)
        self.directions: dict[int, torch.Tensor] = {}
        self.fit_record: dict = {}
        self._distance = None

    @classmethod
    def task_defaults(cls, task):
        """The measured CPU setting where the diffusion autoencoder is a shipped synthetic
        stand-in."""
        location = task.components.get("diffae", "")
        return dict(CPU_PRESET) if location.startswith("asset:") else {}

    @classmethod
    def requires(cls, params):
        return ("classifier", "diffae")

    # -- scores --------------------------------------------------------------------------------
    def score(
        self, logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """f: the classifier's evidence for the source class (the search lowers it)."""
        rows = torch.arange(len(logits), device=logits.device)
        if self.hparams.score == "margin":
            return logits[rows, source] - logits[rows, target]
        if self.hparams.score == "logit":  # the positive class's logit, signed by the source
            positive = self.task.pair[1]
            return torch.where(source == positive, logits[:, positive], -logits[:, positive])
        return self.p_source(logits, source, target)

    def p_source(
        self, logits: torch.Tensor, source: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        """p(source) among all classes (``score="prob"``) or among the pair's two (otherwise):
        BB-LIG's integrand and baseline threshold."""
        rows = torch.arange(len(logits), device=logits.device)
        if self.hparams.score == "prob":
            return logits.softmax(1)[rows, source]
        return torch.sigmoid(logits[rows, source] - logits[rows, target])

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """s(x, y): LPIPS when its weights are present, else the RMS pixel distance (a stand-in)."""
        if self._distance is None:
            from cfbench.perceptual import lpips_network

            backbone = self.hparams.lpips_net
            net = lpips_network(backbone, self.device)
            if net is not None:
                self._distance = (
                    f"LPIPS ({BACKBONE_NAMES[backbone]})",
                    lambda a, b: net(a, b, normalize=True).flatten(),
                )
            else:
                self._distance = (
                    "RMS pixel distance (stand-in for LPIPS: no "
                    f"{BACKBONE_NAMES[backbone]} weights)",
                    lambda a, b: ((a - b) ** 2).flatten(1).mean(1).sqrt(),
                )
        with torch.no_grad():
            return self._distance[1](x, y)

    def provenance(self) -> dict:
        self.distance(
            torch.zeros(1, 3, 8, 8, device=self.device), torch.zeros(1, 3, 8, 8, device=self.device)
        )
        return {"s": self._distance[0], "fit": self.fit_record}

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, sample_ids: list[str], seed: int, store: Path | None) -> dict:
        """Fit one direction per source class (or one, shared) before any sample, or load them
        (``store`` None: keep them in memory only)."""
        if store is not None and (store / "fit.json").exists():
            from safetensors.torch import load_file

            self.fit_record = json.loads((store / "fit.json").read_text())
            self.directions = {
                int(c): d.to(self.device)
                for c, d in load_file(str(store / "directions.safetensors")).items()
            }
            return self.fit_record
        h = self.hparams
        if h.direction == "h" and h.index >= self.dae.z_dim:  # before minutes of proxy fitting
            from cfbench.errors import UserError

            raise UserError(
                f"GCD: h-direction index {h.index} is out of range (z_sem has {self.dae.z_dim} "
                f"dimensions, so the indices are 0-{self.dae.z_dim - 1})."
            )
        scale = self._code_scale() if h.units == "scaled" else 1.0
        explained = self.task.explained  # a one-direction task fits from its one class
        classes = list(explained[:1] if h.share_direction else explained)
        record = {"z_scale": scale, "directions": {}, "amortised": {}}
        for c in classes:
            t0 = time.perf_counter()
            sid, x = self._source_image(sample_ids, c)
            direction, facts, calls = self._fit_direction(sid, x, c, scale, seed)
            seconds = (
                time.perf_counter()
                - t0
                + (facts["proxy_seconds"] if facts.get("proxy_reused") else 0)
            )
            self.directions[c] = direction
            record["directions"][str(c)] = {
                "source_id": sid,
                **facts,
                "classifier_calls": calls,
                "seconds": round(seconds, 2),
            }
        if h.share_direction:
            (other,) = (c for c in self.task.pair if c != classes[0])
            self.directions[other] = -self.directions[classes[0]]
            record["directions"][str(other)] = {"shared_from": str(classes[0])}
        fitted = [record["directions"][str(c)] for c in classes]
        for c in explained:  # each fit's cost, spread over the samples it edits
            own = record["directions"][str(c)] if c in classes else fitted[0]
            share = 1 / len(explained) if h.share_direction else 1.0
            record["amortised"][str(c)] = {
                "nfe": own.get("classifier_calls", 0) * share,
                "seconds": own.get("seconds", 0.0) * share,
            }
        if store is not None:
            self._store(store, record)
        self.fit_record = record
        return record

    def _store(self, store: Path, record: dict) -> None:
        from safetensors.torch import save_file

        from cfbench.results import atomic_path

        store.mkdir(parents=True, exist_ok=True)
        with atomic_path(store / "directions.safetensors") as tmp:
            save_file({str(c): d.cpu().contiguous() for c, d in self.directions.items()}, str(tmp))
        write_json(store / "fit.json", record)  # last: its presence means the fit is complete

    def _code_scale(self) -> float:
        """Median pairwise distance between the z_sem codes of the task's first 64 samples."""
        x = self.task.load(self.task.sample_ids(64)).images.to(self.device)
        with torch.no_grad():
            z = self.dae.semantic(x)
        d = torch.cdist(z, z)
        return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())

    def _source_image(self, sample_ids: list[str], label: int) -> tuple[str, torch.Tensor]:
        from cfbench.errors import UserError

        seen = 0
        for start in range(0, len(sample_ids), 64):
            samples = self.task.load(sample_ids[start : start + 64])
            for i, lab in enumerate(samples.labels.tolist()):
                if lab == label:
                    if seen == self.hparams.source_index:
                        return samples.sample_ids[i], samples.images[i : i + 1].to(self.device)
                    seen += 1
        raise UserError(
            f"GCD: source_index {self.hparams.source_index} asks for sample "
            f"{self.hparams.source_index + 1} "
            f"of class '{self.task.class_names[label]}', but the run has {seen}; lower it or "
            "raise --n."
        )

    def _fit_direction(
        self, sid: str, x, source: int, scale: float, seed: int
    ) -> tuple[torch.Tensor, dict, int]:
        h = self.hparams
        if h.direction == "random":
            gen = torch.Generator().manual_seed(seed * 1000 + source)
            with torch.no_grad():
                d = torch.randn(self.dae.semantic(x).shape[1], generator=gen)
            return (d / d.norm()).to(self.device), {"kind": "random"}, 0
        candidates = []  # (unit direction, facts)
        for block in range(h.blocks):
            proxy, facts = self._proxy(sid, x, source, scale, seed, block)
            for d, own in self._candidates(proxy, facts["z_dim"]):
                candidates.append((d / d.norm(), {**facts, **own, "block": block}))
        calls = h.n_proxy * h.blocks
        if len(candidates) == 1:
            d, facts = candidates[0]
        else:
            losses = self._candidate_losses(x, source, [d for d, _ in candidates], scale)
            calls += h.k * len(candidates)
            best = min(range(len(candidates)), key=losses.__getitem__)
            d, facts = candidates[best]
            facts = dict(facts, candidate_losses=[round(v, 6) for v in losses])
        return d.to(self.device), facts, calls

    def _candidates(self, proxy, dim: int) -> list[tuple[torch.Tensor, dict]]:
        """The directions one proxy offers: the g-direction(s) or the h-direction ``index``."""
        h = self.hparams
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

    def _candidate_losses(self, x, source: int, directions, scale: float) -> list[float]:
        """The lowest search loss each candidate reaches along its line search from the source
        image. The released strategy renders these searches (``post_proxy_loop``) and leaves the
        choice of an iteration's direction to its user; cfbench takes the lowest."""
        src = torch.tensor([source], device=self.device)
        tgt = self.task.target_of(src.cpu()).to(self.device)
        z, x_T = self.dae.encode(x, self.hparams.encode_steps)
        losses = []
        for i, d in enumerate(directions):
            self.progress(f"choosing among {len(directions)} candidates: {i + 1}")
            steps = self._line(x, z, x_T, d.to(self.device).view(1, -1) * scale, src, tgt, 1.0)
            losses.append(min(float(step["key"][0]) for step in steps))
        return losses

    def _proxy(
        self, sid: str, x, source: int, scale: float, seed: int, block: int = 0
    ) -> tuple[Proxy, dict]:
        """The proxy fitted around the source image (Alg. 1-2), or the one already fitted with the
        same inputs inside ``sharing_proxy_fits``; the recorded cost stays the fit's own."""
        h = self.hparams
        key = (
            self.task.name,
            tuple(sorted(self.task.components.items())),
            str(self.device),
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
        if _SHARED_PROXIES is not None and key in _SHARED_PROXIES:
            proxy, facts = _SHARED_PROXIES[key]
            return proxy, dict(facts, proxy_reused=True)
        t0 = time.perf_counter()
        target = int(self.task.target_of(torch.tensor([source]))[0])
        gen = torch.Generator().manual_seed(seed * 1000 + source + 10**6 * block)
        z0, x_T = self.dae.encode(x, h.encode_steps)
        dim = z0.shape[1]
        u = torch.randn(h.n_proxy, dim, generator=gen)
        u = u / u.norm(dim=1, keepdim=True)
        radial = torch.rand(h.n_proxy, 1, generator=gen)
        radial = radial ** (1 / dim) if h.perturbation == "ball" else radial
        delta = (u * radial * h.radius).to(self.device)  # in units of ``scale``
        f, s = [], []
        for i, chunk in enumerate(delta.split(RENDER_CHUNK)):
            self.progress(
                f"proxy data {i * RENDER_CHUNK + len(chunk)}/{h.n_proxy}"
                + (f", block {block + 1}/{h.blocks}" if h.blocks > 1 else "")
            )
            imgs = self.dae.decode(
                z0 + chunk * scale, x_T.expand(len(chunk), -1, -1, -1), h.search_steps
            )
            logits = self.classifier(imgs)
            src = torch.full((len(chunk),), source, device=self.device)
            f.append(self.score(logits, src, torch.full_like(src, target)))
            s.append(self.distance(x.expand(len(chunk), -1, -1, -1), imgs))
        targets = torch.stack([torch.cat(f), torch.cat(s)], 1).cpu()
        self.progress("fitting the proxy")
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
        if _SHARED_PROXIES is not None:
            _SHARED_PROXIES[key] = (proxy, facts)
        return proxy, facts

    # -- per sample -----------------------------------------------------------------------------
    def _line(self, x, z, x_T, direction, source, target, sign: float):
        """The line search's renders along ``sign * direction``: per alpha, its value, the render,
        p(source), whether it flipped and the search key."""
        h = self.hparams
        alphas = torch.linspace(0, h.alpha_max, h.k).tolist()
        for a in alphas:
            img = self.dae.decode(z + sign * a * direction, x_T, h.search_steps)
            logits = self.classifier(img)
            flipped = logits.argmax(1) == target
            yield {
                "alpha": sign * a,
                "image": img,
                "p_source": self.p_source(logits, source, target),
                "flipped": flipped,
                "key": self.search_key(logits, source, target, x, img, flipped),
            }

    def search(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> dict:
        """The line search along each sample's class direction: the chosen signed alpha, whether it
        flipped at the search's step count, the BB-LIG baseline (the first alpha on the chosen
        side with p(source) < ``lig_threshold``; NaN when there is none), the codes and the
        classifier calls."""
        h = self.hparams
        scale = self.fit_record["z_scale"]
        z, x_T = self.dae.encode(x, h.encode_steps)
        direction = torch.stack([self.directions[int(c)] for c in source.tolist()]) * scale
        signs = (1.0, -1.0) if h.direction == "h" and h.h_signs == "both" else (1.0,)
        key = torch.full((len(x),), math.inf, device=x.device)  # lower is better
        chosen = torch.zeros(len(x), device=x.device)
        flipped_at = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        image = origin = None  # the chosen render; the render at alpha 0
        baselines = {}
        for sign in signs:
            baseline = torch.full((len(x),), math.nan, device=x.device)
            for i, step in enumerate(self._line(x, z, x_T, direction, source, target, sign)):
                self.progress(
                    f"line search {i + 1}/{h.k}" + (f", sign {sign:+.0f}" if len(signs) > 1 else "")
                )
                better = step["key"] < key
                key = torch.where(better, step["key"], key)
                chosen = torch.where(better, torch.full_like(chosen, step["alpha"]), chosen)
                flipped_at = torch.where(better, step["flipped"], flipped_at)
                if image is None:
                    image = origin = step["image"]
                image = torch.where(better.view(-1, 1, 1, 1), step["image"], image)
                first = (step["p_source"] < h.lig_threshold) & baseline.isnan()
                baseline = torch.where(first, torch.full_like(baseline, step["alpha"]), baseline)
            baselines[sign] = baseline
        baseline = torch.where(chosen < 0, baselines.get(-1.0, baselines[1.0]), baselines[1.0])
        return {
            "alpha": chosen,
            "flipped": flipped_at,
            "baseline": baseline,
            "z": z,
            "x_T": x_T,
            "direction": direction,
            "calls": h.k * len(signs),
            "image": image,  # rendered at search_steps
            "origin": origin,
        }

    def bb_lig(self, x, found: dict, source, target) -> torch.Tensor:
        """BB-LIG maps (B,1,H,W) as Alg. 4 and the released ``bblig/src/experiment/sig.py``: a
        fresh path of ``lig_path`` 8-bit renders from alpha 0 to the baseline; the integrand is f
        (the code integrates its logit), differentiated between consecutive renders or exactly;
        an all-zero map where the search found no baseline."""
        h = self.hparams
        has_baseline = ~found["baseline"].isnan()
        end = found["baseline"].nan_to_num(0.0).view(-1, 1)
        total = torch.zeros_like(x)
        first = previous = None
        for i, t in enumerate(torch.linspace(0, 1, h.lig_path).tolist()):
            self.progress(f"BB-LIG path {i + 1}/{h.lig_path}")
            if i == 0:  # alpha 0: the line search's first render
                img = found["origin"]
            else:
                img = self.dae.decode(
                    found["z"] + t * end * found["direction"], found["x_T"], h.search_steps
                )
            img = (img * 255).round() / 255  # the 8-bit images the classifier would see
            if h.lig_gradient == "exact":  # the code's default: not black-box
                with torch.enable_grad():
                    img.requires_grad_(True)
                    f = self.score(self.task.classifier(img), source, target)
                    (grad,) = torch.autograd.grad(f.sum(), img)
                total += grad
                img = img.detach()
            else:
                f = self.score(self.classifier(img), source, target)
                if previous is not None:
                    dx, df = img - previous[0], (f - previous[1]).view(-1, 1, 1, 1)
                    total += torch.where(dx != 0, df / dx.where(dx != 0, 1.0), 0.0)
                previous = (img, f)
            first = img if first is None else first
        steps = h.lig_path if h.lig_gradient == "exact" else h.lig_path - 1
        attribution = ((first - img) * total / steps).sum(1, keepdim=True).abs()
        return clip_top(attribution * has_baseline.view(-1, 1, 1, 1))

    def search_key(self, logits, source, target, x, img, flipped) -> torch.Tensor:
        """What the line search minimises over alpha (``search_rule``)."""
        h = self.hparams
        f = self.score(logits, source, target)
        if h.search_rule == "code":
            return f
        loss = f + h.lam * self.distance(x, img)
        if h.search_rule == "paper":
            return loss
        return torch.where(flipped, loss - 1e6, f)  # flips rank first, then the closest to one

    def explain(self, batch) -> torch.Tensor:
        """BB-LIG maps (B,1,H,W) of the batch along its class directions (the method must be
        fitted)."""
        x, source, target = (
            batch.images.to(self.device),
            batch.source.to(self.device),
            batch.target.to(self.device),
        )
        return self.bb_lig(x, self.search(x, source, target), source, target)

    def generate(self, batch):
        from cfbench.api.types import Counterfactuals

        h = self.hparams
        x, source, target = (
            batch.images.to(self.device),
            batch.source.to(self.device),
            batch.target.to(self.device),
        )
        found = self.search(x, source, target)
        masks = self.bb_lig(x, found, source, target)
        if h.decode_steps == h.search_steps:  # the line search rendered the chosen alpha
            final = found["image"]
        else:
            self.progress("final render")
            final = self.dae.decode(
                found["z"] + found["alpha"].view(-1, 1) * found["direction"],
                found["x_T"],
                h.decode_steps,
            )
        n = torch.full((len(x),), found["calls"], device=self.device)
        return Counterfactuals(
            final,
            masks,
            {
                "steps": n,
                "nfe": n,
                "mask_nfe": torch.full_like(n, h.lig_path),
                "alpha_fraction": found["alpha"].abs() / h.alpha_max,
            },
        )


def clip_top(attribution: torch.Tensor, percent: float = 2.0) -> torch.Tensor:
    """Maps (B,1,H,W) >= 0 divided by the value above which their top ``percent`` % of total mass
    lies and clamped at 1: the normalisation of the released BB-LIG (``normalize_attr``,
    ``outlier_perc=2``; captum's own helper is private and works on one HWC numpy image)."""
    ordered = attribution.flatten(1).sort(1).values
    mass = ordered.cumsum(1)
    at = (mass > mass[:, -1:] * (100 - percent) / 100).int().argmax(1, keepdim=True)
    threshold = ordered.gather(1, at).clamp_min(1e-12).view(-1, 1, 1, 1)
    return (attribution / threshold).clamp(max=1.0)
