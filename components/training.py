"""How the shipped synthetic assets are trained: seeds, helpers and one loop.

Every asset is trained on images of a synthetic world (``cfbench.api.world``, handed to each
kind's ``train`` by ``cfbench assets build``) with seeds disjoint from the benchmark's evaluation
split, with fixed seeds, and measured on held-out images. ``fit`` is the
one training loop (torch optimiser, torch learning-rate scheduler, a progress bar); a kind
passes its loss and, where it needs one, a step after each update.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from cfbench.api.world import HELDOUT_SEED, TRAIN_SEED  # noqa: F401 (the recipes import them here)


def as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1]."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1 / mse)


def cosine(steps: int) -> Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]:
    """Cosine decay to zero over ``steps``, in closed form (``LambdaLR``): the schedule the
    classifier, autoencoder, SimSiam and prior were trained with. ``CosineAnnealingLR`` computes the
    same curve recursively and differs in the last bits, which would change the shipped weights."""
    return lambda opt: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))
    )


def fit(
    params,
    steps: int,
    loss_fn: Callable[[int], torch.Tensor],
    desc: str,
    *,
    optimizer: Callable = None,
    schedule: Callable = None,
    after_step: Callable[[], None] | None = None,
    checkpoint: Path | None = None,
    state: dict | None = None,
    recipe: dict | None = None,
    every: int = 100,
) -> None:
    """``steps`` updates of ``params`` on ``loss_fn(step)``. Defaults: AdamW (lr 2e-3, weight decay
    1e-4) with the closed-form cosine schedule; ``after_step`` runs after every update (e.g. a
    projection or a weight average).

    With ``checkpoint``, the optimiser, the schedule and ``state`` (name -> module, averaged model
    or ``torch.Generator``: everything else the loss and ``after_step`` change) are saved there
    every ``every`` steps and restored when the file exists, so an hour-long build killed mid-way
    resumes where it stopped and ends with the same weights; the file is removed when training ends.
    The checkpoint keeps ``recipe`` (the caller's training options) and ``steps``: one left by a
    build with other options is not resumed but replaced, since its state belongs to another
    training."""
    params = list(params)
    opt = (optimizer or (lambda p: torch.optim.AdamW(p, lr=2e-3, weight_decay=1e-4)))(params)
    sched = (schedule or cosine(steps))(opt)
    saved = dict(state or {}, optimizer=opt, schedule=sched)
    start, recipe = 0, dict(recipe or {}, steps=steps)
    stored = torch.load(checkpoint) if checkpoint is not None and checkpoint.exists() else None
    if stored is not None and stored.get("recipe") != recipe:
        tqdm.write(
            f"{desc}: not resuming {checkpoint}: it was saved by a training with other options "
            f"({stored.get('recipe')}, now {recipe}); starting over"
        )
        stored = None
    if stored is not None:
        for name, obj in saved.items():
            obj.set_state(stored[name]) if isinstance(
                obj, torch.Generator
            ) else obj.load_state_dict(stored[name])
        start = stored["step"]
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps)
    for step in bar:
        loss = loss_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if after_step is not None:
            after_step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if checkpoint is not None and (step + 1) % every == 0 and step + 1 < steps:
            partial = checkpoint.with_name(checkpoint.name + ".tmp")
            torch.save(
                {"step": step + 1, "recipe": recipe}
                | {
                    name: obj.get_state() if isinstance(obj, torch.Generator) else obj.state_dict()
                    for name, obj in saved.items()
                },
                partial,
            )
            partial.replace(checkpoint)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
