"""How far a diffusion autoencoder lets z_sem move the classifier, per class, on held-out synthetic
pairs: the ceiling any GCD direction works under.

Per target class c and its pair partner c' (images 2k, 2k+1 of the held-out set are a pair):
- ``swap``: z_sem of a c image decoded with x_T of its c' partner, classified as c (the manifest's
  ``swap_follows_z_sem``, split by class);
- ``reach@s``: a c' image's z_sem moved by s times the difference of the class means of z_sem
  (mean over c minus mean over c'), decoded with its own x_T, classified as c. The class-mean
  difference uses the labels, so it is an oracle direction; GCD finds its direction from one image
  through a proxy, so its FR in the c' -> c direction is unlikely to exceed the best reach.

With ``--ball N``, what GCD's proxy sees (Alg. 1) from the first c' image: N codes drawn uniformly
in the ball of radius ``--radius`` (units: median distance between held-out z_sem codes, as in
``methods/gcd.py``) around its z_sem, rendered with its x_T; ``ball_c`` / ``ball_drift`` are the
fractions classified c / neither c nor c'. A least-squares linear fit of a score on the codes
(``--score``: p(c') among the pair, as gcd's default; the logit margin l_c' - l_c; or -log p(c)
among all classes) gives the direction the data point along (the first-order part of GCD's proxy
gradient); ``fit_cos`` is its cosine with the oracle direction and ``fit@s`` its reach, moved as far
as the oracle at s.

    .venv/bin/python research/diffae_reach.py [--diffae FOLDER] [--n 128] [--steps 10]
                                                [--ball 512 --radius 1 --classes cheetah --score
                                                pair_prob]

Default FOLDER: the shipped asset. Classifier: the shipped synthetic classifier, forward only.
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from cfbench.api.component import ASSETS
from cfbench.api.world import HELDOUT_SEED
from cfbench.assets import shipped
from cfbench.catalog import WORLDS

ANIMALS = WORLDS.get("animals").load()
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
    ap.add_argument(
        "--ball", type=int, default=0, help="N codes in the ball around one source (0: skip)"
    )
    ap.add_argument(
        "--radius", type=float, default=1.0, help="ball radius, in median z_sem distances"
    )
    ap.add_argument(
        "--score",
        choices=("pair_prob", "margin", "target_logprob"),
        default="pair_prob",
        help="what the --ball fit regresses (lowered towards c)",
    )
    ap.add_argument(
        "--classes", default=",".join(ANIMALS.classes), help="target classes, comma-separated"
    )
    args = ap.parse_args()
    wanted = args.classes.split(",")
    if unknown := set(wanted) - set(ANIMALS.classes):
        ap.error(f"unknown classes {sorted(unknown)}; choose from {', '.join(ANIMALS.classes)}")
    dae, classifier = load("diffae", args.diffae), load("classifier")
    images, labels = ANIMALS.images(HELDOUT_SEED, args.n)
    z_sem, x_T = dae.encode(images.float() / 255, args.steps)
    partner = torch.arange(args.n) ^ 1

    def rate(z, xt, target):
        return float((classifier(dae.decode(z, xt, args.steps)).argmax(1) == target).float().mean())

    rows = []
    for c, name in enumerate(ANIMALS.classes):
        if name not in wanted:
            continue
        mine = (labels == c).nonzero().flatten()
        others = partner[mine]
        row = {"class": name, "n": len(mine), "swap": rate(z_sem[mine], x_T[others], c)}
        direction = z_sem[mine].mean(0) - z_sem[others].mean(0)
        for s in SCALES:
            row[f"reach@{s:g}"] = rate(z_sem[others] + s * direction, x_T[others], c)
        if args.ball:
            row.update(ball(dae, classifier, rate, z_sem, x_T, others, c, direction, args))
        rows.append(row)
    print(
        f"DiffAE {args.diffae or 'shipped asset'}, {args.steps} DDIM steps, held-out n = {args.n}"
    )
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


def ball(dae, classifier, rate, z_sem, x_T, others, c, oracle, args) -> dict:
    """Codes around the first c' image: which classes they render as, and where a linear fit
    points."""
    source, other_class = others[0], ANIMALS.partner(c)
    distances = torch.cdist(z_sem, z_sem)
    unit = float(distances[torch.triu(torch.ones_like(distances, dtype=torch.bool), 1)].median())
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(args.ball, z_sem.shape[1], generator=gen)
    delta = (
        u
        / u.norm(dim=1, keepdim=True)
        * torch.rand(args.ball, 1, generator=gen) ** (1 / u.shape[1])
    )
    delta = delta * args.radius * unit
    logits = torch.cat(
        [
            classifier(
                dae.decode(
                    z_sem[source] + d,
                    x_T[source : source + 1].expand(len(d), -1, -1, -1),
                    args.steps,
                )
            )
            for d in delta.split(64)
        ]
    )
    predicted = logits.argmax(1)
    score = {
        "pair_prob": lambda: torch.sigmoid(logits[:, other_class] - logits[:, c]),
        "margin": lambda: logits[:, other_class] - logits[:, c],
        "target_logprob": lambda: -logits.log_softmax(1)[:, c],
    }[args.score]()
    design = torch.cat([delta, torch.ones(len(delta), 1)], 1)
    fitted = -torch.linalg.lstsq(design, score.unsqueeze(1)).solution[:-1, 0]
    fitted = fitted / fitted.norm() * oracle.norm()
    row = {
        "ball_c": float((predicted == c).float().mean()),
        "ball_drift": float(((predicted != c) & (predicted != other_class)).float().mean()),
        "fit_cos": float(fitted @ oracle / oracle.norm() ** 2),
    }
    for s in SCALES:
        row[f"fit@{s:g}"] = rate(z_sem[others] + s * fitted, x_T[others], c)
    return row


if __name__ == "__main__":
    main()
