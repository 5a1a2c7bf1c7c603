"""Scaling out: a torchrun job and a submitit array equal a single process; a lost rank's samples
are redone without touching the other rank's; per-method batch sizes; out-of-memory advice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from cfbench.cli import main, parse_batch_sizes
from cfbench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# --batch-size 1 and one thread per process: a sample sees the same kernels alone or sharded, so the
# comparison is exact (batch composition and thread count are the only sources of float round-off);
# an odd n gives the ranks unequal shares
ARGS = [
    "--task",
    "synth_cheetah_cougar",
    "--methods",
    "slcf",
    "--n",
    "7",
    "--batch-size",
    "1",
    "--metrics",
    "FR,COUT,S3,GT_IN,nfe",
    "--device",
    "cpu",
    "--set",
    "slcf.stage2_steps=40",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def readme_torchrun_command() -> list[str]:
    """The README's torchrun command, as written there."""
    text = (ROOT / "README.md").read_text()
    line = next(ln.strip() for ln in text.splitlines() if ln.strip().startswith("torchrun "))
    return line.split()


def _single(out: Path) -> Path:
    subprocess.run(
        [str(BIN / "cfbench"), "run", *ARGS, "--out", str(out)],
        check=True,
        env=ENV,
        cwd=ROOT,
        capture_output=True,
    )
    return out


def _torchrun(out: Path) -> subprocess.CompletedProcess:
    cmd = readme_torchrun_command()
    assert cmd[0] == "torchrun" and "-m" in cmd and "cfbench" in cmd
    prefix = cmd[: cmd.index("cfbench") + 1] + (["--"] if "--" in cmd else [])
    cmd = [str(BIN / "torchrun"), "--standalone", *prefix[1:], "run", *ARGS, "--out", str(out)]
    return subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=900)


def _same(a: Path, b: Path) -> None:
    cols = [
        "sample_id",
        "source",
        "target",
        "pred_before",
        "pred_after",
        "flipped",
        "steps",
        "nfe",
        "COUT",
        "S3",
        "GT_IN",
    ]
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "samples.parquet")[cols], pd.read_parquet(b / "samples.parquet")[cols]
    )
    ma, mb = (
        pd.read_csv(p / "metrics.csv").drop(columns=["sec_per_cf", "sec_per_cf_ci"]) for p in (a, b)
    )
    pd.testing.assert_frame_equal(ma, mb)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return _single(tmp_path_factory.mktemp("single") / "run")


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process_and_a_lost_rank_is_redone(single, tmp_path):
    out = tmp_path / "ddp"
    done = _torchrun(out)
    assert done.returncode == 0, done.stderr[-2000:]
    _same(single, out)
    import json

    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    # rank 1 (odd samples) "died" before committing: its parts are gone and nothing was summarised
    parts = sorted((out / "parts" / "slcf").glob("*.parquet"))
    lost = [p for p in parts if int(pd.read_parquet(p)["sample_id"][0]) % 2 == 1]
    kept = {p: p.stat().st_mtime_ns for p in parts if p not in lost}
    for p in lost:
        p.unlink()
    (out / "metrics.csv").unlink()
    done = _torchrun(out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # rank 0's work untouched
    assert len(list((out / "parts" / "slcf").glob("*.parquet"))) == len(parts)
    _same(single, out)


@pytest.mark.slow
def test_submitit_local_shards_equal_one_process(single, tmp_path):
    out = tmp_path / "shards"
    done = subprocess.run(
        [
            str(BIN / "cfbench"),
            "run",
            *ARGS,
            "--out",
            str(out),
            "--launcher",
            "local",
            "--shards",
            "2",
        ],
        env=ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"Submitted 2 shard\(s\)", done.stdout)
    _same(single, out)


def test_batch_size_per_method():
    assert parse_batch_sizes("16") == (16, {})
    assert parse_batch_sizes("slcf=32,rcsb_a=4") == (16, {"slcf": 32, "rcsb_a": 4})
    assert parse_batch_sizes("8,rcsb_a=2") == (8, {"rcsb_a": 2})
    with pytest.raises(UserError, match="METHOD=N"):
        parse_batch_sizes("slcf=big")


def test_unknown_method_in_batch_size_and_cuda_oom_are_exit_2(tmp_path, monkeypatch, capsys):
    rc = main(
        [
            "run",
            "--task",
            "synth_cheetah_cougar",
            "--methods",
            "slcf",
            "--n",
            "2",
            "--batch-size",
            "rcsb=2",
            "--out",
            str(tmp_path / "a"),
        ]
    )
    assert rc == 2 and "not in --methods" in capsys.readouterr().err

    from cfbench.methods.slcf import SLCF

    def oom(self, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(SLCF, "generate", oom)
    rc = main(
        [
            "run",
            "--task",
            "synth_cheetah_cougar",
            "--methods",
            "slcf",
            "--n",
            "2",
            "--batch-size",
            "slcf=2",
            "--metrics",
            "FR",
            "--out",
            str(tmp_path / "b"),
        ]
    )
    err = capsys.readouterr().err.replace("\n", " ")
    assert (
        rc == 2
        and "out of memory in method 'slcf' at a batch of 2" in err
        and "--batch-size slcf=1" in err
    )


def test_python_dash_m_cfbench_accepts_a_leading_separator():
    done = subprocess.run(
        [sys.executable, "-m", "cfbench", "--", "list", "tasks"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0 and "synth_cheetah_cougar" in done.stdout


@pytest.mark.slow
def test_a_torchrun_job_refused_a_busy_directory_ends_on_every_rank_with_exit_2(tmp_path):
    """Rank 0 once exited 2 while rank 1 died in a gloo collective: now rank 0 tells every rank."""
    from cfbench.results import RunDir

    out = tmp_path / "busy"
    with RunDir(out).lock():
        done = _torchrun(out)
    # torchrun reports failed children with its own traceback, and may SIGTERM a rank that is
    # still exiting once the first has failed: every rank says why, and exits 2 unless killed so
    codes = set(re.findall(r"exitcode\s*: (-?\d+)", done.stderr))
    assert "2" in codes and codes <= {"2", "-15"}, done.stderr[-3000:]
    said = re.findall(r"is being written by", done.stderr.replace("\n", " "))
    assert len(said) == 2 and "gloo" not in done.stderr.lower(), done.stderr[-3000:]
