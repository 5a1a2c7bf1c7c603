"""The face classifiers the seed papers explain, read from their released checkpoints: DiVE's
DenseNet-121 (DiME's and ACE's CelebA ``classifier.pth``) and STEEX's ``DecisionDensenetModel``
(the CelebA-HQ classifier of ACE and GCD).

Both are torchvision's DenseNet-121 trunk (its classifier replaced by an identity, so the
checkpoint's trunk keys are ``feat_extract.features.*``) followed by ReLU, global average pooling
and one linear layer: 40 CelebA logits (``{'feat_extract', 'classifier'}``) or 3, Male, Smile,
Young (``{'model_state_dict'}`` with ``feat_extract.feat_extract.*`` and ``classifier.*``). The
released code feeds them [-1, 1] images (ACE's ``Normalizer(0.5, 0.5)``) at the task's size, 128 px
on CelebA and 256 on CelebA-HQ, without resizing; the decision is logit > 0.

A location ``ace-densenet:celeba:<attribute>:<file>`` or ``steex-densenet:celebahq:<attribute>:
<file>`` (the attribute by its CelebA name: Smiling, Young, Male) gives the binary classifier of
that attribute, with the logits [0, l_q] for (absent, present): softmax over them is sigmoid(l_q),
the probability ACE's BCE reads, and their margin is l_q itself. (A pair [-l, l] would double the
logit.) The last layer is built with exactly those two rows, so the penultimate features a loss
reads (CECAS's L_S, SLCF's SAE) are the trunk's, and the split is exact.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cfbench.api.component import read_torch_file
from cfbench.errors import UserError

STEEX_OUTPUTS = ("Male", "Smiling", "Young")  # STEEX's train_attributes_idx [20, 31, 39]
KINDS = {"ace-densenet": "celeba", "steex-densenet": "celebahq"}


class _Trunk(nn.Module):
    """DiVE's ``DenseNet121``: torchvision's trunk under ``feat_extract``, classifier removed."""

    def __init__(self):
        super().__init__()
        from torchvision.models import densenet121

        self.feat_extract = densenet121(weights=None)
        self.feat_extract.classifier = nn.Identity()

    def forward(self, x):
        return self.feat_extract(x)  # relu, pooling and flattening are torchvision's


class AttributeClassifier(nn.Module):
    """[0, 1] faces -> logits [0, l_q] of one attribute (see the module's docstring)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, query: int):
        super().__init__()
        self.feat_extract = _Trunk()
        self.head = nn.Linear(weight.shape[1], 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.stack([torch.zeros_like(weight[query]), weight[query]]))
            self.head.bias.copy_(torch.stack([torch.zeros_like(bias[query]), bias[query]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.feat_extract(x * 2 - 1))


def parse(location: str) -> tuple[str, str, str, Path]:
    """``KIND:DATASET:ATTRIBUTE:FILE`` -> its parts; a malformed one is a UserError."""
    parts = location.split(":", 3)
    if len(parts) != 4 or parts[0] not in KINDS or parts[1] != KINDS[parts[0]]:
        raise UserError(
            f"'{location}' is not a built-in classifier location: write "
            "ace-densenet:celeba:<attribute>:<classifier.pth> or "
            "steex-densenet:celebahq:<attribute>:<checkpoint> (attribute: Smiling, Young, Male)."
        )
    return parts[0], parts[1], parts[2], Path(parts[3]).expanduser()


def load(location: str) -> AttributeClassifier:
    from cfbench.components.attribute_oracle import CELEBA_ATTRIBUTES

    kind, _, attribute, path = parse(location)
    names = CELEBA_ATTRIBUTES if kind == "ace-densenet" else STEEX_OUTPUTS
    if attribute not in names:
        raise UserError(
            f"{kind} reads the attributes {', '.join(names)}; '{attribute}' is not one of them."
        )
    if not path.is_file():
        raise UserError(f"The {kind} checkpoint {path} does not exist.")
    stored = read_torch_file(path, f"the released {kind} checkpoint")
    if kind == "ace-densenet":
        if not (isinstance(stored, dict) and {"feat_extract", "classifier"} <= set(stored)):
            raise UserError(
                f"{path} is not DiME/ACE's classifier.pth: it should hold 'feat_extract' and "
                "'classifier' state dicts."
            )
        trunk, head = stored["feat_extract"], stored["classifier"]
    else:
        state = stored.get("model_state_dict") if isinstance(stored, dict) else None
        if not isinstance(state, dict):
            raise UserError(
                f"{path} is not STEEX's DecisionDensenetModel checkpoint: it should hold "
                "'model_state_dict'."
            )
        trunk = {k[len("feat_extract.") :]: v for k, v in state.items() if k.startswith("feat_")}
        head = {k[len("classifier.") :]: v for k, v in state.items() if k.startswith("classifier.")}
    if set(head) != {"weight", "bias"} or head["weight"].shape[0] != len(names):
        raise UserError(
            f"The head of {path} is not a linear layer to the {len(names)} outputs {kind} has."
        )
    model = AttributeClassifier(head["weight"], head["bias"], names.index(attribute))
    try:
        model.feat_extract.load_state_dict(trunk)
    except RuntimeError as err:
        raise UserError(
            f"The trunk of {path} is not torchvision's DenseNet-121 under 'feat_extract' "
            f"({str(err).splitlines()[0]})."
        ) from None
    return model


def describe(location: str) -> str:
    kind, dataset, attribute, path = parse(location)
    size = 128 if dataset == "celeba" else 256
    return (
        f"{kind} ({'DiME/ACE' if kind == 'ace-densenet' else 'STEEX'}) {dataset} classifier of "
        f"{attribute} from {path}: [-1, 1] input at the task's {size} px, logits [0, l_q]"
    )
