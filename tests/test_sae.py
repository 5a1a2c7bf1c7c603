"""The Matryoshka SAE: the shipped asset's quality and the trait loss's effect on SLCF."""

import torch
from conftest import make_batch
from test_slcf_variants import build

from cfbench.api.classifier import split
from cfbench.components import training
from cfbench.components.sae import MatryoshkaSAE, evaluate_sae, penultimate_activations
from cfbench.tasks.worlds.animals import ANIMALS


def test_shipped_sae_reconstructs_held_out_activations_with_few_features(task):
    images, _ = ANIMALS.images(training.HELDOUT_SEED + 7, 300)
    stats = evaluate_sae(
        task.component("sae"), penultimate_activations(task.classifier, training.as_float(images))
    )
    assert stats["explained_variance"] >= 0.95
    assert stats["mean_active_features"] <= 0.1 * stats["dictionary_size"]
    # Matryoshka: the smallest prefix reconstructs on its own.
    assert stats["explained_variance_per_prefix"][str(task.component("sae").prefixes[0])] >= 0.9
    reloaded = MatryoshkaSAE.from_state_dict(task.component("sae").state_dict())
    assert (
        reloaded.prefixes == task.component("sae").prefixes and reloaded.size == 8 * stats["width"]
    )


def test_trait_loss_lowers_the_sae_feature_change(task):
    batch = make_batch(task, task.sample_ids(4))
    sae, feats = task.component("sae"), split(task.classifier)[0]

    def change(name):
        cf = build(task, name).generate(batch).images
        with torch.no_grad():
            return (sae.encode(feats(cf)) - sae.encode(feats(batch.images))).abs().sum(1).mean()

    assert change("slcf_sae") < change("slcf")
