"""The shortcut study: one run per task, the paired GT_SPUR difference equals the per-sample
differences written out, and its table names the classifier's shortcut in the caption."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from cfbench.cli import main
from cfbench.tables import table


def test_tiny_shortcut_study_writes_its_table_paired_difference_and_probes(tmp_path, capsys):
    out = tmp_path / "study"
    assert (
        main(
            [
                "shortcut-study",
                "--pairs",
                "cheetah_cougar",
                "--methods",
                "pgd,cecas,cecas_no_ls",
                "--n",
                "3",
                "--set",
                "cecas.iterations=2",
                "--set",
                "cecas_no_ls.iterations=2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "synth_cheetah_cougar_shortcut" / "samples.parquet").exists()
    assert (out / "synth_cheetah_cougar" / "samples.parquet").exists()
    assert (out / "figures" / "gt_spur.png").exists()
    info, sub_run = (
        json.loads(p.read_text())
        for p in (out / "run.json", out / "synth_cheetah_cougar" / "run.json")
    )
    assert info["git_commit"] == sub_run["git_commit"] and info["versions"] == sub_run["versions"]
    paired = pd.read_csv(out / "paired.csv").set_index("task")
    for task in ("synth_cheetah_cougar_shortcut", "synth_cheetah_cougar"):
        rows = pd.read_parquet(out / task / "samples.parquet").set_index(["method", "sample_id"])[
            "GT_SPUR"
        ]
        diff = (rows["cecas"] - rows["cecas_no_ls"]).dropna()
        assert paired.loc[task, "n"] == len(diff)
        assert np.isclose(paired.loc[task, "mean"], diff.mean())
        assert paired.loc[task, "ci_low"] <= paired.loc[task, "mean"] <= paired.loc[task, "ci_high"]
    probes = pd.read_csv(out / "probes.csv")
    assert set(probes["classifier"]) == {"shortcut", "unbiased"} and set(probes["part"]) == {
        "C",
        "S",
    }
    rendered = table([str(out)], "shortcut", "markdown", with_ci=False)
    assert (
        "points: a background shortcut; read GT_SPUR" in rendered
        and "no background shortcut" in rendered
    )
    assert "| shortcut" in rendered and "| unbiased" in rendered
