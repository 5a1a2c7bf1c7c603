#!/usr/bin/env python3
"""Set up `.venv/` (if missing or out of date) and run the benchmark or the tests.

    python3 dev.py bench   # default benchmark: SLCF on the three synthetic tasks (offline)
    python3 dev.py test    # the test suite

Only the standard library is used here, so this works on a machine with nothing but Python.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
STAMP = VENV / ".cfbench-install"
SYNTH_TASKS = ("synth_zebra_sorrel", "synth_cheetah_cougar", "synth_egyptian_persian")


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and (BIN / "cfbench").exists():
        return
    if not (BIN / "python").exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    print("Installing cfbench and its pinned dependencies into .venv (torch comes from local disk "
          "where available) ...", flush=True)
    # The distribution was called "cfbench" before 0.2 (a name taken on the package index): drop it.
    subprocess.call([str(BIN / "python"), "-m", "pip", "uninstall", "-q", "-y", "cfbench"],
                    stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    subprocess.check_call([str(BIN / "python"), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"])
    STAMP.write_text(wanted)


def bench(extra: list[str]) -> int:
    runs = []
    for task in SYNTH_TASKS:
        out = ROOT / "results" / "runs" / f"quickstart-{task}"
        cmd = [str(BIN / "cfbench"), "run", "--task", task, "--methods", "slcf", "--n", "32",
               "--batch-size", "32", "--out", str(out), *extra]
        print("$ " + " ".join(cmd), flush=True)
        if (rc := subprocess.call(cmd, cwd=ROOT)) != 0:
            return rc
        runs.append(str(out))
    print("\nAll three synthetic tasks (FR and GT_IN in %):", flush=True)
    subprocess.call([str(BIN / "cfbench"), "table", *runs, "--format", "markdown", "--ci"], cwd=ROOT)
    print(f"\nRun directories: {', '.join(runs)}\nLaTeX: .venv/bin/cfbench table {' '.join(runs)} --format latex")
    return 0


def test(extra: list[str]) -> int:
    return subprocess.call([str(BIN / "python"), "-m", "pytest", "-q", *extra], cwd=ROOT)


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("bench", "test"):
        print(__doc__)
        return 2
    ensure_venv()
    return {"bench": bench, "test": test}[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
