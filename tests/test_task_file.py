"""Bring-your-own task: an image folder, a TorchScript classifier and ground-truth masks declared in
a TOML file run end to end, and every bad file is a clear exit 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_task
from PIL import Image

from cfbench.api.component import ASSETS
from cfbench.cli import main

CLASSES = ("cheetah", "cougar")


def write_task(tmp_path, n_per_class=2, extra=""):
    """Synthetic cheetah/cougar images saved as an ImageFolder, the synthetic classifier exported as
    TorchScript (2 logits: the pair), causal masks, and the task file naming them."""
    task = make_task()
    samples = task.load(task.sample_ids(2 * n_per_class))
    for i, sid in enumerate(samples.sample_ids):
        name = CLASSES[task.pair.index(int(samples.labels[i]))]
        for folder, array in (
            (tmp_path / "images" / name, samples.images[i].permute(1, 2, 0)),
            (tmp_path / "masks" / "causal" / name, samples.gt_masks["causal"][i, 0]),
        ):
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(array.numpy() * 255).astype(np.uint8)).save(
                folder / f"img{sid}.png"
            )

    class PairLogits(torch.nn.Module):
        def __init__(self, classifier, pair):
            super().__init__()
            self.classifier, self.pair = classifier, list(pair)

        def forward(self, x):
            return self.classifier(x)[:, self.pair]

    scripted = torch.jit.trace(
        PairLogits(task.classifier, task.pair).eval(), torch.rand(1, 3, 64, 64)
    )
    scripted.save(str(tmp_path / "classifier.pt"))
    (tmp_path / "task.toml").write_text(f"""
name = "my_cats"
image_size = 64
[data]
folder = "images"
pair = ["cheetah", "cougar"]
[classifier]
torchscript = "classifier.pt"
[components]
autoencoder = "{ASSETS / "autoencoder"}"
diffusion_prior = "{ASSETS / "diffusion_prior"}"
rcsb_bridge = "{ASSETS / "animal_bridge"}"
[masks]
causal = "masks/causal"
{extra}""")
    return tmp_path / "task.toml"


@pytest.mark.slow
def test_task_file_runs_slcf_and_rcsb_end_to_end(tmp_path, capsys):
    path = write_task(tmp_path)
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            "--task",
            str(path),
            "--methods",
            "slcf,rcsb_a",
            "--n",
            "4",
            "--batch-size",
            "2",
            "--metrics",
            "FR,GT_IN,GT_SPUR,nfe",
            "--out",
            str(out),
            "--set",
            "rcsb_a.nfe=4",
            "--set",
            "rcsb_a.ig_steps=8",
        ]
    )
    assert rc == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["task"]) == ["my_cats", "my_cats"]
    assert metrics["GT_IN"].notna().all() and metrics["GT_SPUR"].isna().all()
    samples = pd.read_parquet(out / "samples.parquet")
    assert set(samples["sample_id"]) == {
        "cheetah/img00000",
        "cougar/img00001",
        "cheetah/img00002",
        "cougar/img00003",
    }
    assert samples["flipped"].sum() > 0
    import json

    info = json.loads((out / "run.json").read_text())
    assert "torchscript" in info["config"]["task_settings"]["task_file_content"]
    assert info["task_provenance"]["classifier"]["sha256"]
    assert "has no ground-truth spurious masks" in info["metrics_unavailable"]["GT_SPUR"]


@pytest.mark.parametrize(
    "change, message",
    [
        ("pair", "needs data.pair"),
        ("classifier", "needs exactly one of torchscript"),
        ("masks", "does not exist"),
        ("toml", "not valid TOML"),
        ("key", "unknown key"),
    ],
)
def test_bad_task_files_exit_2(tmp_path, capsys, change, message):
    path = write_task(tmp_path, n_per_class=1)
    text = path.read_text()
    text = {
        "pair": text.replace('pair = ["cheetah", "cougar"]', 'pair = ["cheetah", "lion"]'),
        "classifier": text.replace('torchscript = "classifier.pt"', ""),
        "masks": text.replace('causal = "masks/causal"', 'causal = "nowhere"'),
        "toml": text + "\n[data\n",
        "key": "colour = 3\n" + text,
    }[change]
    path.write_text(text)
    rc = main(
        [
            "run",
            "--task",
            str(path),
            "--methods",
            "slcf",
            "--n",
            "2",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert rc == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_task_files_in_the_task_folder_are_listed(tmp_path, monkeypatch, capsys):
    path = write_task(tmp_path, n_per_class=1)
    monkeypatch.setenv("CFBENCH_TASK_DIR", str(tmp_path))
    assert main(["list", "tasks"]) == 0
    assert f"your task file {path}" in capsys.readouterr().out


def test_a_classifier_with_more_outputs_than_classes_needs_their_indices(tmp_path, capsys):
    """A 6-logit classifier over cheetah/ and cougar/ folders: without output indices label 0
    would be 'cheetah' for the task and the classifier's first class for the classifier, so the
    run is refused before any work; with ``classes = {name = index}`` it runs, and indices in the
    wrong order are warned about."""
    from cfbench.tasks.task_file import FileTask

    path = write_task(tmp_path, n_per_class=2)
    task = make_task()
    torch.jit.trace(task.classifier.eval(), torch.rand(1, 3, 64, 64)).save(
        str(tmp_path / "classifier.pt")
    )
    out = tmp_path / "run"
    assert (
        main(["run", "--task", str(path), "--methods", "slcf", "--n", "2", "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err.replace("\n", " ")
    assert "has 6 outputs" in err and "classes = {cheetah = 0, cougar = 1}" in err
    assert not out.exists()
    a, b = task.pair
    text = path.read_text()
    path.write_text(text.replace("[data]", f"[data]\nclasses = {{cheetah = {a}, cougar = {b}}}"))
    mapped = FileTask(path)
    mapped.check()
    assert mapped.pair == (a, b) and "Warning" not in capsys.readouterr().err
    path.write_text(text.replace("[data]", f"[data]\nclasses = {{cheetah = {b}, cougar = {a}}}"))
    FileTask(path).check()
    assert "check that data.classes follows the classifier's output order" in (
        capsys.readouterr().err.replace("\n", " ")
    )


def test_a_forward_task_file_explains_only_the_pairs_first_class(tmp_path):
    from cfbench.tasks.task_file import FileTask

    path = write_task(tmp_path, n_per_class=2)
    path.write_text(path.read_text().replace("[data]", '[data]\ndirection = "forward"'))
    task = FileTask(path)
    ids = task.sample_ids(None)
    assert len(ids) == 2 and all(i.startswith("cheetah/") for i in ids)
    assert task.explained == (task.pair[0],)
