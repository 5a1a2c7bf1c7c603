"""``--dtype`` reaches the generative networks, run.json records it, ``--config`` repeats it."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from cfbench.cli import main

FAST = ["--set", "rcsb_sgm_a.steps=5", "--set", "rcsb_sgm_a.ig_steps=4", "--metrics", "FR"]
BASE = ["run", "--task", "synth_cheetah_cougar", "--methods", "rcsb_sgm_a", "--n", "2", *FAST]


def _images(run) -> list[np.ndarray]:
    folder = run / "images" / "rcsb_sgm_a"
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_bfloat16_changes_the_prior_is_recorded_and_repeats_from_run_json(tmp_path):
    assert main([*BASE, "--out", str(tmp_path / "f32")]) == 0
    assert main([*BASE, "--dtype", "bfloat16", "--out", str(tmp_path / "bf16")]) == 0
    recorded = json.loads((tmp_path / "bf16" / "run.json").read_text())
    assert recorded["config"]["numerics"]["dtype"] == "bfloat16"
    assert "numerics" not in json.loads((tmp_path / "f32" / "run.json").read_text())["config"]
    f32, bf16 = _images(tmp_path / "f32"), _images(tmp_path / "bf16")
    assert any(not np.array_equal(a, b) for a, b in zip(f32, bf16))  # the prior ran in bfloat16
    again = tmp_path / "again"
    assert main(["run", "--config", str(tmp_path / "bf16" / "run.json"), "--out", str(again)]) == 0
    assert json.loads((again / "run.json").read_text())["config"]["numerics"]["dtype"] == "bfloat16"
    assert all(np.array_equal(a, b) for a, b in zip(bf16, _images(again)))
