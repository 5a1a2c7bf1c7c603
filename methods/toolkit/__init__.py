"""What several methods build on, and no method on its own: per-sample optimisers, mask
post-processing, attribution maps (integrated gradients in pixels and latents) and the regions a
region-constrained method edits in."""
