"""Train a candidate diffusion autoencoder with training options other than the shipped asset's,
into a folder of its own (never tasks/assets), and print the manifest's held-out measurements.

The shipped asset is rebuilt by ``cfbench assets build --only diffae``; this script is for
trying another recipe first (issue 13: does z_sem carry the coat?). Resumable: a killed run
continues from ``OUT.training.pt`` when restarted with the same options. Then compare per class:

    .venv/bin/python components/research/diffae_candidate.py --out /work/diffae_w32 --steps 2500 \\
        --texture-weight 500 --widths 32,32,64,64
    .venv/bin/python components/research/diffae_reach.py --diffae /work/diffae_w32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cfbench.api.component import ASSETS
from cfbench.assets import shipped
from cfbench.components.diffae import train_synthetic
from cfbench.tasks.synthetic import ANIMALS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--texture-weight", type=float, default=0.0)
    ap.add_argument(
        "--widths", default="16,32,64,64", help="UNet block widths; z_sem is 4x the first"
    )
    ap.add_argument("--layers-per-block", type=int, default=1)
    args = ap.parse_args()
    if args.out.resolve().is_relative_to(ASSETS.resolve()):
        ap.error("--out must not be inside tasks/assets: a candidate is not the shipped asset")
    kind = shipped()["classifier"][0]
    classifier = kind.load(kind.asset_path("classifier", ASSETS), {}, shipped=True).eval()
    t0 = time.time()
    model, stats = train_synthetic(
        ANIMALS,
        classifier,
        steps=args.steps,
        texture_weight=args.texture_weight,
        widths=tuple(int(w) for w in args.widths.split(",")),
        layers_per_block=args.layers_per_block,
        checkpoint=args.out.with_name(args.out.name + ".training.pt"),
    )
    stats.update(
        train_seconds=round(time.time() - t0, 1), options=vars(args) | {"out": str(args.out)}
    )
    model.save(args.out)
    (args.out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
