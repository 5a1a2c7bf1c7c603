"""Choose the shortcut classifier's background correlation rho by measurement.

For each rho, trains the synthetic classifier exactly as ``cfbench assets build`` does (same
seed and options) and prints its background reliance: held-out accuracy with the class's own
background tone, with the pair partner's tone (same scenes), and with a random tone. The shipped
``shortcut_classifier`` uses the smallest rho whose swap drop is at least 20 points while the
random-tone accuracy stays high (the classifier still needs the animal).

    python research/shortcut_rho.py --rho 0.8 0.9 0.95 1.0 [--out
    results/shortcut_rho.csv]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from cfbench.catalog import COMPONENTS, WORLDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rho", type=float, nargs="+", default=[0.8, 0.9, 0.95, 1.0])
    parser.add_argument(
        "--animal-noise",
        type=float,
        nargs="+",
        default=[0.0],
        help="share of training images showing the partner's animal (each combined with each rho)",
    )
    parser.add_argument("--out", default=None, help="CSV to write (default: print only)")
    args = parser.parse_args()
    rows = []
    for rho in args.rho:
        for noise in args.animal_noise:
            t0 = time.time()
            with tempfile.TemporaryDirectory() as folder:  # the candidate's weights are not kept
                stats = (
                    COMPONENTS.get("classifier")
                    .load()
                    .train(
                        Path(folder) / "classifier.safetensors",
                        {},
                        WORLDS.get("animals").load(),
                        clutter_rate=0.5,
                        bg_correlation=rho,
                        animal_noise=noise,
                        reliance=True,
                    )
                )
            rows.append(
                {
                    "rho": rho,
                    "animal_noise": noise,
                    **stats["background_reliance"],
                    "heldout_accuracy": stats["heldout_accuracy"],
                    "train_seconds": round(time.time() - t0, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
