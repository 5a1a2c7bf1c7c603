"""The classifier contract: a module mapping B x 3 x H x W images in [0, 1] to logits B x K, with
its own resizing and normalisation inside (``Preprocess``), so methods never need to know what a
model expects; and its penultimate features, the one convention a sparse autoencoder, a
spurious-factor VAE or a trait loss reads: the input of the classifier's last ``nn.Linear``, cut
out of its torch.fx graph (``split``; ``split_spatial`` also cuts before the global pooling).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cfbench.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


class Preprocess(nn.Module):
    """[0, 1] images of any size -> the resized, normalised input of an ImageNet-style model."""

    def __init__(self, size: int):
        super().__init__()
        self.size, self.normalize = size, Normalize()

    def forward(self, x):
        if x.shape[-1] != self.size:
            x = F.interpolate(
                x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True
            )
        return self.normalize(x)


class _Tracer(torch.fx.Tracer):
    """torch.fx tracer that keeps input preprocessing (shape-dependent resizing) as one call."""

    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return isinstance(module, (Preprocess, Normalize)) or super().is_leaf_module(module, name)


def split(classifier: nn.Module, image_size: int = 64) -> tuple[nn.Module, nn.Module]:
    """(features, head) with ``head(features(x)) == classifier(x)``: the head is the last
    ``nn.Linear`` the forward pass calls, the features are its input, cut out of the torch.fx
    graph of the classifier (torchvision's feature extraction does the same for node names).
    Checked on a probe batch of ``image_size`` images: a classifier whose output is not its last
    linear layer's (an attribute picked after it, a wrapper adding terms) is refused, since a
    loss on the cut features would act on other outputs than the classifier's."""
    if isinstance(classifier, torch.jit.ScriptModule):
        raise UserError(
            "The classifier is a TorchScript file, whose graph cannot be cut at the penultimate "
            "features that the sparse autoencoder (or spurious VAE) reads: provide it as an "
            "architecture with weights (torchvision:ARCH:WEIGHTS, a built-in kind such as "
            "ace-densenet:celeba:Smiling) or a torch.save'd module."
        )
    try:
        graph = _Tracer().trace(classifier)
    except Exception as err:  # torch.fx raises several error types on untraceable control flow
        raise UserError(
            f"The classifier {type(classifier).__name__} cannot be traced by torch.fx ({err}), so "
            "its penultimate features cannot be cut out."
        ) from err
    heads = [
        n
        for n in graph.nodes
        if n.op == "call_module" and isinstance(classifier.get_submodule(n.target), nn.Linear)
    ]
    if not heads:
        raise UserError(
            f"The classifier {type(classifier).__name__} has no final nn.Linear head to split at."
        )
    output = next(n for n in graph.nodes if n.op == "output")
    output.args = (heads[-1].args[0],)
    features = torch.fx.GraphModule(classifier, graph)
    features.graph.eliminate_dead_code()
    features.recompile()
    head = classifier.get_submodule(heads[-1].target)
    _check_split(classifier, features, head, image_size)
    return features, head


def _check_split(classifier, features, head, image_size: int) -> None:
    device = next((t.device for t in classifier.parameters()), torch.device("cpu"))
    probe = torch.rand(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole, parts = classifier(probe.to(device)), head(features(probe.to(device)))
    if whole.shape != parts.shape or not torch.allclose(whole, parts, rtol=1e-5, atol=1e-5):
        difference = (
            f"shapes {tuple(parts.shape)} and {tuple(whole.shape)}"
            if whole.shape != parts.shape
            else f"values differing by up to {float((whole - parts).abs().max()):.3g}"
        )
        raise UserError(
            f"The classifier {type(classifier).__name__} is not its last linear layer applied to "
            f"the features before it (head(features(x)) and classifier(x) give {difference}), so "
            "a loss on those features would act on other outputs than the ones explained. Provide "
            "the classifier as the module whose output is that layer's (e.g. pick the attribute "
            "by the task's class indices, not after the head)."
        )


def split_spatial(classifier: nn.Module, image_size: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(spatial, pool, head) with ``head(pool(spatial(x))) == classifier(x)``: ``spatial`` ends at
    the last activation map (4-D, more than one position) on the way to the penultimate features,
    i.e. before the global pooling, found by propagating a probe's shapes through ``split``'s fx
    graph."""
    from torch.fx.passes.shape_prop import ShapeProp

    features, head = split(classifier)
    device = next((t.device for t in classifier.parameters()), torch.device("cpu"))
    ShapeProp(features).propagate(torch.zeros(1, 3, image_size, image_size, device=device))
    output = next(n for n in features.graph.nodes if n.op == "output")
    cut = output.args[0]

    def is_map(node) -> bool:  # a 4-D activation with more than one position
        shape = tuple(getattr(node.meta.get("tensor_meta"), "shape", ()))
        return len(shape) == 4 and shape[2] * shape[3] > 1

    while not is_map(cut):
        if len(cut.all_input_nodes) != 1:
            raise UserError(
                f"The penultimate features of {type(classifier).__name__} are not a pooling of one "
                "spatial activation map, so they cannot be weighted by a spatial mask."
            )
        cut = cut.all_input_nodes[0]
    spatial_graph = torch.fx.Graph()
    env = {}
    for n in features.graph.nodes:
        if n.op == "output":
            break
        env[n] = spatial_graph.node_copy(n, lambda a: env[a])
        if n is cut:
            break
    spatial_graph.output(env[cut])
    pool_graph = torch.fx.Graph()
    env = {cut: pool_graph.placeholder("spatial")}
    for n in list(features.graph.nodes)[list(features.graph.nodes).index(cut) + 1 :]:
        if n.op == "output":
            pool_graph.output(env[n.args[0]])
            break
        if any(a not in env for a in n.all_input_nodes):
            raise UserError(
                f"The pooling of {type(classifier).__name__}'s spatial features also reads earlier "
                "activations, so they cannot be weighted by a spatial mask."
            )
        env[n] = pool_graph.node_copy(n, lambda a: env[a])
    return (
        torch.fx.GraphModule(features, spatial_graph),
        torch.fx.GraphModule(features, pool_graph),
        head,
    )
