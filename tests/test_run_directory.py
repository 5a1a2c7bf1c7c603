"""Run directories that survive anything: one writer, no duplicates, no orphans, shareable files,
and a clear exit 2 for every bad input (checked before work, leaving earlier results untouched)."""

import errno
import json
import os
import stat

import pandas as pd
import pytest

from cfbench.cli import main
from cfbench.results import RunDir
from cfbench.runner import Runner, RunSpec

FAST = ["--set", "slcf.stage1_steps=2", "--set", "slcf.stage2_steps=3", "--metrics", "FR,GT_IN"]


def argv(out, *extra):
    return [
        "run",
        "--task",
        "synth_cheetah_cougar",
        "--methods",
        "slcf",
        "--n",
        "4",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
        *FAST,
        *extra,
    ]


def test_a_second_writer_is_told_who_holds_the_directory(tmp_path, capsys):
    with RunDir(tmp_path / "r").lock():
        assert main(argv(tmp_path / "r")) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "is being written by" in err and f"pid {os.getpid()}" in err
    assert main(argv(tmp_path / "r")) == 0  # released: the next writer proceeds


def test_overlapping_parts_from_another_batch_size_count_each_sample_once(tmp_path):
    assert main(argv(tmp_path / "a")) == 0
    assert main(argv(tmp_path / "b", "--batch-size", "4")) == 0
    # as if a writer with batch size 4 had added it
    for part in (tmp_path / "b" / "parts" / "slcf").iterdir():
        (tmp_path / "a" / "parts" / "slcf" / part.name).write_bytes(part.read_bytes())
    (tmp_path / "a" / "metrics.csv").unlink()  # ask for the summary again
    assert main(argv(tmp_path / "a")) == 0
    samples = pd.read_parquet(tmp_path / "a" / "samples.parquet")
    assert len(samples) == 4 and samples["sample_id"].is_unique
    assert pd.read_csv(tmp_path / "a" / "metrics.csv").loc[0, "n"] == 4


def test_default_directories_started_in_the_same_second_differ(tmp_path, monkeypatch):
    from cfbench import guard

    monkeypatch.setattr(guard, "DEFAULT_ROOT", tmp_path / "runs")
    spec = dict(task="synth_cheetah_cougar", methods=["slcf"], n=2, device="cpu")
    first, second = Runner(RunSpec(**spec, seed=1)), Runner(RunSpec(**spec, seed=2))
    assert (
        first.run.root != second.run.root and first.run.root.is_dir() and second.run.root.is_dir()
    )


def test_orphan_temporaries_are_swept_on_resume_and_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert main(argv(tmp_path / "r")) == 0
        # as if killed while finishing (a finished run is left alone)
        record = tmp_path / "r" / "run.json"
        record.write_text(json.dumps(json.loads(record.read_text()) | {"finished": False}))
        orphans = [
            tmp_path / "r" / "images" / "slcf" / ".00000.png.x1y2.tmp",
            tmp_path / "r" / "parts" / "slcf" / ".abc.parquet.x1y2.tmp",
        ]
        for orphan in orphans:
            orphan.write_bytes(b"torn")
        assert main(argv(tmp_path / "r")) == 0
        assert not any(o.exists() for o in orphans)
        for name in (
            "run.json",
            "samples.parquet",
            "metrics.csv",
            "images/slcf/00000.png",
            "figures/triplets_slcf.png",
        ):
            mode = stat.S_IMODE((tmp_path / "r" / name).stat().st_mode)
            assert mode & 0o044 == 0o044, (name, oct(mode))  # group and others can read
    finally:
        os.umask(old)


def test_parts_without_run_json_and_a_damaged_run_json_are_refused(tmp_path, capsys):
    assert main(argv(tmp_path / "r")) == 0
    (tmp_path / "r" / "run.json").unlink()
    assert main(argv(tmp_path / "r", "--seed", "6")) == 2
    assert "no run.json" in capsys.readouterr().err
    (tmp_path / "r" / "run.json").write_text("{ not json")
    assert main(argv(tmp_path / "r")) == 2
    assert "damaged" in capsys.readouterr().err
    (tmp_path / "r" / "run.json").write_text("{}")  # JSON, but not a run record
    for command in (["rescore", str(tmp_path / "r")], ["finalize", str(tmp_path / "r")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "not hold a cfbench run record" in err.replace("\n", " ") and "Traceback" not in err


def test_a_full_disk_is_a_user_error_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    import cfbench.batches as batches

    original = RunDir.write_part

    def full(self, method, rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunDir, "write_part", full)
    assert main(argv(tmp_path / "r")) == 2
    assert "full" in capsys.readouterr().err and not list((tmp_path / "r").rglob("*.tmp"))
    monkeypatch.setattr(RunDir, "write_part", original)
    assert batches and main(argv(tmp_path / "r")) == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--device", "mps"], "not supported"),
        (["--device", "xpu"], "not supported"),
        (["--set", "slcf.lr=-1"], "lr must be > 0"),
        (["--set", "slcf.lr=nan"], "finite"),
    ],
)
def test_bad_run_inputs_exit_2_before_any_work(tmp_path, capsys, extra, message):
    assert main(argv(tmp_path / "r", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ") and "Traceback" not in err
    assert not (tmp_path / "r" / "run.json").exists()


def test_a_corrupt_region_png_is_found_before_any_work(tmp_path, capsys):
    regions = tmp_path / "regions"
    regions.mkdir()
    for i in range(4):
        (regions / f"{i:05d}.png").write_bytes(b"not a png")
    rc = main(
        [
            "run",
            "--task",
            "synth_cheetah_cougar",
            "--methods",
            "rcsb",
            "--n",
            "4",
            "--device",
            "cpu",
            "--regions",
            str(regions),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 2 and "not a readable image" in capsys.readouterr().err.replace("\n", " ")
    assert not (tmp_path / "r").exists()


def test_table_and_regress_on_damaged_inputs_exit_2(tmp_path, capsys):
    assert main(argv(tmp_path / "r")) == 0
    good = (tmp_path / "r" / "metrics.csv").read_text()
    (tmp_path / "r" / "metrics.csv").write_text("")
    assert main(["table", str(tmp_path / "r")]) == 2
    (tmp_path / "r" / "metrics.csv").write_text(good)
    (tmp_path / "b").mkdir()
    assert main(["regress", str(tmp_path / "r"), "--baseline", str(tmp_path / "b")]) == 2
    (tmp_path / "bad.json").write_text('{"methods": {"slcf": {"FR": "high"}}}')
    assert main(["regress", str(tmp_path / "r"), "--baseline", str(tmp_path / "bad.json")]) == 2
    (tmp_path / "r" / "run.json").write_text("[]")
    assert main(["table", str(tmp_path / "r")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_bad_setting_of_the_second_method_fails_before_the_first_runs(tmp_path, capsys):
    rc = main(
        [
            "run",
            "--task",
            "synth_cheetah_cougar",
            "--methods",
            "pixel,slcf",
            "--n",
            "2",
            "--device",
            "cpu",
            "--set",
            "slcf.stage2_steps=0",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 2 and "stage2_steps must be at least 1" in capsys.readouterr().err.replace(
        "\n", " "
    )
    assert not (tmp_path / "r").exists()


def test_a_baseline_with_non_numeric_tolerances_exits_2(tmp_path):
    assert main(argv(tmp_path / "r")) == 0
    (tmp_path / "b.json").write_text(
        '{"methods": {"slcf": {"FR": 1.0}}, "tolerances": {"FR": {"abs": "x", "rel": 0}}}'
    )
    assert main(["regress", str(tmp_path / "r"), "--baseline", str(tmp_path / "b.json")]) == 2


@pytest.mark.slow
def test_a_queued_run_with_other_settings_cannot_take_the_directory_over(tmp_path):
    """Two processes start on one empty --out with --wait and different settings while the
    directory is locked; when it is released the first to get it runs, the second is refused
    (exit 2) instead of adding samples made with other settings; run.json says what made them."""
    import subprocess
    import sys

    out = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "cfbench",
        "run",
        "--task",
        "synth_cheetah_cougar",
        "--methods",
        "slcf",
        "--n",
        "2",
        "--batch-size",
        "1",
        "--metrics",
        "FR",
        "--out",
        str(out),
        "--wait",
        "--set",
        "slcf.stage1_steps=2",
        "--set",
        "slcf.stage2_steps=3",
    ]
    with RunDir(out).lock():
        procs = [
            subprocess.Popen(base + ["--set", f"slcf.lr={lr}"], stderr=subprocess.PIPE, text=True)
            for lr in (0.01, 0.05)
        ]
        waiting = [
            next(line for line in iter(p.stderr.readline, "") if "Waiting" in line) for p in procs
        ]  # both queue behind the lock
    results = [(p.wait(), p.stderr.read()) for p in procs]
    assert all("Waiting for" in line for line in waiting)
    assert sorted(rc for rc, _ in results) == [0, 2]
    refused = next(err for rc, err in results if rc == 2)
    assert "different settings" in refused and "Traceback" not in refused
    winner = (0.01, 0.05)[[rc for rc, _ in results].index(0)]
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["methods"]["slcf"]["lr"] == winner and info["finished"]
    assert len(pd.read_parquet(out / "samples.parquet")) == 2


def test_damaged_files_are_named_refused_and_repaired_by_resuming(tmp_path, capsys):
    """A truncated part file, an undecodable committed PNG and a truncated summary: finalize and
    rescore name them and exit 2; resuming moves them aside, recomputes exactly those batches, and
    ends with the uninterrupted run's samples and metrics."""
    clean = tmp_path / "clean"
    assert main(argv(clean)) == 0
    want = pd.read_parquet(clean / "samples.parquet").drop(columns=["sec_per_cf"], errors="ignore")
    damages = {
        "part": lambda d: (p := sorted((d / "parts" / "slcf").iterdir())[0]).write_bytes(
            p.read_bytes()[:20]
        ),
        "png": lambda d: sorted((d / "images" / "slcf").glob("*.png"))[-1].write_bytes(b""),
        "summary": lambda d: (d / "samples.parquet").write_bytes(b"PAR1"),
    }
    for kind, damage in damages.items():
        run = tmp_path / kind
        import shutil

        shutil.copytree(clean, run)
        damage(run)
        capsys.readouterr()
        for command in (["finalize", str(run)], ["rescore", str(run)]):
            assert main(command) == 2
            err = capsys.readouterr().err
            assert "is damaged" in err and "Traceback" not in err
        assert main(argv(run)) == 0
        assert "Moved aside" in capsys.readouterr().err
        got = pd.read_parquet(run / "samples.parquet").drop(columns=["sec_per_cf"], errors="ignore")
        timing = [c for c in got.columns if c.startswith("sec") or c == "seconds"]
        pd.testing.assert_frame_equal(got.drop(columns=timing), want.drop(columns=timing))
        assert (run / "damaged").is_dir()
