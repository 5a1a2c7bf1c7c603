"""``cfbench regress``: exit 0 on the baseline's own numbers, 1 on a regression, 2 on misuse."""

import json

import pandas as pd

from cfbench.cli import main


def write_run(path, fr=1.0, fid=2.0, cout=0.5, n=8, drop=()):
    path.mkdir(parents=True, exist_ok=True)
    (path / "run.json").write_text(json.dumps({"task": "synth_x", "n": n, "seed": 0}))
    row = {
        "task": "synth_x",
        "method": "slcf",
        "n": n,
        "FR": fr,
        "FID": fid,
        "COUT": cout,
        "sec_per_cf": 1.0,
    }
    pd.DataFrame([{k: v for k, v in row.items() if k not in drop}]).to_csv(
        path / "metrics.csv", index=False
    )
    return str(path)


def test_update_then_compare_same_run_passes(tmp_path, capsys):
    run, base = write_run(tmp_path / "r"), str(tmp_path / "b.json")
    assert main(["regress", run, "--baseline", base, "--update"]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["methods"]["slcf"]["FR"] == 1.0
    assert main(["regress", run, "--baseline", base]) == 0
    assert "No regression" in capsys.readouterr().out


def test_worse_beyond_tolerance_fails_in_the_metric_direction(tmp_path, capsys):
    base = str(tmp_path / "b.json")
    main(["regress", write_run(tmp_path / "r"), "--baseline", base, "--update"])
    # FR down
    assert main(["regress", write_run(tmp_path / "fr", fr=0.75), "--baseline", base]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    # FID up 25%
    assert main(["regress", write_run(tmp_path / "fid", fid=2.5), "--baseline", base]) == 1
    # within 10%
    assert main(["regress", write_run(tmp_path / "ok", fid=2.1), "--baseline", base]) == 0
    assert main(["regress", write_run(tmp_path / "up", cout=0.9, fid=1.0), "--baseline", base]) == 0
    assert "improved" in capsys.readouterr().out


def test_tolerance_override_and_missing_metric(tmp_path):
    base = str(tmp_path / "b.json")
    main(["regress", write_run(tmp_path / "r"), "--baseline", base, "--update"])
    worse = write_run(tmp_path / "fr", fr=0.75)
    assert main(["regress", worse, "--baseline", base, "--tolerance", "FR=0.3"]) == 0
    assert main(["regress", write_run(tmp_path / "m", drop=("COUT",)), "--baseline", base]) == 1


def test_misuse_exits_2(tmp_path, capsys):
    base = str(tmp_path / "b.json")
    main(["regress", write_run(tmp_path / "r"), "--baseline", base, "--update"])
    assert main(["regress", write_run(tmp_path / "n", n=16), "--baseline", base]) == 2
    assert (
        main(["regress", write_run(tmp_path / "r"), "--baseline", str(tmp_path / "none.json")]) == 2
    )
    assert (
        main(["regress", write_run(tmp_path / "r"), "--baseline", base, "--tolerance", "FR"]) == 2
    )
    assert "not comparable" in capsys.readouterr().err.replace("\n", " ")
