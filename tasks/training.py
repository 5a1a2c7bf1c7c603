"""Train the shipped synthetic assets with fixed seeds: ``cfbench assets build``.

Every asset is trained on images from the procedural generator (seeds disjoint from the
benchmark's evaluation split) and measured on held-out images; the measurements and wall-clock
training times go into ``assets/manifest.json`` next to the weights.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from cfbench.results import write_json
from cfbench.tasks import synthetic
from cfbench.tasks.models import LatentAutoencoder, SimSiam, SynthClassifier, autoencoder_config

TRAIN_SEED, HELDOUT_SEED = 101, 202
ALL_CLASSES = tuple(range(len(synthetic.CLASSES)))


def synth_images(seed: int, n: int, classes=ALL_CLASSES, bg_correlation: float = 0.0,
                 clutter_rate: float = 0.0):
    """``n`` generated images as a uint8 tensor N x 3 x 64 x 64 (compact in memory) and labels;
    every image whose index falls in the first ``clutter_rate`` of each 100 gets background clutter."""
    imgs = np.empty((n, synthetic.SIZE, synthetic.SIZE, 3), np.uint8)
    labels = np.empty(n, np.int64)
    for i in tqdm(range(n), desc=f"render seed={seed}", leave=False):
        s = synthetic.render(seed, i, synthetic.label_for(i, classes), bg_correlation,
                             clutter=(i // 6) % 100 < clutter_rate * 100)
        imgs[i] = np.round(s.image * 255)
        labels[i] = s.label
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


def as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255


def _cosine_lr(opt, step: int, total: int, base: float) -> None:
    for g in opt.param_groups:
        g["lr"] = base * 0.5 * (1 + math.cos(math.pi * step / total))


def _train_loop(params, steps: int, lr: float, loss_fn: Callable[[int], torch.Tensor], desc: str):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    bar = tqdm(range(steps), desc=desc)
    for step in bar:
        _cosine_lr(opt, step, steps, lr)
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")


def train_classifier(n_train=18000, steps=1500, batch=64, seed=0, clutter_rate=0.5, max_noise=0.06):
    """Half the training images carry background clutter and every batch gets Gaussian pixel
    noise of a random strength: the classifier must find the class on the coat, and speckle
    (the cheapest adversarial edit) is not class evidence, so counterfactual edits must be semantic."""
    torch.manual_seed(seed)
    x, y = synth_images(TRAIN_SEED, n_train, clutter_rate=clutter_rate)
    model = SynthClassifier()
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        idx = torch.randint(len(x), (batch,), generator=gen)
        xb = as_float(x[idx])
        sigma = torch.rand(batch, 1, 1, 1, generator=gen) * max_noise
        xb = (xb + sigma * torch.randn(xb.shape, generator=gen)).clamp(0, 1)
        return F.cross_entropy(model(xb), y[idx])

    model.train()
    _train_loop(model.parameters(), steps, 3e-3, loss, "classifier")
    model.eval()
    stats = {}
    for name, rate in (("heldout_accuracy", 0.0), ("heldout_accuracy_clutter", 1.0)):
        xv, yv = synth_images(HELDOUT_SEED, 3000, clutter_rate=rate)
        with torch.no_grad():
            pred = torch.cat([model(as_float(xb)).argmax(1) for xb in xv.split(256)])
        stats[name] = float((pred == yv).float().mean())
    return model, {**stats, "heldout_n": 3000}


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1]."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1 / mse)


def train_autoencoder(n_train=12000, steps=2400, batch=32, seed=0, kl_weight=1e-6, crop=32, full_steps=200):
    """Fully convolutional, so most steps train on random ``crop`` x ``crop`` patches (4x cheaper
    on a CPU); the last ``full_steps`` use whole images so the mid-block attention sees them."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    x, _ = synth_images(TRAIN_SEED + 1, n_train)
    vae = AutoencoderKL(**autoencoder_config())
    gen = torch.Generator().manual_seed(seed)

    def loss(step):
        xb = as_float(x[torch.randint(len(x), (batch,), generator=gen)])
        if step < steps - full_steps:
            top, left = (int(v) for v in torch.randint(0, 64 - crop + 1, (2,), generator=gen) // 2 * 2)
            xb = xb[:, :, top:top + crop, left:left + crop]
        post = vae.encode(xb * 2 - 1).latent_dist
        rec = (vae.decode(post.sample()).sample + 1) / 2
        kl = post.kl().mean() / xb[0].numel()
        return F.l1_loss(rec, xb) + F.mse_loss(rec, xb) + kl_weight * kl

    vae.train()
    _train_loop(vae.parameters(), steps, 2e-3, loss, "autoencoder")
    vae.eval()
    set_scaling_factor(vae, x[:1024])
    ae = LatentAutoencoder(vae)
    xv, _ = synth_images(HELDOUT_SEED, 512)
    with torch.no_grad():
        p = torch.cat([psnr(ae(as_float(xb)), as_float(xb)) for xb in xv.split(64)])
    return vae, {"heldout_psnr_db": float(p.mean()), "heldout_psnr_db_min": float(p.min()),
                 "heldout_n": len(xv), "scaling_factor": vae.config.scaling_factor}


def set_scaling_factor(vae, images: torch.Tensor) -> None:
    """Record 1 / std of the latent modes as the config's ``scaling_factor`` (diffusers convention)."""
    with torch.no_grad():
        z = torch.cat([vae.encode(as_float(b) * 2 - 1).latent_dist.mode() for b in images.split(128)])
    vae.register_to_config(scaling_factor=float(1 / z.std()))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """SimSiam views: per-sample random resized crop, horizontal flip and mild brightness jitter
    (no hue/saturation jitter: coat colour is class evidence here, the features should keep it)."""
    from torchvision.transforms.v2 import functional as TF

    out = []
    for img in x:
        scale = float(torch.empty(1).uniform_(0.4, 1.0, generator=gen))
        side = max(16, int(round(64 * math.sqrt(scale))))
        top, left = (int(torch.randint(0, 64 - side + 1, (1,), generator=gen)) for _ in range(2))
        v = TF.resized_crop(img, top, left, side, side, [64, 64], antialias=True)
        if torch.rand(1, generator=gen) < 0.5:
            v = TF.horizontal_flip(v)
        v = TF.adjust_brightness(v, float(torch.empty(1).uniform_(0.8, 1.2, generator=gen)))
        out.append(v.clamp(0, 1))
    return torch.stack(out)


def train_simsiam(n_train=12000, steps=500, batch=128, seed=0):
    torch.manual_seed(seed)
    x, y = synth_images(TRAIN_SEED + 2, n_train)
    model = SimSiam()
    gen = torch.Generator().manual_seed(seed)

    def loss(_):
        xb = as_float(x[torch.randint(len(x), (batch,), generator=gen)])
        z1, z2 = model.embed(_augment(xb, gen)), model.embed(_augment(xb, gen))
        p1, p2 = model.predictor(z1), model.predictor(z2)
        return -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean()) / 2

    model.train()
    _train_loop(model.parameters(), steps, 1e-3, loss, "simsiam")
    model.eval()
    xv, yv = synth_images(HELDOUT_SEED, 1200)
    with torch.no_grad():
        e = F.normalize(torch.cat([model.embed(as_float(b)) for b in xv.split(256)]), dim=1)
    # k-NN (k=1, leave-one-out) accuracy on held-out embeddings: evidence the features are not collapsed.
    sim = e @ e.T
    sim.fill_diagonal_(-2)
    knn = float((yv[sim.argmax(1)] == yv).float().mean())
    return model, {"heldout_knn1_accuracy": knn, "embedding_std": float(e.std(0).mean())}


def _save_classifier(out: Path) -> dict:
    from safetensors.torch import save_file
    model, stats = train_classifier()
    save_file(model.state_dict(), str(out / "classifier.safetensors"))
    return stats


def _save_autoencoder(out: Path) -> dict:
    vae, stats = train_autoencoder()
    vae.save_pretrained(str(out / "autoencoder"))
    return stats


def _save_simsiam(out: Path) -> dict:
    from safetensors.torch import save_file
    model, stats = train_simsiam()
    save_file(model.state_dict(), str(out / "simsiam.safetensors"))
    return stats


def _save_sae(out: Path) -> dict:
    from cfbench.tasks.sae import build_synthetic_sae
    return build_synthetic_sae(out)


def _save_diffusion_prior(out: Path) -> dict:
    from cfbench.tasks.diffusion import save_prior
    return save_prior(out)


BUILDERS: dict[str, Callable[[Path], dict]] = {
    "classifier": _save_classifier,
    "autoencoder": _save_autoencoder,
    "simsiam": _save_simsiam,
    "sae": _save_sae,           # reads the classifier, so it comes after it
    "diffusion_prior": _save_diffusion_prior,
}


def build(out: Path, only: list[str] | None = None) -> dict:
    """Train the requested assets (default: all), save them under ``out`` and update the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest: dict = {}
    for name in only or list(BUILDERS):
        t0 = time.time()
        stats = BUILDERS[name](out)
        stats.update(train_seconds=round(time.time() - t0, 1), torch=torch.__version__,
                     threads=torch.get_num_threads())
        # Re-read before writing: another asset may have been rebuilt meanwhile.
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest[name] = stats
        write_json(manifest_path, manifest)
        print(f"{name}: {stats}")
    return manifest
