"""The whole metric suite through ``cfbench run``: every column filled and in range, or
explained."""

import json

import pandas as pd

from cfbench.runner import Runner, RunSpec


def test_run_with_all_metrics_fills_the_columns(tmp_path):
    spec = RunSpec(
        task="synth_egyptian_persian",
        methods=["slcf"],
        n=6,
        batch_size=6,
        seed=0,
        device="cpu",
        out=tmp_path / "r",
        metrics="all",
        overrides=["slcf.stage2_steps=60"],
    )
    run = Runner(spec).execute()
    m = pd.read_csv(run.metrics).iloc[0]
    assert 0 <= m["FR"] <= 1 and -1 <= m["COUT"] <= 1 and -1 <= m["S3"] <= 1
    assert m["FID"] > 0 and m["sFID"] > 0 and m["sFID_ci"] >= 0 and pd.isna(m["FID_ci"])
    assert 0 <= m["PF"] <= 1 and 0 <= m["GT_IN"] <= 1 and 0 <= m["GT_SPUR"] <= 1
    assert m["GT_IN"] + m["GT_SPUR"] <= 1 + 1e-9 and m["sec_per_cf"] > 0 and m["nfe"] >= 1
    info = json.loads(run.run_json.read_text())
    assert pd.isna(m["LPIPS"]) == ("LPIPS" in info["metrics_unavailable"])
    assert (
        info["metric_provenance"]["FID"]["stand_in"]
        and "stand-in" in info["metric_provenance"]["FID"]["model"]
    )
    assert "stand-in" in info["metric_provenance"]["S3"]["model"]
    samples = pd.read_parquet(run.samples)
    assert len(samples["COUT_curve_target"].iloc[0]) == 52
    assert {"cout_curves.png", "masks_slcf.png", "triplets_slcf.png"} <= {
        p.name for p in run.figures.iterdir()
    }
