"""How far a diffusion autoencoder lets z_sem move the classifier, per class, on held-out synthetic
pairs: the ceiling any GCD direction works under.

Per target class c and its pair partner c' (images 2k, 2k+1 of the held-out set are a pair):
- ``swap``: z_sem of a c image decoded with x_T of its c' partner, classified as c (the manifest's
  ``swap_follows_z_sem``, split by class);
- ``reach@s``: a c' image's z_sem moved by s times the difference of the class means of z_sem
  (mean over c minus mean over c'), decoded with its own x_T, classified as c. The class-mean
  difference uses the labels, so it is an oracle direction; GCD finds its direction from one image
  through a proxy, so its FR in the c' -> c direction is unlikely to exceed the best reach.

    .venv/bin/python benchmarks/diffae_reach.py [--diffae FOLDER] [--n 128] [--steps 10]

Default FOLDER: the shipped asset. Classifier: the shipped synthetic classifier, forward only.
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch

from cfbench.components.assets import shipped
from cfbench.components.base import ASSETS
from cfbench.components.training import HELDOUT_SEED, as_float, synth_images
from cfbench.tasks import synthetic

SCALES = (1.0, 2.0, 4.0)


def load(name: str, where=None):
    kind = shipped()[name][0]
    return kind.load(where or kind.asset_path(name, ASSETS), {}, shipped=True).eval()


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--diffae", default=None, help="a DiffAE folder (default: the shipped asset)")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="DDIM steps to encode and decode")
    args = ap.parse_args()
    dae, classifier = load("diffae", args.diffae), load("classifier")
    images, labels = synth_images(HELDOUT_SEED, args.n)
    z_sem, x_T = dae.encode(as_float(images), args.steps)
    partner = torch.arange(args.n) ^ 1

    def rate(z, xt, target):
        return float((classifier(dae.decode(z, xt, args.steps)).argmax(1) == target).float().mean())

    rows = []
    for c, name in enumerate(synthetic.CLASSES):
        mine = (labels == c).nonzero().flatten()
        others = partner[mine]
        row = {"class": name, "n": len(mine), "swap": rate(z_sem[mine], x_T[others], c)}
        direction = z_sem[mine].mean(0) - z_sem[others].mean(0)
        for s in SCALES:
            row[f"reach@{s:g}"] = rate(z_sem[others] + s * direction, x_T[others], c)
        rows.append(row)
    print(f"DiffAE {args.diffae or 'shipped asset'}, {args.steps} DDIM steps, held-out n = {args.n}")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
