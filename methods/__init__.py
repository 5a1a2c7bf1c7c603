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
# RCSB (region-constrained, classifier-guided diffusion inpainting): the paper's presets A/B/C.
METHODS.add("rcsb_a", "cfbench.methods.rcsb:RCSB", "RCSB preset A: IG cells a=0.1, s=3", a=0.1, c=4, s=3.0, tau=0.6)
METHODS.add("rcsb_b", "cfbench.methods.rcsb:RCSB", "RCSB preset B: IG cells a=0.2, s=1.5", a=0.2, c=4, s=1.5, tau=0.6)
METHODS.add("rcsb_c", "cfbench.methods.rcsb:RCSB", "RCSB preset C: IG cells a=0.3, s=1.5", a=0.3, c=4, s=1.5, tau=0.6)
METHODS.add("rcsb", "cfbench.methods.rcsb:RCSB", "RCSB (= rcsb_a)", a=0.1, c=4, s=3.0, tau=0.6)
