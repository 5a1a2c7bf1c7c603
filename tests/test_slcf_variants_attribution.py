"""The ablation's attributions against independent closed forms (no trained assets needed)."""

import torch
from torch import nn

from cfbench.api.types import Batch
from cfbench.methods.attributions import latent_integrated_gradients
from cfbench.methods.slcf import SLCF, LatentEditSpace, Trajectory

C, G, K = 4, 8, 3  # latent channels, latent grid, classes; images are 3 x 32 x 32


class LinearAE(nn.Module):
    """Linear decoder D(z) = W z (and a linear encoder) on a 4 x 8 x 8 latent."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.w = nn.Parameter(
            torch.randn(3 * 32 * 32, C * G * G, generator=gen) / 30, requires_grad=False
        )

    def decode(self, z):
        return (z.flatten(1) @ self.w.T).view(-1, 3, 32, 32)

    def encode(self, x):
        return (x.flatten(1) @ self.w).view(-1, C, G, G)


class FakeTask:
    def __init__(self, classifier, ae=None):
        self.classifier, self.ae = classifier, ae

    def component(self, role):
        assert role == "autoencoder"
        return self.ae

    def declared(self):
        return {"autoencoder": "asset:autoencoder"}


def linear_classifier():
    gen = torch.Generator().manual_seed(2)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, K))
    with torch.no_grad():
        clf[1].weight.copy_(torch.randn(K, 3 * 32 * 32, generator=gen) / 50)
        clf[1].bias.zero_()
    return clf.requires_grad_(False)


def method(task, **kw):
    return SLCF(task, torch.device("cpu"), **{**SLCF.Params.defaults(), "residual": False, **kw})


def test_lig_of_linear_decoder_and_classifier_equals_its_closed_form():
    clf, ae = linear_classifier(), LinearAE()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    target = torch.tensor([2, 0])
    space = LatentEditSpace.encode(ae, x, residual=False)
    delta = torch.randn(space.code.shape, generator=gen)
    stage1 = Trajectory(
        delta,
        x,
        torch.zeros_like(delta),
        *(torch.ones(2, dtype=torch.long),) * 2,
        torch.ones(2, dtype=torch.bool),
    )
    batch = Batch(x, torch.tensor([1, 1]), target, ["a", "b"])
    got = method(FakeTask(clf, ae), mask="lig").attribution(space, batch, stage1)
    # f_t(D(z)) = a_t . W z, so its gradient is W^T a_t for every alpha and LIG = dz * W^T a_t.
    grad = (clf[1].weight[target] @ ae.w).view(2, C, G, G)
    expected = (delta * grad).abs().sum(1, keepdim=True)
    assert got.shape == (2, 1, G, G)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_lig_satisfies_completeness_for_a_quadratic_score():
    """With a gradient linear in alpha the midpoint rule is exact: sum LIG = f(z + dz) - f(z)."""
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(C * G * G, C * G * G, generator=gen) / 40

    def score(z):
        v = z.flatten(1)
        return ((v @ q) * v).sum(1)

    z, dz = torch.randn(3, C, G, G, generator=gen), torch.randn(3, C, G, G, generator=gen)
    lig = latent_integrated_gradients(score, z, dz, steps=7)
    assert torch.allclose(lig.flatten(1).sum(1), score(z + dz) - score(z), rtol=1e-4, atol=1e-4)


def test_ig_mask_of_a_linear_classifier_is_input_times_weight_pooled_to_the_grid():
    """captum IG from a black baseline of a linear logit is x * w_source exactly."""
    clf, ae = linear_classifier(), LinearAE()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    source = torch.tensor([0, 2])
    space = LatentEditSpace.encode(ae, x, residual=False)
    batch = Batch(x, source, torch.tensor([1, 1]), ["a", "b"])
    got = method(FakeTask(clf, ae), mask="ig", ig_steps=8).attribution(space, batch, None)
    per_pixel = (x * clf[1].weight[source].view(2, 3, 32, 32)).abs().sum(1, keepdim=True)
    expected = per_pixel.view(2, 1, G, 4, G, 4).mean((3, 5))
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
