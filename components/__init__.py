"""Component registry: every kind of model a task can provide, one module per kind.

Adding a kind: write ``components/<kind>.py`` with a ``Component`` subclass (see ``base.py``)
and add one line here. Tasks declare components by these names; ``cfbench assets build`` trains
every kind's shipped synthetic assets in dependency order.
"""
from cfbench.registry import Registry

COMPONENTS = Registry("component")
COMPONENTS.add("classifier", "cfbench.components.classifier:Classifier", "the classifier under explanation")
COMPONENTS.add("autoencoder", "cfbench.components.autoencoder:Autoencoder", "diffusers AutoencoderKL (SLCF's latent)")
COMPONENTS.add("simsiam", "cfbench.components.simsiam:SimSiamEncoder", "SimSiam embedding (S3; FID on synthetic tasks)")
COMPONENTS.add("sae", "cfbench.components.sae:SparseAutoencoder", "Matryoshka SAE on the classifier's penultimate features")
COMPONENTS.add("fid_features", "cfbench.components.fid_features:FIDFeatures", "torch-fidelity extractor for FID/sFID")
COMPONENTS.add("diffusion_prior", "cfbench.components.diffusion_prior:Prior", "pixel-space DDPM prior (RCSB)")
COMPONENTS.add("diffae", "cfbench.components.diffae:DiffAE", "diffusion autoencoder: z_sem + DDIM x_T (GCD)")
COMPONENTS.add("spurious_vae", "cfbench.components.spurious_vae:SpuriousFactorVAE",
               "VAE splitting penultimate features into causal C and spurious S, with g on S (CECAS)")
