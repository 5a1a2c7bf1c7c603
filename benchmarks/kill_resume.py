"""SIGKILL a run at random points (generation, part writing, finalisation, inside GCD's direction
fit, inside CECAS) until it finishes, truncate one committed part file as a torn write would, and
compare everything with an uninterrupted run: samples.parquet, metrics.csv and every PNG byte.

    .venv/bin/python benchmarks/kill_resume.py --kills 12

Timings are not compared (``seconds``, ``fit_seconds``, ``sec_per_cf``); everything else must be
equal.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

CLI = [sys.executable, "-m", "cfbench.cli"]


def command(out: Path, n: int = 16) -> list[str]:
    return CLI + [
        "run",
        "--task",
        "synth_cheetah_cougar",
        "--methods",
        "slcf,rcsb_a,gcd,cecas",
        "--n",
        str(n),
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--seed",
        "0",
        "--set",
        "slcf.stage1_steps=3",
        "--set",
        "slcf.stage2_steps=40",
        "--set",
        "rcsb_a.nfe=10",
        "--set",
        "rcsb_a.ig_steps=8",
        *("--set", "gcd.n_proxy=128", "--set", "gcd.proxy_epochs=10", "--set", "gcd.k=3"),
        *("--set", "cecas.iterations=3", "--set", "cecas.refine=false"),
        "--out",
        str(out),
    ]


def collect(stream, into: bytearray) -> None:
    for chunk in iter(lambda: stream.read1(4096), b""):
        into.extend(chunk)


def snapshot(run: Path) -> dict:
    samples = pd.read_parquet(run / "samples.parquet").drop(columns=["seconds", "fit_seconds"])
    metrics = pd.read_csv(run / "metrics.csv").drop(columns=["sec_per_cf", "sec_per_cf_ci"])
    pngs = {
        p.relative_to(run).as_posix(): p.read_bytes()
        for p in sorted(run.rglob("*.png"))
        if p.parts[-2] != "figures" and "damaged" not in p.relative_to(run).parts
    }
    return {"samples": samples, "metrics": metrics, "pngs": pngs}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=16, help="samples (per method)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    t0 = time.monotonic()
    subprocess.run(command(root / "whole", args.n), check=True, capture_output=True)
    duration = time.monotonic() - t0
    print(f"uninterrupted run: {duration:.1f} s")
    cut = root / "cut"
    total = sum(1 for _ in (root / "whole").rglob("parts/*/*.parquet"))

    def parts() -> int:
        return sum(1 for _ in cut.rglob("parts/*/*.parquet"))

    triggers = {  # when to kill; GCD's fit first: it is short and precedes every sample
        # GCD's proxy data being rendered: its progress line is on stderr, its fit.json not yet
        "gcd_fit": lambda start, t: (
            b"proxy data" in start["stderr"] and not (cut / "fitted" / "gcd" / "fit.json").exists()
        ),
        "time": lambda start, t: t >= start["delay"],
        "in_cecas": lambda start, t: len(list(cut.glob("images/cecas/*.png"))) > start["cecas"],
        "after_part": lambda start, t: parts() > start["parts"],
        "finalising": lambda start, t: (
            (cut / "samples.parquet").exists()
            and (cut / "samples.parquet").stat().st_mtime > start["wall"]
        ),
    }
    kills, attempts, log = 0, 0, []
    while True:  # kill at each trigger in turn until --kills, then let it finish
        proc = subprocess.Popen(
            command(cut, args.n), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        stderr = bytearray()  # read as it comes, so a trigger can see the progress lines
        threading.Thread(target=collect, args=(proc.stderr, stderr), daemon=True).start()
        # by attempt, not by kill: a trigger that missed gives way to the next one
        mode = list(triggers)[attempts % len(triggers)] if kills < args.kills else None
        attempts += 1
        if mode == "after_part" and parts() == total:
            mode = "time"  # nothing left to commit: kill at a random time instead
        if mode == "gcd_fit" and (cut / "fitted" / "gcd" / "fit.json").exists():
            mode = "time"  # the fit is done
        start = {
            "delay": rng.uniform(2.0, 0.6 * duration),
            "parts": parts(),
            "wall": time.time(),
            "cecas": len(list(cut.glob("images/cecas/*.png"))),
            "stderr": stderr,
        }
        t_start = time.monotonic()
        while (
            mode and proc.poll() is None and not triggers[mode](start, time.monotonic() - t_start)
        ):
            time.sleep(0.02)
        if proc.poll() is None and mode:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            log.append(
                {
                    "trigger": mode,
                    "after_s": round(time.monotonic() - t_start, 1),
                    "parts_committed": parts(),
                    "samples_written": (cut / "samples.parquet").exists(),
                    "metrics_written": (cut / "metrics.csv").exists(),
                }
            )
            kills += 1
            continue
        if proc.wait() != 0:
            print(bytes(stderr).decode()[-2000:])
            return 1
        if mode is None:
            break
        log.append({"trigger": mode, "missed": "the run finished first"})  # not counted as a kill
        break  # the run is complete: nothing is left to interrupt (raise --n for more kills)
    # a torn write: the newest committed part file cut short; the resumed run must redo its batch
    newest = max(cut.rglob("parts/*/*.parquet"), key=lambda p: p.stat().st_mtime)
    newest.write_bytes(newest.read_bytes()[:64])
    repaired = subprocess.run(command(cut, args.n), capture_output=True, text=True)
    if repaired.returncode != 0 or "Moved aside" not in repaired.stderr:
        print(repaired.stderr[-2000:])
        return 1
    log.append({"trigger": "truncated part file", "repaired": newest.relative_to(cut).as_posix()})
    whole, cut = snapshot(root / "whole"), snapshot(root / "cut")
    pd.testing.assert_frame_equal(whole["samples"], cut["samples"])
    pd.testing.assert_frame_equal(whole["metrics"], cut["metrics"])
    same_pngs = whole["pngs"] == cut["pngs"]
    leftovers = [p.name for p in (root / "cut").rglob("*.tmp")]
    report = {
        "kills": sum("missed" not in e for e in log),
        "kill_log": log,
        "pngs_compared": len(whole["pngs"]),
        "pngs_equal": same_pngs,
        "samples_equal": True,
        "metrics_equal": True,
        "temporaries_left": leftovers,
    }
    print(json.dumps(report, indent=2))
    return 0 if same_pngs and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
