"""Spurious-factor VAE (CECAS): the classifier's penultimate representation R split into a causal
part C and a spurious part S, with an auxiliary classifier g on S.

CECAS's spurious term keeps g(S(x')) close to g(S(x)): an edit may change what the label causes,
not the label-correlated factors it does not cause. A VAE encodes R into [C, S] and decodes both
back to R; a linear head reads the label from C; g reads the label from S (trained on a detached
S, so it only reports what S already holds).

How C is made causal (a simplification of the paper's objective, which needs no interventions):
the synthetic generator renders every training scene twice, as its class and as the pair
partner's class with the same background (``render(..., tone_of=...)``): an intervention on the
label alone. C must predict each rendering's label and S must be the same for both renderings, so
S keeps only what the label does not change (pose, background tone, ...), and whatever of it
predicts the label does so through a correlation, which is what g measures. On data without a
shortcut g(S) is near chance and the spurious term has nothing to hold.

A real task provides its own trained module (``torch.save``d, with ``causal``, ``spurious`` and
``spurious_logits`` methods taking R); ``cfbench assets build`` trains the shipped ones.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component, save_weights
from cfbench.errors import UserError

CAUSAL, SPURIOUS, HIDDEN = 4, 12, 128


def _mlp(cin: int, cout: int, hidden: int = HIDDEN) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(cin, hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Linear(hidden, cout),
    )


class SpuriousVAE(nn.Module):
    def __init__(self, width: int, classes: int, causal: int = CAUSAL, spurious: int = SPURIOUS):
        super().__init__()
        self.dims = (causal, spurious)
        self.encoder = _mlp(width, 2 * (causal + spurious))
        self.decoder = _mlp(causal + spurious, width)
        self.label_head = nn.Linear(causal, classes)
        self.g = nn.Sequential(nn.Linear(spurious, 64), nn.SiLU(), nn.Linear(64, classes))
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))

    @classmethod
    def from_state_dict(cls, state: dict) -> SpuriousVAE:
        width, classes = state["mean"].numel(), state["label_head.weight"].shape[0]
        causal = state["label_head.weight"].shape[1]
        model = cls(width, classes, causal, state["g.0.weight"].shape[1])
        model.load_state_dict(state)
        return model

    @property
    def width(self) -> int:
        return self.mean.numel()

    def moments(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder((r - self.mean) / self.std).chunk(2, dim=1)
        return mu, logvar

    def causal(self, r: torch.Tensor) -> torch.Tensor:
        return self.moments(r)[0][:, : self.dims[0]]

    def spurious(self, r: torch.Tensor) -> torch.Tensor:
        return self.moments(r)[0][:, self.dims[0] :]

    def spurious_logits(self, r: torch.Tensor) -> torch.Tensor:
        """g(S(R)): the label as the spurious factors alone predict it."""
        return self.g(self.spurious(r))

    def loss(
        self,
        r: torch.Tensor,
        r_partner: torch.Tensor,
        y: torch.Tensor,
        y_partner: torch.Tensor,
        gen: torch.Generator,
        beta: float,
        invariance: float,
    ) -> torch.Tensor:
        """ELBO on both renderings + label from C + S invariant to the label intervention + g on S.
        g learns from the factual rendering only: the intervened one breaks the very correlation
        between S and the label that g is there to report."""
        total = 0.0
        spurious = []
        for rep, label in ((r, y), (r_partner, y_partner)):
            mu, logvar = self.moments(rep)
            z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=gen)
            recon = F.mse_loss(self.decoder(z), (rep - self.mean) / self.std)
            kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
            causal, s = mu[:, : self.dims[0]], mu[:, self.dims[0] :]
            total = total + recon + beta * kl + F.cross_entropy(self.label_head(causal), label)
            spurious.append(s)
        total = total + F.cross_entropy(self.g(spurious[0].detach()), y)
        # relative to S's spread, or shrinking S towards a constant would satisfy it for free
        spread = spurious[0].var(0).mean().clamp_min(1e-6)
        return total + invariance * F.mse_loss(spurious[0], spurious[1]) / spread


def _representations(world, classifier: nn.Module, seed: int, n: int, **controls):
    """Penultimate R of ``n`` rendered scenes and of the same scenes as the partner class (a label
    intervention, everything else unchanged), with both labels."""
    from cfbench.components.sae import penultimate_activations

    x, x_partner, labels, partner_labels = world.pairs(seed, n, **controls)
    with torch.no_grad():
        r, r_partner = (penultimate_activations(classifier, v) for v in (x, x_partner))
    return r, r_partner, labels, partner_labels


def probes(vae: SpuriousVAE, classifier: nn.Module, world, seed: int, n: int = 3000) -> dict:
    """What C and S hold: logistic-regression probes (scikit-learn, fitted on half, scored on the
    other half) for the label and for the background tone's class, on scenes whose tone class is
    drawn independently of the label (so one cannot stand in for the other)."""
    from sklearn.linear_model import LogisticRegression

    tones = torch.randint(
        len(world.classes), (n,), generator=torch.Generator().manual_seed(seed)
    ).tolist()
    r, _, labels, _ = _representations(world, classifier, seed, n, bg_correlation=1.0, tones=tones)
    tone = torch.tensor(tones)
    with torch.no_grad():
        parts = {"C": vae.causal(r).numpy(), "S": vae.spurious(r).numpy()}
    half = n // 2
    found = {}
    for part, z in parts.items():
        for target_name, target in (("label", labels.numpy()), ("tone", tone.numpy())):
            clf = LogisticRegression(max_iter=2000).fit(z[:half], target[:half])
            found[f"{target_name}_from_{part}"] = round(
                float(clf.score(z[half:], target[half:])), 4
            )
    found["chance"] = round(1 / len(world.classes), 4)
    return found


def train_synthetic(
    world,
    classifier: nn.Module,
    n_train: int = 12000,
    steps: int = 4000,
    batch: int = 256,
    beta: float = 0.001,
    invariance: float = 1.0,
    seed: int = 0,
    probe_tones: bool = False,
    **controls,
):
    """The VAE for a synthetic classifier, on renderings like its task's evaluation images
    (``controls`` for the world: the animals' background tone tied to the class at rate
    ``bg_correlation``); returns it and its held-out measurements, with the tone probes where the
    world has tones (``probe_tones``)."""
    from cfbench.components.training import HELDOUT_SEED, TRAIN_SEED, fit

    torch.manual_seed(seed)
    r, r_partner, y, y_partner = _representations(
        world, classifier, TRAIN_SEED + 5, n_train, **controls
    )
    vae = SpuriousVAE(r.shape[1], int(y.max()) + 1)
    vae.mean.copy_(r.mean(0))
    vae.std.copy_(r.std(0).clamp_min(1e-6))
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        idx = torch.randint(n_train, (batch,), generator=gen)
        return vae.loss(r[idx], r_partner[idx], y[idx], y_partner[idx], gen, beta, invariance)

    vae.train()
    fit(
        vae.parameters(),
        steps,
        loss,
        "spurious_vae",
        optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3),
    )
    vae.eval()
    hr, hp, hy, _ = _representations(world, classifier, HELDOUT_SEED + 2, 2000, **controls)
    with torch.no_grad():
        stats = {
            "g_accuracy": round(float((vae.spurious_logits(hr).argmax(1) == hy).float().mean()), 4),
            "causal_head_accuracy": round(
                float((vae.label_head(vae.causal(hr)).argmax(1) == hy).float().mean()), 4
            ),
            "s_change_under_label_swap": round(
                float(
                    (vae.spurious(hr) - vae.spurious(hp)).norm(dim=1).mean()
                    / vae.spurious(hr).std(0).norm()
                ),
                4,
            ),
        }
    stats.update(heldout_n=2000, dims=list(vae.dims), **controls)
    if probe_tones:
        stats["probes"] = probes(vae, classifier, world, HELDOUT_SEED + 3)
    return vae, stats


class SpuriousFactorVAE(Component):
    kind = "spurious_vae"
    what = "a spurious-factor VAE on the classifier's penultimate features (CECAS's spurious term)"
    how = (
        "a torch.save'd module with causal(R), spurious(R) and spurious_logits(R) methods over "
        "the classifier's "
        "penultimate features R (cfbench's SpuriousVAE), or its safetensors state dict"
    )
    needs = ("classifier",)
    # Each on its task's evaluation images: the shortcut tasks tie every background tone to the
    # class.
    assets = {
        "spurious_vae": {"probe_tones": True},
        "shortcut_spurious_vae": {
            "needs": {"classifier": "shortcut_classifier"},
            "bg_correlation": 1.0,
            "probe_tones": True,
        },
        "smile_spurious_vae": {"needs": {"classifier": "smile_classifier"}, "world": "smile_faces"},
        "age_spurious_vae": {"needs": {"classifier": "age_classifier"}, "world": "age_faces"},
    }

    @classmethod
    def load(cls, where, needs, shipped):
        from safetensors.torch import load_file

        from cfbench.api.classifier import split

        if str(where).endswith(".safetensors"):
            vae = SpuriousVAE.from_state_dict(load_file(str(where)))
        else:
            vae = torch.load(str(where), map_location="cpu", weights_only=False)
        head = split(needs["classifier"])[1]
        width = getattr(vae, "width", None)
        if width is not None and width != head.in_features:
            raise UserError(
                f"The spurious-factor VAE {where} reads {width} features, but the classifier's "
                f"penultimate layer has {head.in_features}: it belongs to another classifier."
            )
        return vae

    @classmethod
    def train(cls, out, needs, world, **options):
        vae, stats = train_synthetic(world, needs["classifier"], **options)
        save_weights(vae, out)
        return stats

    @classmethod
    def describe(cls, location, where):
        if location.startswith("asset:"):
            return (
                f"project-trained spurious-factor VAE ({location[6:]}; C from label interventions "
                "of the "
                "synthetic generator, tasks/assets)"
            )
        return f"spurious-factor VAE {where}"
