import torch

from cfbench.components.training import psnr


def test_classifier_is_accurate_on_evaluation_split(task):
    s = task.load(task.sample_ids(64))
    with torch.no_grad():
        acc = (task.classifier(s.images).argmax(1) == s.labels).float().mean()
    assert acc >= 0.95


def test_autoencoder_reconstructs_with_a_16_channel_latent_grid_of_at_least_16x16(task):
    s = task.load(task.sample_ids(16))
    with torch.no_grad():
        z = task.component("autoencoder").encode(s.images)
        rec = task.component("autoencoder").decode(z)
    assert z.shape[1] == 16 and min(z.shape[-2:]) >= 16
    assert psnr(rec, s.images).mean() >= 26.0


def test_simsiam_embeds_and_is_not_collapsed(task):
    s = task.load(task.sample_ids(32))
    with torch.no_grad():
        e = torch.nn.functional.normalize(task.component("simsiam").embed(s.images), dim=1)
    assert e.shape == (32, 128)
    assert e.std(0).mean() > 0.01


def test_models_are_frozen_and_in_eval_mode(task):
    for model in (task.classifier, task.component("autoencoder"), task.component("simsiam")):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())


def test_diffae_of_other_widths_sizes_z_sem_to_its_time_embedding_and_reloads(tmp_path):
    """A wider UNet (a DiffAE training option) needs a z_sem as wide as its time embedding, since
    z_sem is added to it; the saved folder must bring the widths back."""
    from cfbench.components.diffae import DiffusionAutoencoder, new_diffae

    torch.manual_seed(0)
    model = new_diffae(widths=(8, 16, 16, 16)).eval()
    x = torch.rand(2, 3, 64, 64)
    z = model.semantic(x)
    assert model.z_dim == z.shape[1] == 32
    eps = model.epsilon(x * 2 - 1, torch.tensor([10, 500]), z)
    model.save(tmp_path / "dae")
    again = DiffusionAutoencoder.load(tmp_path / "dae").eval()
    with torch.no_grad():
        assert torch.equal(
            again.epsilon(x * 2 - 1, torch.tensor([10, 500]), again.semantic(x)), eps.detach()
        )


def test_the_face_classifiers_read_their_attribute_on_the_evaluation_split():
    """The explained face classifiers (manifest: held-out accuracy 0.996 smile, 0.981 age on 3000
    training-seed renders) also read the evaluation split's faces, which no asset was trained on."""
    from cfbench.catalog import TASKS

    for name in ("synth_smile", "synth_age"):
        task = TASKS.build(name)
        s = task.load(task.sample_ids(256))
        with torch.no_grad():
            acc = (task.classifier(s.images).argmax(1) == s.labels).float().mean()
        assert acc >= 0.96, (name, float(acc))
