"""The shipped spurious-factor VAEs: S does not move when only the label changes, C carries the
label, and g reads the label from S only where the background is tied to it."""

from __future__ import annotations

import torch
from conftest import make_task

from cfbench.components.spurious_vae import _representations
from cfbench.components.training import HELDOUT_SEED
from cfbench.tasks.worlds.animals import ANIMALS


def test_s_is_invariant_to_the_label_and_g_reads_the_shortcut_only_where_there_is_one():
    for name, rho in (("synth_cheetah_cougar_shortcut", 1.0), ("synth_cheetah_cougar", 0.0)):
        task = make_task(name)
        vae = task.component("spurious_vae")
        r, r_partner, y, _ = _representations(
            ANIMALS, task.classifier, HELDOUT_SEED + 7, 120, bg_correlation=rho
        )
        with torch.no_grad():
            s, s_partner = vae.spurious(r), vae.spurious(r_partner)
            spread = (s - s.mean(0)).norm(dim=1).mean()
            # the label intervention leaves S
            assert (s - s_partner).norm(dim=1).mean() < 0.25 * spread
            causal_acc = (vae.label_head(vae.causal(r)).argmax(1) == y).float().mean()
            g_acc = (vae.spurious_logits(r).argmax(1) == y).float().mean()
        assert causal_acc > 0.9
        if rho:
            assert g_acc > 0.9  # the tone in S names the class
        else:
            assert g_acc < 0.6  # S knows the animal family, not which of the pair (chance 1/2)
