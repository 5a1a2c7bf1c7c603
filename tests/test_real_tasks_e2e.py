"""Real tasks end to end on tiny fake data with randomly initialised stand-in weights.

Each dataset is written in its documented layout and each weight where its loader looks (see
``real_fixtures``), then the CLI runs every registered method through generation, finalisation,
``cfbench table`` and ``cfbench regress``, as a user would.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
import real_fixtures as fake

from cfbench.catalog import METHODS
from cfbench.cli import main
from cfbench.results import png_path
from cfbench.runner import Runner

README = Path(__file__).resolve().parents[1] / "README.md"
# Tiny step counts for every method family, so a run takes seconds.
FAST = {
    "slcf": ["stage1_steps=2", "stage2_steps=3", "ig_steps=2"],
    "rcsb": ["ig_steps=2", "steps=3", "nfe=2"],
    "gcd": [
        "n_proxy=16",
        "k=2",
        "encode_steps=1",
        "decode_steps=1",
        "search_steps=1",
        "proxy_epochs=2",
        "lig_path=2",
    ],
    "cecas": ["iterations=1", "respacing=10"],
}


def fast_settings(methods: list[str]) -> list[str]:
    args = []
    for m in methods:
        family = METHODS.get(m).target.rsplit(":", 1)[1].lower()
        args += [a for s in FAST[family] for a in ("--set", f"{m}.{s}")]
    return args


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    fake.resnet50_weights(root / "torch")
    return {
        "TORCH_HOME": root / "torch",
        "CFBENCH_AUTOENCODER": fake.autoencoder(root / "ae"),
        "CFBENCH_DIFFUSION_PRIOR": fake.adm(root / "adm_imagenet", "imagenet"),
        "CFBENCH_RCSB_BRIDGE": fake.bridge(root / "bridge"),
        "adm_celeba": fake.adm(root / "adm_celeba", "celeba"),
        "CFBENCH_DIFFAE": fake.diffae(root / "diffae"),
        "celeba": fake.scripted_classifier(root / "celeba.pt", 2),
        "cub": fake.scripted_classifier(root / "cub.pt", 200),
    }


@pytest.fixture
def real_env(weights, tmp_path, monkeypatch):
    """Environment of a user with the stand-in weights; returns the data root to fill."""
    for var in (
        "TORCH_HOME",
        "CFBENCH_AUTOENCODER",
        "CFBENCH_DIFFUSION_PRIOR",
        "CFBENCH_DIFFAE",
        "CFBENCH_RCSB_BRIDGE",
    ):
        monkeypatch.setenv(var, str(weights[var]))
    for var in ("CFBENCH_SIMSIAM", "CFBENCH_INCEPTION", "CFBENCH_SAE", "CFBENCH_CUB_CLASSES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CFBENCH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def readme_real_task_command() -> list[str]:
    """The README's command for a real task, as written there."""
    line = re.search(
        r"^(?:\.venv/bin/)?(cfbench run --methods slcf,rcsb --task cheetah_cougar.*)$",
        README.read_text(),
        re.M,
    )
    assert line, "the README shows no real-task command"
    return shlex.split(line.group(1))[1:]


def check_run(out: Path, methods: list[str], ids_per_method: int, capsys) -> pd.DataFrame:
    samples = pd.read_parquet(out / "samples.parquet")
    assert sorted(samples["method"].unique()) == sorted(methods)
    assert (samples.groupby("method").size() == ids_per_method).all()
    assert samples["source_file"].map(lambda f: Path(f).is_file()).all()
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["method"]) == methods and (metrics["n"] == ids_per_method).all()
    # no Inception weights here
    assert metrics["COUT"].notna().all() and metrics["FID"].isna().all()
    for sid in samples["sample_id"].unique():
        assert png_path(out / "images" / "original", sid).is_file()
        for m in methods:
            assert png_path(out / "images" / m, sid).is_file()
            assert png_path(out / "masks" / m, sid).is_file() or m in ("latent", "pixel")
    capsys.readouterr()
    assert main(["table", str(out), "--table", "1", "--format", "latex"]) == 0
    assert "FID" in capsys.readouterr().out
    baseline = out.parent / "baseline.json"
    assert main(["regress", str(out), "--baseline", str(baseline), "--update"]) == 0
    assert main(["regress", str(out), "--baseline", str(baseline)]) == 0
    return samples


@pytest.mark.slow
def test_readme_command_runs_slcf_and_rcsb_on_imagenet_class_folders(real_env, capfd):
    fake.imagenet(real_env, "cheetah_cougar")
    argv = (
        readme_real_task_command() + ["--n", "2", "--out", "run"] + fast_settings(["slcf", "rcsb"])
    )
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "accelerate" not in err and "Warning" not in err, err
    samples = check_run(Path("run"), ["slcf", "rcsb"], 2, capfd)
    import json

    recorded = json.loads(Path("run/run.json").read_text())["config"]["components"]
    # weights hashed, torchvision's cache too
    assert recorded["classifier"] and recorded["autoencoder"]
    assert set(samples["sample_id"]) == {
        "n02130308/ILSVRC2012_val_00000001",
        "n02125311/ILSVRC2012_val_00000003",
    }


@pytest.mark.slow
def test_slcf_code_runs_the_autoencoder_at_512_on_imagenet_as_released(real_env):
    import json

    fake.imagenet(real_env, "cheetah_cougar")
    argv = ["run", "--task", "cheetah_cougar", "--methods", "slcf_code", "--n", "1"]
    assert main(argv + ["--metrics", "FR", "--out", "run"] + fast_settings(["slcf_code"])) == 0
    edit = json.loads(Path("run/run.json").read_text())["method_provenance"]["slcf_code"]
    assert edit["autoencoder_input"].startswith("512 px, bilinear in and bicubic back")
    assert edit["latent_grid"] == "64x64"


@pytest.mark.parametrize("label_file", ["csv", "meta"])
def test_flat_imagenet_validation_layout_is_read_with_its_label_file(real_env, label_file):
    from cfbench.catalog import TASKS

    fake.imagenet(real_env, "zebra_sorrel", flat=label_file)
    entry = TASKS.get("zebra_sorrel")
    task = entry.load()(**entry.preset)
    ids = task.sample_ids(None)
    assert ids == [f"ILSVRC2012_val_{i:08d}" for i in (1, 3, 2, 4)]
    assert task.load(ids).labels.tolist() == [340, 339, 340, 339]


def test_flat_imagenet_without_a_label_file_is_a_clear_error(real_env, capsys):
    fake.imagenet(real_env, "zebra_sorrel", flat="none")
    assert main(["run", "--task", "zebra_sorrel", "--methods", "slcf", "--n", "2"]) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "LOC_val_solution.csv" in err and "meta.bin" in err and "Traceback" not in err


@pytest.mark.slow
def test_one_method_per_family_runs_on_celeba_with_a_torchscript_classifier(
    real_env, weights, monkeypatch, capsys
):
    """Every method is offered or refused by what the task provides; one per family runs end to end
    (the task-specific parts do not depend on the method within a family)."""
    fake.celeba(real_env)  # celeba_age shares the loader
    monkeypatch.setenv("CFBENCH_CLASSIFIER", str(weights["celeba"]))
    monkeypatch.setenv("CFBENCH_DIFFUSION_PRIOR", str(weights["adm_celeba"]))  # 4-head layout
    monkeypatch.setenv("CFBENCH_DIFFAE", str(fake.diffae(real_env.parent / "dae128", size=128)))
    monkeypatch.setenv("CFBENCH_FACE_IDENTITY", str(fake.vggface2(real_env.parent / "fva.pkl")))
    monkeypatch.setenv("CFBENCH_CELEBA_ORACLE", str(fake.celeba_oracle(real_env.parent / "o.pth")))
    from cfbench.catalog import TASKS
    from cfbench.runner import supports

    task = TASKS.build("celeba_smile")
    offered = [m for m in METHODS.names() if supports(task, m)]
    # no CFBENCH_SAE nor CFBENCH_SPURIOUS_VAE here
    assert set(METHODS.names()) - set(offered) == {
        "slcf_sae",
        "slcf_sae_code",
        "cecas",
        "cecas_shortcut",
        "cecas_no_refine",
    }
    methods = ["slcf", "rcsb_a", "gcd", "cecas_no_ls"]
    argv = [
        "run",
        "--task",
        "celeba_smile",
        "--methods",
        ",".join(methods),
        "--n",
        "4",
        "--batch-size",
        "2",
        "--out",
        "run",
    ]
    assert main(argv + fast_settings(methods)) == 0
    check_run(Path("run"), methods, 4, capsys)
    import json

    assert (
        json.loads(Path("run/run.json").read_text())["config"]["task_settings"]["image_size"] == 128
    )
    metrics = pd.read_csv(Path("run") / "metrics.csv")
    # ACE's networks, random stand-in weights
    for face_metric in ("FVA", "FS", "MNAC", "OFR", "CD"):
        assert metrics[face_metric].notna().all(), face_metric


@pytest.mark.parametrize("split", ["csv", "txt"])
def test_celebahq_reads_its_test_split_through_the_celeba_mapping(real_env, split):
    import numpy as np

    from cfbench.catalog import TASKS

    fake.celebahq(real_env, n=4, train=3, split=split)
    task = TASKS.build("celebahq_smile")
    ids = task.sample_ids(None)
    assert sorted(ids) == ["0", "1", "2", "3"]  # HQ images 4-6 map to training originals
    assert task.load(ids).labels.tolist() == [int(i) % 2 for i in ids]
    # ACE's get_correlations over the training partition, from the annotation file directly
    rows = (real_env / "CelebAMask-HQ" / "CelebAMask-HQ-attribute-anno.txt").read_text()
    table = np.array([[v == "1" for v in r.split()[1:]] for r in rows.splitlines()[6:9]], float)
    names, corr, query = task.attribute_correlations()
    assert names[query] == "Smiling"
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = [np.corrcoef(table[:, query], table[:, i])[0, 1] for i in range(len(names))]
    np.testing.assert_allclose(corr.numpy(), np.nan_to_num(expected), atol=1e-12)


def test_celebahq_scores_the_face_metrics_with_aces_celebahq_oracle(
    real_env, weights, monkeypatch, capsys
):
    fake.celebahq(real_env)
    monkeypatch.setenv("CFBENCH_CLASSIFIER", str(weights["celeba"]))
    monkeypatch.setenv("CFBENCH_FACE_IDENTITY", str(fake.vggface2(real_env.parent / "fva.pkl")))
    oracle = fake.celebahq_oracle(real_env.parent / "checkpoint.tar")
    monkeypatch.setenv("CFBENCH_CELEBAHQ_ORACLE", str(oracle))
    argv = ["run", "--task", "celebahq_age", "--methods", "pgd", "--n", "2", "--out", "run"]
    assert main(argv) == 0
    check_run(Path("run"), ["pgd"], 2, capsys)
    metrics = pd.read_csv(Path("run") / "metrics.csv")
    for face_metric in ("FVA", "FS", "MNAC", "OFR", "CD"):
        assert metrics[face_metric].notna().all(), face_metric
    assert "CelebA-HQ attribute oracle" in (Path("run") / "run.json").read_text()


@pytest.mark.slow
def test_one_method_per_family_runs_on_cub_ids_with_slashes_spaces_and_unicode(
    real_env, weights, monkeypatch, capsys
):
    """The task-specific parts (ids, 200-class classifier) do not depend on the method within a
    family; CECAS purifies with the ADM of guided-diffusion's head-channel layout here."""
    fake.cub(real_env)
    monkeypatch.setenv("CFBENCH_CLASSIFIER", str(weights["cub"]))
    methods = ["slcf", "rcsb", "gcd", "cecas_no_ls"]
    argv = [
        "run",
        "--task",
        "cub_pair",
        "--methods",
        ",".join(methods),
        "--n",
        "4",
        "--batch-size",
        "2",
        "--out",
        "run",
    ]
    assert main(argv + fast_settings(methods)) == 0
    samples = check_run(Path("run"), methods, 4, capsys)
    assert "062.Herring_Gull/-Herring Gull ü.0006" in set(samples["sample_id"])


def test_resumed_real_task_run_recomputes_nothing_finished(real_env, weights, monkeypatch):
    fake.cub(real_env)
    monkeypatch.setenv("CFBENCH_CLASSIFIER", str(weights["cub"]))
    argv = [
        "run",
        "--task",
        "cub_pair",
        "--methods",
        "slcf",
        "--n",
        "4",
        "--batch-size",
        "2",
        "--metrics",
        "FR,COUT",
        *fast_settings(["slcf"]),
    ]
    assert main(argv + ["--out", "whole"]) == 0

    original = Runner._generate_batch
    generated: list[list[str]] = []

    def dies_on_second_batch(self, name, method, ids, metrics):
        if generated:
            raise KeyboardInterrupt
        generated.append(ids)
        return original(self, name, method, ids, metrics)

    monkeypatch.setattr(Runner, "_generate_batch", dies_on_second_batch)
    assert main(argv + ["--out", "cut"]) == 130
    finished = set(generated[0])

    def counting(self, name, method, ids, metrics):
        generated.append(ids)
        return original(self, name, method, ids, metrics)

    generated.clear()
    monkeypatch.setattr(Runner, "_generate_batch", counting)
    assert main(argv + ["--out", "cut"]) == 0
    assert len(generated) == 1 and not finished & set(generated[0]), (
        "finished samples were recomputed"
    )
    columns = ["sample_id", "pred_after", "flipped", "steps", "nfe", "COUT"]
    pd.testing.assert_frame_equal(
        pd.read_parquet("whole/samples.parquet")[columns],
        pd.read_parquet("cut/samples.parquet")[columns],
    )
