"""``cfbench assets build``: train the shipped synthetic assets, in dependency order.

Every kind lists its shipped assets (``Component.assets``: name -> training options, plus
``needs`` naming the assets it is trained against, default the asset named like the role, and
``world`` naming the synthetic world it is trained on, default ``animals``). The builder hands the
kind that world (``cfbench.api.world``); the measurements the kind returns and the wall-clock time
go into ``manifest.json`` next to the weights.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from cfbench.api.component import ASSETS
from cfbench.catalog import COMPONENTS, WORLDS
from cfbench.errors import UserError
from cfbench.results import write_json

DEFAULT_WORLD = "animals"


def shipped() -> dict[str, tuple[type, dict, dict[str, str]]]:
    """asset name -> (kind, training options, {role: asset it needs}), in dependency order."""
    found = {}
    for entry in COMPONENTS.entries():
        kind = entry.load()
        for name, options in kind.assets.items():
            options = dict(options)
            needs = {role: role for role in kind.needs} | options.pop("needs", {})
            found[name] = (kind, options, needs)
    ordered: dict = {}

    def visit(name, chain=()):
        if name in chain:
            raise ValueError(f"asset dependency cycle: {' -> '.join(chain + (name,))}")
        if name not in ordered:
            for dep in found[name][2].values():
                visit(dep, chain + (name,))
            ordered[name] = found[name]

    for name in found:
        visit(name)
    return ordered


def build(out: Path = ASSETS, only: list[str] | None = None) -> dict:
    """Train the requested assets (default: all) into ``out`` and update its manifest."""
    assets = shipped()
    unknown = [n for n in only or [] if n not in assets]
    if unknown:
        raise UserError(f"Unknown asset(s) {', '.join(unknown)}. Assets: {', '.join(assets)}.")
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    for name, (kind, options, needs) in assets.items():
        if only and name not in only:
            continue
        deps = {}
        for role, dep in needs.items():  # freshly built in ``out``, else the shipped one
            dep_kind = assets[dep][0]
            path = dep_kind.asset_path(
                dep, out if dep_kind.asset_path(dep, out).exists() else ASSETS
            )
            deps[role] = dep_kind.load(path, {}, shipped=True).eval()
        options = dict(options)
        world = WORLDS.get(options.pop("world", DEFAULT_WORLD)).load()
        t0 = time.time()
        stats = kind.train(kind.asset_path(name, out), deps, world, **options)
        stats.update(
            train_seconds=round(time.time() - t0, 1),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
        )
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest[name] = stats
        write_json(manifest_path, manifest)
        print(f"{name}: {stats}")
    return json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
