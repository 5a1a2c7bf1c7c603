"""`cfbench sae train`: an SAE for a task's classifier, trained on the user's data with one
command."""

import json

import torch
from safetensors.torch import load_file

from cfbench.cli import main
from cfbench.components.sae import MatryoshkaSAE


def test_sae_train_writes_a_loadable_sae_and_its_numbers(task, tmp_path, capsys):
    out = tmp_path / "sae" / "synth.safetensors"
    rc = main(
        [
            "sae",
            "train",
            "--task",
            "synth_cheetah_cougar",
            "--n",
            "64",
            "--steps",
            "50",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and f"export CFBENCH_SAE={out.resolve()}" in capsys.readouterr().out
    sae = MatryoshkaSAE.from_state_dict(load_file(str(out)))
    assert (
        sae.w_enc.shape[1] == task.classifier.fc.in_features and sae.size == 8 * sae.w_enc.shape[1]
    )
    report = json.loads((tmp_path / "sae" / "synth.safetensors.json").read_text())
    assert report["heldout_n"] == 6 and report["train_n"] == 58 and "explained_variance" in report
    with torch.no_grad():
        assert sae(torch.randn(3, sae.w_enc.shape[1])).shape == (3, sae.w_enc.shape[1])


def test_sae_train_user_errors_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for argv, message in [
        (["--task", "synth_nope", "--n", "64"], "Unknown task"),
        (["--task", "synth_cheetah_cougar", "--n", "1"], "at least 20"),
        (
            [
                "--task",
                "synth_cheetah_cougar",
                "--n",
                "64",
                "--out",
                str(blocker / "sae.safetensors"),
            ],
            "Cannot write",
        ),
    ]:
        assert main(["sae", "train", "--device", "cpu", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err.replace("\n", " ") and "Traceback" not in err
