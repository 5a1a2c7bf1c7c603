"""Matryoshka sparse autoencoder (SAE) on a classifier's penultimate activations.

SLCF's "Ours + SAE" variant penalises how much the counterfactual changes the SAE code of the
classifier's features, and trait isolation edits one SAE feature at a time; both need a
dictionary of sparse, roughly monosemantic features. Matryoshka training (every dictionary
prefix must reconstruct on its own) orders features from general to specific and keeps early
features from being split into many near-duplicates.

Architecture (as the SLCF paper): h = ReLU(W_e (a - b_d) + b_e), a' = W_d h + b_d, loss
sum over prefixes k of ||a - a'_k||^2 + l1 * ||h_{:k}||_1, decoder columns kept at unit norm.
Activations are divided by one scalar (so that E||a||^2 = width) before encoding; that keeps
``l1`` and the trait-loss weight meaningful across classifiers.

Why a small module and not a library: sae-lens (the maintained option that resolves with the
pinned torch) pulls in ~55 packages (transformer-lens, datasets, wandb, ...) to hook language
models, and its Matryoshka SAE is BatchTopK, not the ReLU + L1 prefix loss used here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.api.component import Component, save_weights


class MatryoshkaSAE(nn.Module):
    def __init__(self, width: int, size: int, prefixes: tuple[int, ...] | None = None):
        super().__init__()
        self.prefixes = tuple(prefixes or _doubling_prefixes(size))
        if self.prefixes[-1] != size or list(self.prefixes) != sorted(set(self.prefixes)):
            raise ValueError(
                f"prefixes must increase and end at the dictionary size {size}: {self.prefixes}"
            )
        self.w_enc = nn.Parameter(torch.empty(size, width))
        self.b_enc = nn.Parameter(torch.zeros(size))
        self.w_dec = nn.Parameter(torch.empty(width, size))
        self.b_dec = nn.Parameter(torch.zeros(width))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("prefix_sizes", torch.tensor(self.prefixes))
        nn.init.kaiming_uniform_(self.w_dec)
        self.normalise_decoder()
        with torch.no_grad():
            self.w_enc.copy_(self.w_dec.T)

    @property
    def size(self) -> int:
        return self.w_enc.shape[0]

    def pre_activation(self, a: torch.Tensor) -> torch.Tensor:
        """The encoder before its ReLU (has a gradient where a feature is still off)."""
        return (a / self.scale - self.b_dec) @ self.w_enc.T + self.b_enc

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        """h_enc: sparse non-negative code (B, size) of raw activations (B, width)."""
        return F.relu(self.pre_activation(a))

    def decode(self, h: torch.Tensor, prefix: int | None = None) -> torch.Tensor:
        """Reconstruction in raw activation units from the first ``prefix`` features (all by
        default)."""
        k = prefix or self.size
        return (h[:, :k] @ self.w_dec[:, :k].T + self.b_dec) * self.scale

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(a))

    def loss(self, a: torch.Tensor, l1: float) -> torch.Tensor:
        """Matryoshka loss on a batch of raw activations (mean over the batch)."""
        target = a / self.scale
        h = self.encode(a)
        total = a.new_zeros(())
        for k in self.prefixes:
            rec = h[:, :k] @ self.w_dec[:, :k].T + self.b_dec
            total = total + (target - rec).pow(2).sum(1).mean() + l1 * h[:, :k].sum(1).mean()
        return total

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.w_dec /= self.w_dec.norm(dim=0, keepdim=True).clamp_min(1e-8)

    @classmethod
    def from_state_dict(cls, state: dict) -> MatryoshkaSAE:
        size, width = state["w_enc"].shape
        sae = cls(width, size, tuple(int(k) for k in state["prefix_sizes"]))
        sae.load_state_dict(state)
        return sae


def _doubling_prefixes(size: int, first: int = 32) -> tuple[int, ...]:
    prefixes, k = [], min(first, size)
    while k < size:
        prefixes.append(k)
        k *= 2
    return tuple(prefixes + [size])


def train_sae(
    activations: torch.Tensor,
    *,
    expansion: int = 8,
    l1: float = 0.3,
    steps: int = 4000,
    batch: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
) -> MatryoshkaSAE:
    """Fit a Matryoshka SAE to (N, width) activations with Adam (fixed seed, torch's recursive
    CosineAnnealingLR, which the shipped SAE was trained with), on the activations' device (a
    ResNet-50 dictionary is too slow to fit on a CPU)."""
    from cfbench.components.training import fit

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    width = activations.shape[1]
    sae = MatryoshkaSAE(width, expansion * width).to(activations.device)
    with torch.no_grad():
        sae.scale.fill_(float(activations.pow(2).sum(1).mean().div(width).sqrt()))
        sae.b_dec.copy_(activations.mean(0) / sae.scale)

    def loss(_):
        return sae.loss(activations[torch.randint(len(activations), (batch,), generator=gen)], l1)

    fit(
        sae.parameters(),
        steps,
        loss,
        "sae",
        optimizer=lambda p: torch.optim.Adam(p, lr=lr),
        schedule=lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps),
        after_step=sae.normalise_decoder,
    )
    return sae.eval()


@torch.no_grad()
def evaluate_sae(sae: MatryoshkaSAE, activations: torch.Tensor) -> dict:
    """Explained variance (full dictionary and per prefix), mean active features, dead features."""
    h = sae.encode(activations)
    centred = (activations - activations.mean(0)).pow(2).sum()

    def explained(prefix):
        return float(1 - (activations - sae.decode(h, prefix)).pow(2).sum() / centred)

    return {
        "explained_variance": explained(None),
        "explained_variance_per_prefix": {str(k): round(explained(k), 4) for k in sae.prefixes},
        "mean_active_features": float((h > 0).float().sum(1).mean()),
        "dead_features": int(((h > 0).sum(0) == 0).sum()),
        "dictionary_size": sae.size,
        "width": int(activations.shape[1]),
        "heldout_n": len(activations),
    }


@torch.no_grad()
def penultimate_activations(
    classifier: nn.Module, images: torch.Tensor, chunk: int = 256
) -> torch.Tensor:
    """Penultimate activations of a float image batch (N,3,H,W in [0,1]), in chunks."""
    from cfbench.api.classifier import split

    features, _ = split(classifier)
    return torch.cat([features(x) for x in images.split(chunk)])


def train_task_sae(
    task,
    n: int,
    out: Path,
    *,
    batch_size: int = 64,
    expansion: int = 8,
    l1: float = 0.3,
    steps: int = 4000,
    seed: int = 0,
) -> dict:
    """An SAE for a task's classifier, fitted to the first ``n`` evaluation samples and saved to
    ``out`` (safetensors, for CFBENCH_SAE) with its held-out measurements in ``<out>.json``; returns
    those.

    Real tasks ship no SAE, so this is how a user gets one for their data and classifier. A random
    10% of the activations is held out so that the reported explained variance is not a training
    fit."""
    import json

    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from cfbench.errors import UserError

    if n < 20:
        raise UserError(
            "Training an SAE needs --n of at least 20, so that the held-out 10% has two samples "
            f"(got {n})."
        )
    for name, value in (
        ("--batch-size", batch_size),
        ("--expansion", expansion),
        ("--steps", steps),
    ):
        if value < 1:
            raise UserError(f"{name} must be at least 1 (got {value}).")
    out = Path(out)
    report_path = out.with_name(out.name + ".json")
    if out.is_dir():
        raise UserError(
            f"--out '{out}' is a directory: pass a file, e.g. {out / (task.name + '.safetensors')}."
        )
    try:  # fail now rather than after the long part
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".{out.name}.write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(
            f"Cannot write the SAE to '{out}': {err.strerror}. Pass a writable file with --out."
        ) from err

    ids = task.sample_ids(n)
    chunks = []
    with tqdm(total=len(ids), desc=f"activations {task.name}", unit="img") as bar:
        for start in range(0, len(ids), batch_size):
            images = task.load(ids[start : start + batch_size]).images.to(task.device)
            chunks.append(penultimate_activations(task.classifier, images, chunk=batch_size))
            bar.update(len(images))
    activations = torch.cat(chunks)
    order = torch.randperm(len(activations), generator=torch.Generator().manual_seed(seed))
    held = len(activations) // 10
    if held < 2:
        raise UserError(
            f"Task '{task.name}' has only {len(activations)} samples; an SAE needs at least 20."
        )
    sae = train_sae(activations[order[held:]], expansion=expansion, l1=l1, steps=steps, seed=seed)
    report = {
        **evaluate_sae(sae, activations[order[:held]]),
        "task": task.name,
        "train_n": len(activations) - held,
        "expansion": expansion,
        "l1": l1,
        "steps": steps,
        "seed": seed,
    }
    save_file(sae.cpu().state_dict(), str(out))
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def train_synthetic(world, classifier: nn.Module, n_train: int = 12000, n_heldout: int = 2000):
    """An SAE on a synthetic classifier; returns it and its held-out measurements for the
    manifest."""
    from cfbench.components import training

    def acts(seed, n):
        images, _ = world.images(seed, n)
        return torch.cat(
            [penultimate_activations(classifier, training.as_float(x)) for x in images.split(1024)]
        )

    sae = train_sae(acts(training.TRAIN_SEED + 3, n_train))
    return sae, {**evaluate_sae(sae, acts(training.HELDOUT_SEED, n_heldout)), "train_n": n_train}


class SparseAutoencoder(Component):
    kind = "sae"
    what = "a sparse autoencoder on the classifier's penultimate activations (slcf_sae, traits)"
    how = "the safetensors file `cfbench sae train --task TASK --n 5000 --out FILE` writes"
    needs = ("classifier",)
    assets = {
        "sae": {},
        "smile_sae": {"needs": {"classifier": "smile_classifier"}, "world": "smile_faces"},
        "age_sae": {"needs": {"classifier": "age_classifier"}, "world": "age_faces"},
    }
    # `cfbench sae train`: an SAE for any task's classifier
    train_for_task = staticmethod(train_task_sae)

    @classmethod
    def load(cls, where, needs, shipped):
        from safetensors.torch import load_file

        from cfbench.api.classifier import split
        from cfbench.errors import UserError

        sae = MatryoshkaSAE.from_state_dict(load_file(str(where)))
        head = split(needs["classifier"])[1]
        if head.in_features != sae.w_enc.shape[1]:  # else a shape error deep inside a method
            raise UserError(
                f"The sparse autoencoder {where} reads {sae.w_enc.shape[1]} activations, but the "
                f"classifier's penultimate layer has {head.in_features}: train one for this "
                "classifier with `cfbench sae train`."
            )
        return sae

    @classmethod
    def train(cls, out, needs, world, **options):
        sae, stats = train_synthetic(world, needs["classifier"], **options)
        save_weights(sae, out)
        return stats
