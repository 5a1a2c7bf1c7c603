"""How often the face generator draws an attribute where it can be seen.

An attribute oracle can only be as accurate as the images let it be: if the generator paints an
attribute under another layer, its label is not in the pixels. For each attribute a render can
switch (not the identity's own ``Male``, ``Blond_Hair``, ``Pale_Skin``), the script renders the
same person and scene with the attribute off and on and measures how much of the image changes
(the per-pixel largest channel difference, summed: "pixel mass"). It prints, per attribute, the
share of renders whose change is below ``--below`` pixels, i.e. practically invisible:

    .venv/bin/python research/face_attribute_visibility.py --n 600
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from cfbench.catalog import WORLDS


def visibility(n: int, below: float, seed: int = 0) -> pd.DataFrame:
    world = WORLDS.get("faces").load()
    rows = []
    for name in world.switchable:
        mass = []
        for i in range(n):
            x_off, x_on = world.intervention(seed, i, name)
            mass.append(np.abs(x_on - x_off).max(-1).sum())
        mass = np.array(mass)
        rows.append(
            {
                "attribute": name,
                f"invisible (< {below:g} px)": float((mass < below).mean()),
                "median px": float(np.median(mass)),
                "p10 px": float(np.quantile(mass, 0.1)),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=600, help="renders (people) per attribute")
    ap.add_argument("--below", type=float, default=0.5, help="pixel mass counted as invisible")
    args = ap.parse_args()
    print(visibility(args.n, args.below).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
