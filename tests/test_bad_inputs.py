"""Bad input, table-driven: every row ends in exit 2 with one paragraph on stderr, no traceback, and
no change to any file that existed before (a finished run, its baseline, task files)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pytest
from torch import nn

from cfbench.catalog import METHODS
from cfbench.cli import main

TASK = "synth_cheetah_cougar"
# released-model files of the other families: (name, component role, method that needs it)
MODEL_FILES = (
    ("adm_unknown", "diffusion_prior", "cecas_no_ls"),
    ("adm_wrong_flags", "diffusion_prior", "cecas_no_ls"),
    ("adm_not_a_state_dict", "diffusion_prior", "cecas_no_ls"),
    ("bridge_wrong_flags", "rcsb_bridge", "rcsb_a"),
    ("bridge_not_a_checkpoint", "rcsb_bridge", "rcsb_a"),
    ("bridge_no_net", "rcsb_bridge", "rcsb_a"),
)
FAST = ["--set", "slcf.stage1_steps=1", "--set", "slcf.stage2_steps=1", "--metrics", "FR"]


def run(*extra, methods="slcf"):
    return ["run", "--task", TASK, "--methods", methods, "--out", "{tmp}/new", *extra]


def _bad_values(field) -> list[str]:
    """Values of the wrong type or out of range for one declared hyperparameter."""
    check, kind = field.metadata.get("check"), field.type
    if isinstance(check, tuple):
        return ["not-a-choice"]
    if "bool" in str(kind):
        return ["maybe"]
    if "int" in str(kind):
        return ["abc", "2.5"]
    if "float" in str(kind):
        return ["abc", "nan"]
    return []


def hyperparameter_rows() -> list[list[str]]:
    rows = []
    for method in ("slcf", "rcsb_a", "gcd", "cecas", "pgd"):
        params = METHODS.get(method).load().Params
        for field in dataclasses.fields(params):
            for value in _bad_values(field):
                rows.append(run("--set", f"{method}.{field.name}={value}", methods=method))
    return rows


COMMAND_ROWS = [
    run(methods="nope"),
    run(methods="slcf,nope"),
    run(methods=""),
    ["run", "--task", "synth_nope", "--methods", "slcf"],
    ["run", "--task", "", "--methods", "slcf"],
    ["run", "--methods", "slcf"],
    ["run", "--task", TASK],
    ["run", "--task", "{tmp}/missing.toml", "--methods", "slcf"],
    ["run", "--task", "{world}/tasks/not_toml.toml", "--methods", "slcf"],
    ["run", "--task", "{world}/tasks/no_pair.toml", "--methods", "slcf"],
    ["run", "--task", "{world}/tasks/no_classifier.toml", "--methods", "slcf"],
    ["run", "--task", "{world}/tasks/classes_number.toml", "--methods", "slcf"],
    ["run", "--task", "{world}/tasks/num_classes_text.toml", "--methods", "slcf"],
    ["run", "--task", "{world}/tasks/folder_is_file.toml", "--methods", "slcf"],
    ["run", "--task", "{world}/tasks/unknown_key.toml", "--methods", "slcf"],
    run("--n", "0"),
    run("--n", "-3"),
    run("--n", "abc"),
    run("--n", "2.5"),
    run("--n", "1000000000"),
    run("--seed", "-1"),
    run("--seed", "abc"),
    run("--seed", "100000000000000000"),
    run("--batch-size", "0"),
    run("--batch-size", "-2"),
    run("--batch-size", "abc"),
    run("--batch-size", ""),
    run("--batch-size", "=3"),
    run("--batch-size", "nope=3"),
    run("--device", "tpu"),
    run("--device", "cuda:7"),
    run("--device", "cpu:1"),
    run("--device", "cuda:x"),
    run("--metrics", "FR,XYZ"),
    run("--metrics", "nope"),
    run("--protocol", "nope"),
    run("--dtype", "int8"),
    run("--dtype", "diffae=half"),
    run("--dtype", "float16", "--device", "cpu"),
    run("--compile", "nope"),
    run("--set", "slcf.lr"),
    run("--set", "=1"),
    run("--set", "slcf.=1"),
    run("--set", "slcf.nope=1"),
    run("--set", "other.lr=1"),
    run("--set", "slcf.lr=-1"),
    run("--set", "slcf.lr=inf"),
    run("--shards", "4"),
    run("--shards", "0", "--launcher", "local"),
    run("--launcher", "nope"),
    run("--launcher", "slurm", "--shards", "2"),
    run("--regions", "{tmp}/no_regions"),
    run("--out", "{world}/blocker/run"),
    run("--out", "{world}/run", "--seed", "3"),  # holds another run's settings
    ["run", "--config", "{tmp}/missing.json"],
    ["run", "--config", "{world}/not_json.json"],
    ["run", "--config", "{world}/run/run.json", "--task", TASK],
    ["run", "--config", "{world}/run/run.json", "--methods", "slcf"],
    ["run", "--config", "{world}/run/run.json", "--set", "slcf.lr=0.1"],
    ["run", "--config", "{world}/empty_record/run.json"],
    ["table"],
    ["table", "{tmp}/nowhere"],
    ["table", "{world}/run", "--table", "nope"],
    ["table", "{world}/run", "--format", "pdf"],
    ["table", "{world}/empty_record"],
    ["table", "{world}/truncated_metrics"],
    ["table", "{world}/unfinished"],
    ["regress", "{tmp}/nowhere", "--baseline", "{world}/baseline.json"],
    ["regress", "{world}/run", "--baseline", "{tmp}/missing.json"],
    ["regress", "{world}/run", "--baseline", "{world}/not_json.json"],
    ["regress", "{world}/run", "--baseline", "{world}/baseline.json", "--tolerance", "FR"],
    ["regress", "{world}/run", "--baseline", "{world}/baseline.json", "--tolerance", "FR=x"],
    ["regress", "{world}/truncated_metrics", "--baseline", "{world}/baseline.json", "--update"],
    ["regress", "{world}/unfinished", "--baseline", "{world}/baseline.json"],
    ["rescore", "{tmp}/nowhere"],
    ["rescore", "{world}/run", "--protocol", "nope"],
    ["rescore", "{world}/run", "--device", "tpu"],
    ["rescore", "{world}/empty_record"],
    ["rescore", "{world}/unfinished"],
    ["rescore", "{world}/truncated_part"],
    ["rescore", "{world}/zero_png"],
    ["rescore", "{world}/missing_png"],
    ["rescore", "{world}/truncated_samples"],
    ["finalize", "{tmp}/nowhere"],
    ["finalize", "{world}/empty_record"],
    ["finalize", "{world}/truncated_part"],
    ["finalize", "{world}/zero_png"],
    ["finalize", "{world}/truncated_samples"],
    ["list", "nope"],
    ["assets", "build", "--only", "nope"],
    ["nope"],
    ["gcd-study", "--task", "synth_nope", "--out", "{tmp}/study"],
    # a wrapper whose output is not its last linear layer's: the SAE would read other outputs
    [
        "run",
        "--task",
        "{world}/tasks/head_not_output.toml",
        "--methods",
        "slcf_sae",
        "--out",
        "{tmp}/new",
    ],
    # released-model files that do not fit (the task file points GCD at each)
    *(
        ["run", "--task", f"{{world}}/tasks/{name}.toml", "--methods", m, "--out", "{tmp}/new"]
        for name, _, m in MODEL_FILES
    ),
    ["shortcut-study", "--task", "synth_nope", "--out", "{tmp}/study"],
]

ROWS = COMMAND_ROWS + hyperparameter_rows()


class PicksAfterTheHead(nn.Module):
    """Two outputs read after the synthetic classifier's six-way head (a module users write)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[:, [2, 3]]


def _model_files(folder):
    """ADM and I2SB files that must be refused before any work (``MODEL_FILES``)."""
    import json

    import torch

    from cfbench.components.adm_unet import ADMConfig, ADMUNet
    from cfbench.components.i2sb import I2SBNetwork

    flags = dict(image_size=64, num_channels=32, num_res_blocks=1, channel_mult=[1, 2])
    flags |= dict(attention_resolutions=[16], num_heads=1)
    state = ADMUNet(ADMConfig.from_flags(flags)).state_dict()
    for name in ("adm_unknown", "adm_wrong_flags", "adm_not_a_state_dict"):
        (folder / name).mkdir()
    torch.save(state, folder / "adm_unknown" / "model.pt")
    torch.save(state, folder / "adm_wrong_flags" / "model.pt")
    (folder / "adm_wrong_flags" / "config.json").write_text(
        json.dumps(flags | {"num_channels": 64})
    )
    torch.save({"weights": [1, 2]}, folder / "adm_not_a_state_dict" / "model.pt")
    (folder / "adm_not_a_state_dict" / "config.json").write_text(json.dumps(flags))
    net = I2SBNetwork(ADMConfig.from_flags(flags)).state_dict()
    for name in ("bridge_wrong_flags", "bridge_not_a_checkpoint", "bridge_no_net"):
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(json.dumps({"unet": flags}))
    torch.save({"net": net, "ema": {}}, folder / "bridge_wrong_flags" / "latest.pt")
    (folder / "bridge_wrong_flags" / "config.json").write_text(
        json.dumps({"unet": flags | {"num_channels": 64}})
    )
    (folder / "bridge_not_a_checkpoint" / "latest.pt").write_bytes(b"PK\x03 not a checkpoint")
    torch.save({"ema": {}}, folder / "bridge_no_net" / "latest.pt")


def _damage_copies(world):
    """Copies of the finished run, each damaged in one way."""

    def copy(name):
        shutil.copytree(world / "run", world / name)
        return world / name

    (copy("truncated_part") / "parts" / "slcf").iterdir().__next__().write_bytes(b"PAR1")
    next((copy("zero_png") / "images" / "slcf").glob("*.png")).write_bytes(b"")
    next((copy("missing_png") / "images" / "slcf").glob("*.png")).unlink()
    (copy("truncated_samples") / "samples.parquet").write_bytes(b"PAR1")
    (copy("truncated_metrics") / "metrics.csv").write_text("task,method\n")
    unfinished = copy("unfinished")
    (unfinished / "metrics.csv").unlink()
    (unfinished / "samples.parquet").unlink()
    (copy("empty_record") / "run.json").write_text("{}")


def _task_files(world):
    folder = world / "tasks"
    folder.mkdir()
    (folder / "images" / "cheetah").mkdir(parents=True)
    base = '[data]\nfolder = "images"\npair = ["cheetah", "cougar"]\n[classifier]\n'
    files = {
        "not_toml": "[data\n",
        "no_pair": '[data]\nfolder = "images"\n[classifier]\ntorchscript = "c.pt"\n',
        "no_classifier": base,
        "classes_number": base.replace("[data]\n", "[data]\nclasses = 5\n") + 'module = "x"\n',
        "num_classes_text": base + 'torchvision = "resnet18"\nweights = "w.pth"\n'
        'num_classes = "six"\n',
        "folder_is_file": base.replace('folder = "images"', 'folder = "w.pth"')
        + 'torchscript = "w.pth"\n',
        "unknown_key": "colour = 3\n" + base,
    }
    import torch

    torch.jit.script(torch.nn.Conv2d(3, 2, 1)).save(str(folder / "c.pt"))
    _model_files(folder)
    base_with = (
        '[data]\nfolder = "images"\nclasses = ["cheetah", "cougar"]\npair = ["cheetah", '
        '"cougar"]\n[classifier]\ntorchscript = "c.pt"\n[components]\n'
    )
    for name, role, _ in MODEL_FILES:
        target = f"{name}/model.pt" if role == "diffusion_prior" else name
        files[name] = base_with + f'{role} = "{target}"\n'
    from cfbench.api.component import ASSETS
    from cfbench.catalog import COMPONENTS

    synthetic = (
        COMPONENTS.get("classifier").load().load(ASSETS / "classifier.safetensors", {}, True)
    )
    torch.save(PicksAfterTheHead(synthetic), folder / "wrapper.pt")
    files["head_not_output"] = (
        '[data]\nfolder = "images"\nclasses = ["cheetah", "cougar"]\npair = ["cheetah", '
        f'"cougar"]\n[classifier]\nmodule = "wrapper.pt"\n[components]\nsae = "{ASSETS}/sae.'
        f'safetensors"\nautoencoder = "{ASSETS}/autoencoder"\n'
    )
    (folder / "w.pth").write_bytes(b"x")
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    argv = ["run", "--task", TASK, "--methods", "slcf", "--n", "2", "--out", str(root / "run")]
    assert main(argv + FAST) == 0
    base = ["regress", str(root / "run"), "--baseline", str(root / "baseline.json"), "--update"]
    assert main(base) == 0
    (root / "not_json.json").write_text("{ nope")
    (root / "blocker").write_text("a file where --out wants a folder")
    _damage_copies(root)
    _task_files(root)
    return root


def _files(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".lock"
    }


@pytest.mark.parametrize("argv", ROWS, ids=[" ".join(r)[:90] for r in ROWS])
def test_bad_input_is_exit_2_in_one_paragraph_and_changes_nothing(argv, world, tmp_path, capsys):
    before = _files(world)
    filled = [a.format(world=world, tmp=tmp_path) for a in argv]
    try:
        status = main(filled)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert err and "Traceback" not in err and "\n\n" not in err, err
    assert _files(world) == before
    assert not (tmp_path / "new").exists() and not (tmp_path / "study").exists()
    assert len(ROWS) >= 150
