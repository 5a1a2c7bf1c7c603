"""Tiny stand-ins for the real tasks' data and weights, in the layouts the README documents.

Randomly initialised weights are placed where the loaders look (torchvision's hub cache under
``TORCH_HOME``, diffusers folders, TorchScript files), and a few small images per class are
written in each dataset's own layout, so a real task runs end to end offline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

IMAGENET_WNIDS = {
    "cheetah_cougar": ("n02130308", "n02125311"),
    "zebra_sorrel": ("n02391049", "n02389026"),
    "egyptian_persian": ("n02124075", "n02123394"),
}


def _image(path: Path, seed: int, size=(40, 30)) -> None:
    g = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(size[1], size[0], 3, generator=g) * 255).to(torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def imagenet(
    root: Path, pair: str = "cheetah_cougar", per_class: int = 2, flat: str | None = None
) -> None:
    """``root/imagenet/val``: class folders ``<wnid>/*.JPEG``, or with ``flat`` ("csv" or "meta")
    the flat ILSVRC2012 files plus Kaggle's LOC_val_solution.csv or torchvision's meta.bin."""
    val = root / "imagenet" / "val"
    labels = []
    for c, wnid in enumerate(IMAGENET_WNIDS[pair]):
        for i in range(per_class):
            number = 1 + c * per_class + i
            name = f"ILSVRC2012_val_{number:08d}"
            _image(val / (f"{name}.JPEG" if flat else f"{wnid}/{name}.JPEG"), number)
            labels.append((name, wnid))
    _image(val / f"ILSVRC2012_val_{99:08d}.JPEG" if flat else val / "n01440764" / "other.JPEG", 99)
    labels.append((f"ILSVRC2012_val_{99:08d}", "n01440764"))
    if flat == "csv":
        rows = "".join(f"{name},{wnid} 1 2 3 4\n" for name, wnid in labels)
        (root / "imagenet" / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + rows)
    # torchvision's format: val_wnids[i] is the class of ILSVRC2012_val_<i + 1>
    elif flat == "meta":
        val_wnids = ["n00000000"] * 99
        for name, wnid in labels:
            val_wnids[int(name.rsplit("_", 1)[1]) - 1] = wnid
        torch.save(({}, val_wnids), root / "imagenet" / "meta.bin")


def celeba(root: Path, n: int = 4, train: int = 3) -> None:
    """``root/celeba``: img_align_celeba/*.jpg with the attribute list (CelebA's 40 columns: Smiling
    alternates over the test images) and the partition list (``train`` images in partition 0)."""
    from cfbench.components.attribute_oracle import CELEBA_ATTRIBUTES

    folder = root / "celeba"
    names = [f"{i:06d}.jpg" for i in range(1, n + train + 1)]
    for i, name in enumerate(names):
        _image(folder / "img_align_celeba" / name, i, (44, 54))
    g = torch.Generator().manual_seed(0)
    lines = [str(len(names)), " ".join(CELEBA_ATTRIBUTES)]
    for i, name in enumerate(names):
        values = torch.randint(2, (len(CELEBA_ATTRIBUTES),), generator=g) * 2 - 1
        values[CELEBA_ATTRIBUTES.index("Smiling")] = 1 if i % 2 else -1
        values[CELEBA_ATTRIBUTES.index("Young")] = -1 if i % 2 else 1
        lines.append(f"{name} " + " ".join(str(int(v)) for v in values))
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    # the training images must not appear among the samples
    (folder / "list_eval_partition.txt").write_text(
        "".join(f"{name} {0 if i >= n else 2}\n" for i, name in enumerate(names))
    )


def celebahq(root: Path, n: int = 4, train: int = 3, split: str = "csv") -> None:
    """``root/CelebAMask-HQ``: CelebA-HQ-img/<i>.jpg, the attribute annotation (double spaces, as
    released), the HQ-to-CelebA mapping (originals in reverse order, so the split must go through
    it) and CelebA's partition as ACE's csv or CelebA's txt: the first ``n`` HQ images are
    test (2), the rest train (0), Smiling on the odd ones."""
    from cfbench.components.attribute_oracle import CELEBA_ATTRIBUTES

    folder = root / "CelebAMask-HQ"
    total = n + train
    originals = [f"{100 + total - i:06d}.jpg" for i in range(total)]
    g = torch.Generator().manual_seed(1)
    lines = [str(total), " ".join(CELEBA_ATTRIBUTES)]
    for i in range(total):
        _image(folder / "CelebA-HQ-img" / f"{i}.jpg", 50 + i, (48, 48))
        values = torch.randint(2, (len(CELEBA_ATTRIBUTES),), generator=g) * 2 - 1
        values[CELEBA_ATTRIBUTES.index("Smiling")] = 1 if i % 2 else -1
        lines.append(f"{i}.jpg  " + " ".join(str(int(v)) for v in values))
    (folder / "CelebAMask-HQ-attribute-anno.txt").write_text("\n".join(lines) + "\n")
    mapping = ["idx         orig_idx orig_file"]
    mapping += [f"{i}  {int(o[:6]) - 1}  {o}" for i, o in enumerate(originals)]
    (folder / "CelebA-HQ-to-CelebA-mapping.txt").write_text("\n".join(mapping) + "\n")
    part = {o: 2 if i < n else 0 for i, o in enumerate(originals)}
    part["000001.jpg"] = 1  # a CelebA image that is not in CelebA-HQ
    if split == "csv":
        rows = "".join(f"{o},{p}\n" for o, p in part.items())
        (folder / "list_eval_partition.csv").write_text("image_id,partition\n" + rows)
    else:
        rows = "".join(f"{o} {p}\n" for o, p in part.items())
        (folder / "list_eval_partition.txt").write_text(rows)


def ace_oracle_names() -> dict[str, tuple[int, int, int, int]]:
    """oracle_celeba_metrics.py's Resnet50_128 convolutions, written out from its layout: name ->
    (out, in, kernel, stride); each has a ``<name>_bn``."""
    convs = {"conv1_7x7_s2": (64, 3, 7, 2)}
    cin = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=2):
        for block in range(1, blocks + 1):
            stride = 2 if block == 1 and stage > 2 else 1
            name = f"conv{stage}_{block}"
            convs[f"{name}_1x1_reduce"] = (width, cin, 1, stride)
            convs[f"{name}_3x3"] = (width, width, 3, 1)
            convs[f"{name}_1x1_increase"] = (4 * width, width, 1, 1)
            if block == 1:
                convs[f"{name}_1x1_proj"] = (4 * width, cin, 1, stride)
            cin = 4 * width
    return convs


def matconvnet_trunk(net) -> dict:
    """A caffe_resnet50's trunk weights under the MatConvNet names ACE's oracles use."""
    from cfbench.components.vggface2 import torchvision_name

    inverse = {
        torchvision_name(f"{n}{suffix}.{t}"): f"{n}{suffix}.{t}"
        for n in ace_oracle_names()
        for suffix in ("", "_bn")
        for t in ("weight", "bias", "running_mean", "running_var")
    }
    return {inverse[k]: v for k, v in net.state_dict().items() if k in inverse}


def celeba_oracle(path: Path, donor=None) -> Path:
    """ACE's oracle checkpoint layout ({'feat_extract': MatConvNet names, 'classifier'}) holding
    ``donor``'s weights (a random ``CelebAOracle`` by default)."""
    from cfbench.components.attribute_oracle import CelebAOracle

    donor = donor or CelebAOracle()
    trunk = matconvnet_trunk(donor.net)
    trunk["feat_extract.weight"] = donor.feat_extract.weight.detach()
    torch.save({"feat_extract": trunk, "classifier": donor.classifier.state_dict()}, path)
    return path


def celebahq_oracle(path: Path, donor=None) -> Path:
    """STEEX's OracleResnet checkpoint ({'model_state_dict': 'feat_extract.<MatConvNet name>' and
    'classifier.*', with the epoch and loss its training script saves}) holding ``donor``'s
    weights (a random ``CelebAHQOracle`` by default)."""
    from cfbench.components.attribute_oracle import CelebAHQOracle

    donor = donor or CelebAHQOracle()
    state = {f"feat_extract.{k}": v for k, v in matconvnet_trunk(donor.net).items()}
    state.update({f"classifier.{k}": v for k, v in donor.classifier.state_dict().items()})
    torch.save({"epoch": 3, "loss": 0.25, "model_state_dict": state}, path)
    return path


def vggface2(path: Path, donor=None) -> Path:
    """VGGFace2's pickle of numpy arrays (torchvision names) of ``donor`` (random by default)."""
    import pickle

    from cfbench.components.vggface2 import caffe_resnet50

    donor = donor or caffe_resnet50()
    state = {k: v.numpy() for k, v in donor.state_dict().items() if "num_batches" not in k}
    path.write_bytes(pickle.dumps(state))
    return path


CUB_IMAGES = {  # image id -> (relative path, class id, is_training_image)
    "1": ("059.California_Gull/California_Gull_0001.jpg", 59, 0),
    "2": ("059.California_Gull/California_Gull_0002.jpg", 59, 1),
    "3": ("062.Herring_Gull/Herring_Gull_0003.jpg", 62, 0),
    "4": ("001.Black_footed_Albatross/Black_footed_Albatross_0004.jpg", 1, 0),
    "5": ("059.California_Gull/California_Gull_0005.jpg", 59, 0),
    # a leading dash, a space, unicode, a dot
    "6": (
        "062.Herring_Gull/-Herring Gull ü.0006.jpg",
        62,
        0,
    ),
}


def cub(root: Path) -> Path:
    base = root / "CUB_200_2011"
    for i, (rel, _, _) in CUB_IMAGES.items():
        _image(base / "images" / rel, int(i))
    for name, column in (
        ("images.txt", 0),
        ("image_class_labels.txt", 1),
        ("train_test_split.txt", 2),
    ):
        (base / name).write_text("".join(f"{i} {v[column]}\n" for i, v in CUB_IMAGES.items()))
    (base / "classes.txt").write_text(
        "1 001.Black_footed_Albatross\n59 059.California_Gull\n62 062.Herring_Gull\n"
    )
    return base


def resnet50_weights(torch_home: Path) -> Path:
    """A randomly initialised torchvision ResNet-50 where torchvision's IMAGENET1K_V1 loader
    looks."""
    import torchvision

    path = torch_home / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), path)
    return path


def autoencoder(folder: Path) -> Path:
    """A tiny randomly initialised 16-channel diffusers AutoencoderKL with kl-f8-d16's
    downsampling factor 8 (so the released 512-px input gives its 64 x 64 grid)."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=256,
        mid_block_add_attention=False,
    ).save_pretrained(str(folder))
    return folder


def diffusion_prior(folder: Path) -> Path:
    """A tiny randomly initialised diffusers DDPM pipeline folder."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=256,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        norm_num_groups=8,
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(
        str(folder)
    )
    return folder


TINY_ADM = dict(
    image_size=256,
    num_channels=32,
    num_res_blocks=1,
    channel_mult=[1, 1, 2],
    attention_resolutions=[64],
    resblock_updown=True,
    use_scale_shift_norm=True,
)
ADM_HEADS = {  # the two head layouts of the released ADM checkpoints
    "imagenet": dict(num_head_channels=32, learn_sigma=True, diffusion_steps=1000),
    "celeba": dict(num_heads=4, learn_sigma=True, diffusion_steps=500),
}


def adm(folder: Path, layout: str) -> Path:
    """A tiny randomly initialised guided-diffusion state dict (``model.pt``, keys as the released
    UNetModel's) with its flags in ``config.json`` beside it."""
    import json

    from cfbench.components.adm_unet import ADMConfig, ADMUNet

    torch.manual_seed(1)
    flags = TINY_ADM | ADM_HEADS[layout]
    net = ADMUNet(ADMConfig.from_flags(flags))
    for p in net.parameters():
        p.data.normal_(0, 0.02)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(flags))
    return folder / "model.pt"


def bridge(folder: Path) -> Path:
    """A tiny randomly initialised I2SB inpainter as I2SB saves ``latest.pt``: ``net`` (the
    Image256Net state dict, keys under ``diffusion_model.``), ``ema`` (torch_ema's state, its
    shadow parameters in the network's parameter order), ``optimizer`` and ``sched``; the UNet's
    flags (I2SB's own are ADM-256's) in ``config.json``."""
    import json

    from cfbench.components.adm_unet import ADMConfig
    from cfbench.components.i2sb import I2SBNetwork

    torch.manual_seed(2)
    net = I2SBNetwork(ADMConfig.from_flags(TINY_ADM | dict(num_head_channels=32)))
    for p in net.parameters():
        p.data.normal_(0, 0.02)
    shadow = [p.detach() * 0.5 for p in net.parameters()]  # what I2SB samples with
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "net": net.state_dict(),
        "ema": {
            "decay": 0.99,
            "num_updates": 10,
            "shadow_params": shadow,
            "collected_params": None,
        },
        "optimizer": {"state": {}, "param_groups": [{"lr": 5e-5, "params": [0]}]},
        "sched": None,
    }
    torch.save(checkpoint, folder / "latest.pt")
    unet = TINY_ADM | dict(num_head_channels=32)
    (folder / "config.json").write_text(json.dumps({"unet": unet, "beta_max": 1.0, "ot_ode": True}))
    return folder / "latest.pt"


def diffae(folder: Path, size: int = 256) -> Path:
    """A tiny randomly initialised diffusion autoencoder in cfbench's layout (unet/, scheduler/,
    encoder/) for ``size``-pixel images."""
    from diffusers import UNet2DModel

    from cfbench.components.diffae import DiffusionAutoencoder, SemanticEncoder, scheduler_config

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=size,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        norm_num_groups=8,
        class_embed_type="identity",
        time_embedding_dim=32,
    )
    encoder = SemanticEncoder(32, size, (8,) * (size.bit_length() - 3))
    DiffusionAutoencoder(encoder, unet, scheduler_config()).save(folder)
    return folder


class _TinyClassifier(nn.Module):
    """A small CNN with the ``penultimate`` / ``fc`` split that the SAE-based methods use."""

    def __init__(self, classes: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 4, 1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, 4, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(16, classes)

    @torch.jit.export
    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def scripted_classifier(path: Path, classes: int) -> Path:
    """A randomly initialised TorchScript classifier with ``classes`` logits."""
    torch.manual_seed(0)
    torch.jit.script(_TinyClassifier(classes).eval()).save(str(path))
    return path
