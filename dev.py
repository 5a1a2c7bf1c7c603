#!/usr/bin/env python3
"""Set up `.venv/` (if missing or out of date) and run the benchmark or the tests.

    python3 dev.py bench   # the four method families compared on the synthetic tasks (offline)
    python3 dev.py bench --faces   # ... and on the synthetic face tasks
    python3 dev.py test    # lint (ruff, import contracts), then the test suite
    python3 dev.py lint    # lint only

Only the standard library is used here, so this works on a machine with nothing but Python.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if sys.platform == "win32" else "bin")
STAMP = VENV / ".cfbench-install"
SYNTH_TASKS = ("synth_zebra_sorrel", "synth_cheetah_cougar", "synth_egyptian_persian")
FACE_TASKS = ("synth_smile", "synth_age")  # `bench --faces`: twice the quick start's time
BENCH_METHODS = ("slcf", "rcsb_a", "gcd", "cecas")  # one per family
# no face bridge is shipped yet (it comes with the face-asset rebuild): RCSB's SGM ablation there
FACE_METHODS = ("slcf", "rcsb_sgm_a", "gcd", "cecas")


def ensure_venv() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and (BIN / "cfbench").exists():
        return
    if not (BIN / "python").exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    print(
        "Installing cfbench and its pinned dependencies into .venv (torch comes from local disk "
        "where available) ...",
        flush=True,
    )
    # The distribution was called "cfbench" before 0.2 (a name taken on the package index): drop it.
    subprocess.call(
        [str(BIN / "python"), "-m", "pip", "uninstall", "-q", "-y", "cfbench"],
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    subprocess.check_call(
        [str(BIN / "python"), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"]
    )
    STAMP.write_text(wanted)


def bench(extra: list[str]) -> int:
    """The four method families side by side on each synthetic task: one run per task, one
    comparison table, one figure per task; ``--faces`` adds the synthetic face tasks."""
    started = time.monotonic()
    tasks = SYNTH_TASKS + (FACE_TASKS if "--faces" in extra else ())
    extra = [a for a in extra if a != "--faces"]
    runs = []
    for task in tasks:
        out = ROOT / "results" / "runs" / f"quickstart-{task}"
        cmd = [
            str(BIN / "cfbench"),
            "run",
            "--task",
            task,
            "--methods",
            ",".join(FACE_METHODS if task in FACE_TASKS else BENCH_METHODS),
            "--n",
            "16",
            "--batch-size",
            "16",
            "--out",
            str(out),
            *extra,
        ]
        print("$ " + " ".join(cmd), flush=True)
        if (rc := subprocess.call(cmd, cwd=ROOT)) != 0:
            return rc
        runs.append(str(out))
    print(
        f"\nThe four method families ({', '.join(BENCH_METHODS)}) on the synthetic tasks:",
        flush=True,
    )
    subprocess.call(
        [
            str(BIN / "cfbench"),
            "table",
            *runs,
            "--table",
            "compare",
            "--format",
            "markdown",
            "--ci",
        ],
        cwd=ROOT,
    )
    figures = "\n".join(f"  {r}/figures/compare.png" for r in runs)
    minutes = (time.monotonic() - started) / 60
    print(
        f"\n{len(runs)} runs in {minutes:.1f} min.\n"
        f"Figures (a row per method: original, counterfactual, difference, mask):\n{figures}\n"
        f"Run directories: {', '.join(runs)}\nA paper table: .venv/bin/cfbench table "
        f"{' '.join(runs)} --table 1 --format latex"
    )
    return 0


def lint(extra: list[str]) -> int:
    """ruff (lint and format) and the import contracts of pyproject.toml."""
    status = subprocess.call([str(BIN / "ruff"), "check", "--quiet", "."], cwd=ROOT)
    status |= subprocess.call([str(BIN / "ruff"), "format", "--check", "--quiet", "."], cwd=ROOT)
    return status | import_contracts()


def import_contracts() -> int:
    """lint-imports with the contracts of pyproject.toml (import-linter reads the package from disk:
    the plugin folders are linked into cfbench/ as cfbench/methods, ...; tests/test_contracts.py
    checks that the core contract lists every core module)."""
    return subprocess.call([str(BIN / "lint-imports"), "--no-cache"], cwd=ROOT)


def test(extra: list[str]) -> int:
    status = lint([])
    return subprocess.call([str(BIN / "python"), "-m", "pytest", "-q", *extra], cwd=ROOT) | status


def main() -> int:
    commands = {"bench": bench, "test": test, "lint": lint}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__)
        return 2
    ensure_venv()
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
