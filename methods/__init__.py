"""Method registry. Adding a method: write ``methods/<name>.py`` with a ``CounterfactualMethod``
subclass and add one line here (a preset is a line with fixed keyword arguments)."""
from cfbench.registry import Registry

METHODS = Registry("method")
METHODS.add("slcf", "cfbench.methods.slcf:SLCF", "SLCF: latent edit with LAG mask (two stages)")
