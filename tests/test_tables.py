"""Paper tables from hand-made run directories: layouts, best/second marks, captions, LaTeX."""

import json

import pandas as pd
import pytest

from cfbench.catalog import METRICS
from cfbench.errors import UserError
from cfbench.tables import table


def fake_run(path, task, rows, provenance=None, n=8):
    path.mkdir(parents=True)
    info = {
        "task": task,
        "n": n,
        "seed": 0,
        "metric_provenance": provenance or {},
        "metrics_unavailable": {"LPIPS": "no AlexNet weights"},
    }
    (path / "run.json").write_text(json.dumps(info))
    frame = pd.DataFrame(
        [
            {
                "task": task,
                "method": m,
                "n": n,
                **{c: v.get(c) for c in METRICS.names()},
                **{f"{c}_ci": 0.01 for c in METRICS.names()},
            }
            for m, v in rows.items()
        ]
    )
    frame.to_csv(path / "metrics.csv", index=False)
    return str(path)


METHOD_ROWS = {
    "a": {"FID": 3.0, "sFID": 9.0, "S3": 0.90, "COUT": 0.50, "FR": 1.0},
    "b": {"FID": 1.0, "sFID": 8.0, "S3": 0.95, "COUT": 0.40, "FR": 0.75},
    "c": {"FID": 2.0, "sFID": 7.0, "S3": 0.80, "COUT": 0.60, "FR": 0.875},
}


def test_table1_latex_marks_best_and_second_by_direction(tmp_path):
    run = fake_run(
        tmp_path / "r",
        "synth_x",
        METHOD_ROWS,
        {"FID": {"model": "a SimSiam stand-in", "stand_in": True}},
    )
    tex = table([run], 1, "latex", with_ci=False)
    lines = {line.split("&")[1].strip(): line for line in tex.splitlines() if line.count("&") == 6}
    # sFID: lower is better; FID has no interval, so nothing separates its values: no marks
    assert r"\textbf{7.000}" in lines["c"] and r"\underline{8.000}" in lines["b"]
    assert r"\textbf{1.000}" not in lines["b"]
    # S3: higher is better
    assert r"\textbf{0.950}" in lines["b"] and r"\underline{0.900}" in lines["a"]
    assert r"\textbf{100.0}" in lines["a"]  # FR as a percentage
    assert r"\begin{tabular}{llccccc}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert r"FID $\downarrow$" in tex and r"S3 $\uparrow$" in tex
    caption = next(line for line in tex.splitlines() if line.startswith(r"\caption"))
    assert "synth\\_x (n=8, seed=0)" in caption and "SimSiam stand-in" in caption
    assert "LPIPS" not in caption  # not computed, but not a column of this table either
    assert "LPIPS (no AlexNet weights)" in table([run], None, "markdown", with_ci=False)


def test_ci_and_markdown(tmp_path):
    run = fake_run(tmp_path / "r", "synth_x", METHOD_ROWS)
    md = table([run], 2, "markdown", with_ci=True)
    # FID has no interval (and ranks nothing); no S3 in Table 2
    assert "**1.000**" not in md and "| 1.000 " in md and "S3" not in md.split("\n\n")[1]
    assert "**7.000 ± 0.010**" in md  # sFID's spread over splits
    assert "**100.0 ± 1.0**" in md


def test_tasks_are_ranked_in_separate_blocks(tmp_path):
    one = fake_run(tmp_path / "one", "t1", {"a": {"sFID": 1.0}, "b": {"sFID": 2.0}})
    two = fake_run(tmp_path / "two", "t2", {"a": {"sFID": 5.0}, "b": {"sFID": 4.0}})
    csv = pd.read_csv(pd.io.common.StringIO(table([one, two], 1, "csv", with_ci=False)))
    assert list(csv["task"]) == ["t1", "t1", "t2", "t2"]
    md = table([one, two], 1, "markdown", with_ci=False)
    assert (
        "**1.000**" in md and "**4.000**" in md and "**2.000**" not in md and "**5.000**" not in md
    )


def test_table3_maps_ablation_methods_to_edit_and_mask(tmp_path):
    rows = {
        "slcf": {"FR": 1.0, "COUT": 0.5},
        "other": {"FR": 0.1, "COUT": 0.9},
        "pixel": {"FR": 0.5, "COUT": 0.1},
        "latent": {"FR": 0.8, "COUT": 0.2},
    }
    csv = table([fake_run(tmp_path / "r", "t", rows)], 3, "csv", with_ci=False)
    frame = pd.read_csv(pd.io.common.StringIO(csv))
    assert list(zip(frame["Edit"], frame["Mask"])) == [
        ("Pixel", "–"),
        ("Latent", "–"),
        ("Latent", "LAG"),
    ]
    with pytest.raises(UserError, match="needs runs of"):
        table([fake_run(tmp_path / "s", "t", {"other": {"FR": 1.0}})], 3, "csv", with_ci=False)


def test_table4_reads_localization_directories(tmp_path):

    path = tmp_path / "loc"
    path.mkdir()
    (path / "run.json").write_text(json.dumps({"task": "t", "n": 64, "seed": 0}))
    pd.DataFrame(
        [
            {
                "task": "t",
                "method": "ig",
                "n": 64,
                "PF": 0.2,
                "PF_ci": 0.01,
                "AUROC": 0.8,
                "AUROC_ci": 0.02,
            },
            {
                "task": "t",
                "method": "lag",
                "n": 64,
                "PF": 0.1,
                "PF_ci": 0.01,
                "AUROC": 0.9,
                "AUROC_ci": 0.02,
            },
        ]
    ).to_csv(path / "metrics.csv", index=False)
    md = table([str(path)], 4, "markdown", with_ci=False)
    assert (
        "PF ↓" in md
        and "AUROC ↑" in md
        and "**0.100**" in md
        and "**0.900**" in md
        and "| LAG" in md
    )
    with pytest.raises(UserError, match="localization"):
        table([fake_run(tmp_path / "r", "t", METHOD_ROWS)], 4, "markdown", with_ci=False)


def test_marks_only_where_there_is_something_to_compare(tmp_path):
    one = table(
        [fake_run(tmp_path / "one", "t", {"a": {"FID": 1.0, "FR": 1.0}})],
        1,
        "markdown",
        with_ci=True,
    )
    assert "**" not in one and "<u>" not in one  # one method: nothing is best
    two = table(
        [fake_run(tmp_path / "two", "t", {"a": {"sFID": 1.0}, "b": {"sFID": 2.0}})],
        1,
        "markdown",
        False,
    )
    assert "**1.000**" in two and "<u>" not in two  # two methods: a best, no second
    tie = table(
        [fake_run(tmp_path / "tie", "t", {"a": {"FR": 1.0}, "b": {"FR": 1.0}})],
        1,
        "markdown",
        False,
    )
    assert "**" not in tie


def test_bests_need_separated_intervals_ties_are_marked_and_small_n_fid_ranks_nothing(tmp_path):
    """Runs at n = 16 with 128-dimensional features: FID and sFID rest on 16 and 8 samples, so
    they get a dagger and no mark; a best whose interval overlaps the runner-up's is a tie."""
    rows = {
        "a": {"FID": 3.0, "sFID": 9.0, "S3": 0.90, "COUT": 0.50, "FR": 1.0},
        "b": {"FID": 1.0, "sFID": 8.0, "S3": 0.905, "COUT": 0.40, "FR": 0.75},
        "c": {"FID": 2.0, "sFID": 7.0, "S3": 0.80, "COUT": 0.60, "FR": 0.875},
    }
    dims = {"feature_dims": 128, "model": "m", "stand_in": True}
    run = fake_run(tmp_path / "r", "t", rows, {"FID": dims, "sFID": dims}, n=16)
    md = table([run], 1, "markdown", with_ci=True)
    body = md.split("\n\n")[1]
    assert "1.000†" in body and "7.000 ± 0.010†" in body and "**7.000" not in body
    assert "fewer samples than the features' dimensions" in md.split("\n\n")[0]
    # S3 0.905 ± 0.01 and 0.900 ± 0.01 overlap: both tied, neither bold; 0.80 is apart
    assert "*0.905 ± 0.010*" in body and "*0.900 ± 0.010*" in body
    assert "**0.905" not in body and "*0.800" not in body
    # COUT 0.60 ± 0.01 is apart from 0.50 ± 0.01, which is apart from 0.40: best and second
    assert "**0.600 ± 0.010**" in body and "<u>0.500 ± 0.010</u>" in body


def test_per_batch_timing_has_no_interval_and_the_caption_says_what_intervals_mean(tmp_path):
    rows = {
        "a": {"FR": 1.0, "sec_per_cf": 2.0, "sFID": 3.0},
        "b": {"FR": 0.5, "sec_per_cf": 1.0, "sFID": 4.0},
    }
    md = table([fake_run(tmp_path / "r", "t", rows)], None, "markdown", with_ci=True)
    assert "| 2.00 " in md and "2.00 ±" not in md
    assert "95% bootstrap" in md and "split repetitions" in md


def test_the_shortcut_table_does_not_rank_gt_spur(tmp_path):

    rows = {
        "a": {"FR": 1.0, "GT_SPUR": 0.7},
        "b": {"FR": 0.5, "GT_SPUR": 0.2},
        "c": {"FR": 0.8, "GT_SPUR": 0.4},
    }
    md = table(
        [fake_run(tmp_path / "r", "synth_x_shortcut", rows)], "shortcut", "markdown", with_ci=False
    )
    assert "| GT_SPUR (%) " in md and "GT_SPUR (%) ↓" not in md and "FR (%) ↑" in md
    assert "**20.0**" not in md and "**100.0**" in md  # FR still ranked


def test_the_gcd_celeba_layout_shows_the_face_metrics(tmp_path):
    rows = {
        "a": {"FR": 1.0, "FVA": 0.9, "FS": 0.8, "MNAC": 1.5, "CD": 2.0},
        "b": {"FR": 0.5, "FVA": 0.2, "FS": 0.3, "MNAC": 4.0, "CD": 3.0},
    }
    md = table([fake_run(tmp_path / "r", "synth_smile", rows)], "gcd-1", "markdown", with_ci=False)
    assert "FVA (%) ↑" in md and "FS ↑" in md and "MNAC ↓" in md and "CD ↓" in md
    assert "**90.0**" in md and "**1.50**" in md  # FVA as a percentage, MNAC lower is better
