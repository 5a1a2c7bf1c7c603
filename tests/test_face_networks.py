"""ACE's face networks load as its scripts build them: the VGGFace2 ResNet-50 in its Caffe layout
(FVA), the CelebA oracle's MatConvNet names mapped onto it, and the inputs prepared as
compute_FVA.py and compute_MNAC.py prepare a PNG."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from real_fixtures import ace_oracle_names, celeba_oracle, celebahq_oracle, vggface2
from torchvision import transforms

from cfbench.components.attribute_oracle import (
    AttributeOracle,
    CelebAHQOracle,
    CelebAOracle,
    load_celeba_oracle,
    load_celebahq_oracle,
)
from cfbench.components.face_identity import VGGFace2Identity, load_vggface2
from cfbench.components.vggface2 import caffe_resnet50, torchvision_name, trunk
from cfbench.errors import UserError


def test_the_oracles_matconvnet_layout_maps_onto_the_caffe_resnet():
    net = caffe_resnet50()
    modules = dict(net.named_modules())
    seen = set()
    for name, (out, cin, kernel, stride) in ace_oracle_names().items():
        conv = modules[torchvision_name(f"{name}.weight").rsplit(".", 1)[0]]
        assert conv.weight.shape == (out, cin, kernel, kernel) and conv.stride == (stride, stride)
        bn = modules[torchvision_name(f"{name}_bn.weight").rsplit(".", 1)[0]]
        assert isinstance(bn, torch.nn.BatchNorm2d) and bn.num_features == out
        seen |= {id(conv), id(bn)}
    trunk_modules = [
        m for n, m in modules.items() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))
    ]
    assert seen == {id(m) for m in trunk_modules}  # every trunk layer, each once
    assert trunk(net.eval(), torch.zeros(1, 3, 224, 224)).shape == (1, 2048, 1, 1)


def _png_roundtrip(x: torch.Tensor, path) -> None:
    arr = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)


def test_fva_input_is_compute_fvas(tmp_path):
    x = torch.rand(2, 3, 64, 64)
    ours = VGGFace2Identity().preprocess(x)
    mean_bgr = np.array([91.4953, 103.8827, 131.0912])
    for i in range(2):
        _png_roundtrip(x[i], tmp_path / f"{i}.png")
        img = Image.open(tmp_path / f"{i}.png")  # CFDataset.load_img and transform, literally
        img = transforms.Resize(224)(img)
        img = np.array(img, dtype=np.uint8)
        img = img[:, :, ::-1].astype(np.float32)
        img -= mean_bgr
        theirs = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()
        torch.testing.assert_close(ours[i], theirs, rtol=0, atol=1e-6)


def test_the_vggface2_pickle_loads_and_a_foreign_one_is_refused(tmp_path):
    donor = caffe_resnet50()
    model = load_vggface2(vggface2(tmp_path / "w.pkl", donor))
    torch.testing.assert_close(model.net.layer3[2].conv2.weight, donor.layer3[2].conv2.weight)
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"conv1.weight": np.zeros((64, 3, 7, 7))}))
    with pytest.raises(UserError, match="not the VGGFace2 ResNet-50"):
        load_vggface2(tmp_path / "bad.pkl")


def test_the_celeba_oracle_checkpoint_loads_and_reads_a_png_as_compute_mnac(tmp_path):
    donor = CelebAOracle().eval()
    celeba_oracle(tmp_path / "oracle.pth", donor)
    oracle = load_celeba_oracle(tmp_path / "oracle.pth").eval()
    x = torch.rand(1, 3, 64, 64)
    _png_roundtrip(x[0], tmp_path / "x.png")
    # compute_MNAC.py: ToTensor, Normalize(0.5, 0.5) to [-1, 1]; Resnet50_128.forward undoes it
    data = transforms.Normalize([0.5] * 3, [0.5] * 3)(
        transforms.ToTensor()(Image.open(tmp_path / "x.png").convert("RGB"))
    )[None]
    data = (data + 1) / 2
    data = data[:, [2, 1, 0], ...]
    data = data - torch.tensor([131.0912, 103.8827, 91.4953]).view(1, -1, 1, 1) / 255.0
    data = torch.nn.functional.interpolate(
        data, size=(224, 224), mode="bicubic", align_corners=False
    )
    with torch.no_grad():
        feats = donor.feat_extract(trunk(donor.net, data)).flatten(1)
        theirs = torch.sigmoid(donor.classifier(feats))
        torch.testing.assert_close(oracle(x), theirs, rtol=0, atol=1e-6)
    torch.save({"model_state_dict": {}}, tmp_path / "hq.pth")
    with pytest.raises(UserError, match="not ACE's CelebA oracle"):
        load_celeba_oracle(tmp_path / "hq.pth")


class _ACENormalizer(torch.nn.Module):
    """models/normalizer.py of ACE's release, written out: (x - mu) / sigma, then the network."""

    def __init__(self, net, mu, sigma):
        super().__init__()
        self.net = net
        self.mu = torch.tensor(mu).view(1, -1, 1, 1)
        self.sigma = torch.tensor(sigma).view(1, -1, 1, 1)

    def forward(self, x):
        return self.net((x - self.mu) / self.sigma)


@pytest.mark.parametrize("reading", ["once", "twice"])
def test_the_celebahq_oracle_reads_a_png_as_steex_or_as_aces_files_compose(
    tmp_path, monkeypatch, reading
):
    donor = CelebAHQOracle().eval()
    path = celebahq_oracle(tmp_path / "checkpoint.tar", donor)
    monkeypatch.setenv("CFBENCH_CELEBAHQ_ORACLE_INPUT", reading)
    oracle = AttributeOracle.load(path, {}, shipped=False).eval()
    assert isinstance(oracle, CelebAHQOracle) and reading in AttributeOracle.describe("env:X", path)
    x = torch.rand(1, 3, 64, 64)
    _png_roundtrip(x[0], tmp_path / "x.png")

    def steex_oracle(data):  # OracleResnet.forward: bicubic to 224, trunk, linear, sigmoid
        data = torch.nn.functional.interpolate(
            data, size=(224, 224), mode="bicubic", align_corners=False
        )
        return torch.sigmoid(donor.classifier(trunk(donor.net, data).flatten(1)))

    # compute_MNAC.py's CFDataset: ToTensor, Normalize(0.5, 0.5) to [-1, 1]
    data = transforms.Normalize([0.5] * 3, [0.5] * 3)(
        transforms.ToTensor()(Image.open(tmp_path / "x.png").convert("RGB"))
    )[None]
    network = steex_oracle
    if reading == "twice":
        network = _ACENormalizer(steex_oracle, [0.5] * 3, [0.5] * 3)
    with torch.no_grad():
        torch.testing.assert_close(oracle(x), network(data), rtol=0, atol=1e-6)


def test_a_foreign_or_unreadable_oracle_checkpoint_and_an_unknown_reading_are_refused(
    tmp_path, monkeypatch
):
    torch.save({"model_state_dict": {"classifier.weight": torch.zeros(40, 2048)}}, tmp_path / "a")
    with pytest.raises(UserError, match="trunk is not the VGGFace2 ResNet-50"):
        load_celebahq_oracle(tmp_path / "a", "once")
    with pytest.raises(UserError, match="not ACE's CelebA-HQ oracle"):
        load_celebahq_oracle(celeba_oracle(tmp_path / "b"), "once")
    with pytest.raises(UserError, match="'once' or 'twice'"):
        load_celebahq_oracle(celebahq_oracle(tmp_path / "c"), "thrice")
    (tmp_path / "d").write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot be read as a PyTorch checkpoint"):
        AttributeOracle.load(tmp_path / "d", {}, shipped=False)
