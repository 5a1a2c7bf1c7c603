"""Real-data tasks without real data: construction, clear errors, CUB parsing on a tiny fake
copy."""

import pytest
import real_fixtures as fake
import torch
import torchvision
from torch import nn

from cfbench.api.classifier import Preprocess, split, split_spatial
from cfbench.catalog import TASKS
from cfbench.components.sae import train_task_sae
from cfbench.errors import UserError


def make(name):
    entry = TASKS.get(name)
    return entry.load()(device=torch.device("cpu"), **entry.preset)


@pytest.fixture
def cub(tmp_path, monkeypatch):
    monkeypatch.setenv("CFBENCH_DATA_ROOT", str(tmp_path))
    monkeypatch.delenv("CFBENCH_CUB_CLASSES", raising=False)
    return fake.cub(tmp_path)


@pytest.mark.parametrize("name", ["celeba_smile", "celeba_age", "cub_pair"])
def test_real_tasks_construct_without_data_and_name_what_is_missing(name, monkeypatch):
    monkeypatch.delenv("CFBENCH_DATA_ROOT", raising=False)
    task = make(name)
    assert task.name == name
    with pytest.raises(UserError, match="CFBENCH_DATA_ROOT"):
        task.sample_ids(4)


def test_cub_pair_reads_the_test_split_of_the_two_classes(cub):
    task = make("cub_pair")
    assert task.pair == (58, 61)
    ids = task.sample_ids(None)
    assert ids == [
        "059.California_Gull/California_Gull_0001",
        "062.Herring_Gull/Herring_Gull_0003",
        "059.California_Gull/California_Gull_0005",
        "062.Herring_Gull/-Herring Gull ü.0006",
    ]
    samples = task.load(ids)
    assert samples.labels.tolist() == [58, 61, 58, 61] and samples.images.shape == (4, 3, 256, 256)
    assert task.target_of(samples.labels).tolist() == [61, 58, 61, 58]


def test_cub_classes_come_from_the_environment(cub, monkeypatch):
    monkeypatch.setenv("CFBENCH_CUB_CLASSES", "1,59")
    assert make("cub_pair").sample_ids(None) == [
        "001.Black_footed_Albatross/Black_footed_Albatross_0004",
        "059.California_Gull/California_Gull_0001",
        "059.California_Gull/California_Gull_0005",
    ]
    for bad in ("59", "59,59", "0,62", "59,x"):
        monkeypatch.setenv("CFBENCH_CUB_CLASSES", bad)
        with pytest.raises(UserError, match="CFBENCH_CUB_CLASSES"):
            make("cub_pair")


@pytest.mark.parametrize(
    "missing", ["images.txt", "image_class_labels.txt", "train_test_split.txt", "images"]
)
def test_incomplete_cub_is_a_user_error(cub, missing):
    target = cub / missing
    if target.is_dir():
        for f in sorted(target.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises(UserError, match=f"CUB-200-2011 is incomplete: .*{missing}"):
        make("cub_pair").sample_ids(2)


def test_resized_resnet_splits_into_penultimate_and_fc():
    resnet = torchvision.models.ResNet(
        torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=3
    )
    model = nn.Sequential(Preprocess(32), resnet).eval()
    features, head = split(model)
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        assert features(x).shape == (2, 512)
        torch.testing.assert_close(head(features(x)), model(x))


def test_resized_resnet_splits_into_spatial_map_pooling_and_fc():
    resnet = torchvision.models.ResNet(
        torchvision.models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=3
    )
    model = nn.Sequential(Preprocess(224), resnet).eval()
    spatial, pool, head = split_spatial(model, 64)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        # the map before global pooling, not its 1 x 1 pool
        assert spatial(x).shape == (
            2,
            512,
            7,
            7,
        )
        torch.testing.assert_close(head(pool(spatial(x))), model(x))


def test_scripted_classifier_without_penultimate_cannot_train_an_sae(cub, tmp_path, monkeypatch):
    path = tmp_path / "clf.pt"
    torch.jit.script(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 200))).save(
        str(path)
    )
    monkeypatch.setenv("CFBENCH_CLASSIFIER", str(path))
    monkeypatch.setenv("CFBENCH_CUB_CLASSES", "1,59")
    task = make("cub_pair")
    with pytest.raises(UserError, match="penultimate"):
        train_task_sae(task, 20, tmp_path / "sae.safetensors")
    monkeypatch.delenv("CFBENCH_SAE", raising=False)
    with pytest.raises(UserError, match="CFBENCH_SAE"):
        task.component("sae")
