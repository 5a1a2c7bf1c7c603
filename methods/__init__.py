"""Method registry. Adding a method: write ``methods/<name>.py`` with a ``CounterfactualMethod``
subclass and add one line here (a preset is a line with fixed keyword arguments)."""
from cfbench.registry import Registry

METHODS = Registry("method")
METHODS.add("slcf", "cfbench.methods.slcf:SLCF", "SLCF: latent edit with LAG mask (two stages)")
# SLCF ablations (paper Table 3: edit space x mask) and "Ours + SAE": presets of the same class.
METHODS.add("slcf_lag1", "cfbench.methods.slcf:SLCF", "SLCF with LAG* (mask from one stage-1 step)", stage1_steps=1)
METHODS.add("slcf_lig", "cfbench.methods.slcf:SLCF", "SLCF with latent integrated gradients mask (Eq. 4)", mask="lig")
METHODS.add("slcf_ig", "cfbench.methods.slcf:SLCF", "SLCF with pixel IG mask (captum) on the latent grid", mask="ig")
METHODS.add("latent", "cfbench.methods.slcf:SLCF", "unmasked latent edit (SLCF without mask)", mask="none")
METHODS.add("pixel", "cfbench.methods.slcf:SLCF", "unmasked pixel edit (no autoencoder)", space="pixel", mask="none")
METHODS.add("pixel_ig", "cfbench.methods.slcf:SLCF", "pixel edit with pixel IG mask", space="pixel", mask="ig")
METHODS.add("slcf_sae", "cfbench.methods.slcf:SLCF", "SLCF + SAE trait-sparsity loss (lambda_t=0.1)", lambda_t=0.1)
# SLCF as released (Imageomics simple-localized-counterfactuals): experiments/configs/cfg_2.py `configs` with
# pipelines/latent_edit.py (the imagenet_paired.py entry point), cfg_1.py (the per-pair scripts), and cfg_2's
# `sae_configs` with pipelines/sae_latent_edit.py. Values are in the code's units (units="code" converts them).
_SLCF_CODE = dict(lr=0.1, lambda_s=0.1, stop_rule="code", confidence=0.95, patience=5, stage2_start="zero", noise=2.0,
                  lag_sign="positive", sigma=3.0, threshold=0.5, class_loss="logit", roundtrip=True, residual=False,
                  return_noiseless=True, units="code")
METHODS.add("slcf_code", "cfbench.methods.slcf:SLCF", "SLCF as released (cfg_2, imagenet_paired.py)", **_SLCF_CODE)
METHODS.add("slcf_code_v1", "cfbench.methods.slcf:SLCF", "SLCF as released (cfg_1, per-pair scripts)",
            **{**_SLCF_CODE, "lr": 1.0, "lambda_s": 0.0, "confidence": 0.9, "noise": 0.2, "lag_sign": "abs",
               "sigma": 1.0, "threshold": 0.2})
# slcf_sae_code: cfg_2's sae_configs with pipelines/sae_latent_edit.py (reference from the reconstruction,
# stage 2 on mask-weighted spatial features, L1-mean SAE loss, no trait loss in stage 1).
METHODS.add("slcf_sae_code", "cfbench.methods.slcf:SLCF", "SLCF + SAE as released (cfg_2 sae_configs, SAE pipeline)",
            **{**_SLCF_CODE, "noise": 1.0, "lambda_t": 0.1, "sae_reference": "reconstruction",
               "sae_features": "masked_spatial", "sae_loss": "mean"})
# RCSB (region-constrained, classifier-guided diffusion inpainting): the paper's presets A/B/C.
METHODS.add("rcsb_a", "cfbench.methods.rcsb:RCSB", "RCSB preset A: IG cells a=0.1, s=3", a=0.1, c=4, s=3.0, tau=0.6)
METHODS.add("rcsb_b", "cfbench.methods.rcsb:RCSB", "RCSB preset B: IG cells a=0.2, s=1.5", a=0.2, c=4, s=1.5, tau=0.6)
METHODS.add("rcsb_c", "cfbench.methods.rcsb:RCSB", "RCSB preset C: IG cells a=0.3, s=1.5", a=0.3, c=4, s=1.5, tau=0.6)
METHODS.add("rcsb", "cfbench.methods.rcsb:RCSB", "RCSB (= rcsb_a)", a=0.1, c=4, s=3.0, tau=0.6)
# GCD (global, black-box directions in a diffusion autoencoder's semantic space): paper text vs released code.
METHODS.add("gcd", "cfbench.methods.gcd:GCD", "GCD g-direction (paper presets; CPU preset on synthetic models)")
METHODS.add("gcd_code", "cfbench.methods.gcd:GCD", "GCD g-direction with the released configs", preset="code")
METHODS.add("gcd_h", "cfbench.methods.gcd:GCD", "GCD h-direction number `index` (Hessian eigenvector)", direction="h")
METHODS.add("gcd_random", "cfbench.methods.gcd:GCD", "control: a random unit direction searched like GCD's",
            direction="random")
# CECAS (causally guided PGD on classifier after purification, spurious term, mask attack, RePaint refinement)
# and its ablations.
METHODS.add("cecas", "cfbench.methods.cecas:CECAS", "CECAS: causally guided PGD + mask + RePaint refinement")
METHODS.add("cecas_no_ls", "cfbench.methods.cecas:CECAS", "CECAS without the spurious term L_S", spurious_weight=0.0)
METHODS.add("cecas_no_refine", "cfbench.methods.cecas:CECAS", "CECAS without refinement (x' is the result)",
            refine=False)
METHODS.add("pgd", "cfbench.methods.cecas:CECAS", "targeted PGD alone (no L_S, no purification, no refinement)",
            spurious_weight=0.0, purify=False, refine=False)
