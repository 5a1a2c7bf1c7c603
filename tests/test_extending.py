"""docs/extending.md's recipes: a toy method, metric, attribution map, model component, task and
experiment, each added with
one module (here: a class or function in this file) plus one registry line in cfbench/catalog.py,
and found everywhere it should be."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from cfbench.api.attribution import Attribution
from cfbench.api.component import Component
from cfbench.api.method import CounterfactualMethod, HParams, hparam
from cfbench.api.metric import Metric
from cfbench.api.task import Task, TaskSamples
from cfbench.api.types import Counterfactuals
from cfbench.catalog import (
    ATTRIBUTIONS,
    COMPONENTS,
    EXPERIMENTS,
    METHODS,
    METRICS,
    TABLES,
    TASKS,
)
from cfbench.cli import main
from cfbench.tables import Layout


class Brighten(CounterfactualMethod):
    """Toy method: x + eps, through the task's toy component (a fixed offset)."""

    @dataclass(frozen=True)
    class Params(HParams):
        eps: float = hparam(0.1, "positive", "how much brighter")

    @classmethod
    def requires(cls, params):
        return ("classifier", "offset")

    def generate(self, batch):
        images = (batch.images + self.hparams.eps + self.task.component("offset").value).clamp(0, 1)
        ones = torch.ones(len(batch), dtype=torch.long)
        return Counterfactuals(images, None, {"steps": ones, "nfe": ones})


class MeanChange(Metric):
    """Toy metric: mean absolute change per pixel."""

    name = "MEAN_CHANGE"
    higher_is_better = False
    decimals = 4
    tolerance = (0.001, 0.0)

    def per_sample(self, ctx):
        return {self.name: (ctx.counterfactuals.images - ctx.batch.images).abs().flatten(1).mean(1)}


class Brightness(Attribution):
    """Toy attribution map: how bright each pixel is (what the toy classifier reads), weighted
    from left to right so the map orders the pixels."""

    label = "Brightness"

    def explain(self, x, source, target):
        return x.mean(1, keepdim=True) * torch.linspace(0.1, 1.0, x.shape[-1])


class Offset(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.register_buffer("value", torch.tensor(value))


class OffsetKind(Component):
    """Toy component kind: a constant, 'trained' as the mean brightness of some images."""

    kind = "offset"
    what = "a brightness offset"
    how = "a file written by `cfbench assets build --only offset`"
    assets = {"offset": {"n": 8}}
    asset_suffix = ".json"

    @classmethod
    def load(cls, where, needs, shipped):
        return Offset(json.loads(where.read_text())["value"])

    @classmethod
    def train(cls, out, needs, world, n):
        value = float(torch.rand(n, generator=torch.Generator().manual_seed(0)).mean()) * 0.01
        out.write_text(json.dumps({"value": value}))
        return {"value": value, "n": n}


class Squares(Task):
    """Toy task: a dark or a bright square; a one-layer classifier reads the brightness."""

    name = "toy_squares"
    class_names = ("dark", "bright")
    pair = (0, 1)
    image_size = 8
    components = {}

    def __init__(self, device=torch.device("cpu"), folder: str = ""):
        super().__init__(device)
        self.components = {
            "classifier": f"{folder}/classifier.pt",
            "offset": f"{folder}/assets/offset.json",
        }

    def sample_ids(self, n):
        return [f"sq{i}" for i in range(n or 4)]

    def load(self, ids):
        labels = torch.tensor([int(i[2:]) % 2 for i in ids])
        images = (0.3 + 0.4 * labels.float()).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).clone()
        return TaskSamples(images, labels, list(ids))


class Threshold(nn.Module):
    """Brightness above 0.5 is 'bright'."""

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], 1) * 20


SWEEP_TABLE = Layout(
    "Brightness sweep",
    ("FR", "MEAN_CHANGE"),
    ("eps",),
    rows=lambda metrics: metrics.assign(eps=metrics["run"]),
)


def add_sweep_command(subparsers) -> None:
    """Toy experiment: the brighten method at several eps, one run each, and a table over them."""

    def sweep(args) -> int:
        from cfbench.runner import Runner, RunSpec

        for eps in args.eps.split(","):
            out = Path(args.out) / f"eps-{eps}"
            Runner(
                RunSpec(
                    task="toy_squares",
                    methods=["brighten"],
                    n=4,
                    metrics="FR,MEAN_CHANGE",
                    out=out,
                    overrides=[f"brighten.eps={eps}"],
                )
            ).execute()
            metrics = pd.read_csv(out / "metrics.csv").assign(run=eps)
            metrics.to_csv(out / "metrics.csv", index=False)
        return 0

    parser = subparsers.add_parser("brighten-sweep", help="toy: brighten at several eps")
    parser.add_argument("--eps", default="0.1,0.3")
    parser.add_argument("--out", required=True)
    parser.set_defaults(func=sweep)


@pytest.fixture
def registered(monkeypatch, tmp_path):
    """One registry line per toy (the registries are restored after the test)."""
    for registry in (METHODS, METRICS, ATTRIBUTIONS, COMPONENTS, TASKS, EXPERIMENTS, TABLES):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    METHODS.add("brighten", "test_extending:Brighten", "toy: brighten the image")
    METRICS.add("MEAN_CHANGE", "test_extending:MeanChange", "toy: mean absolute change")
    ATTRIBUTIONS.add("brightness", "test_extending:Brightness", "toy: pixel brightness")
    COMPONENTS.add("offset", "test_extending:OffsetKind", "toy: a brightness offset")
    TASKS.add(
        "toy_squares",
        "test_extending:Squares",
        "toy: dark and bright squares",
        folder=str(tmp_path),
    )
    EXPERIMENTS.add(
        "brighten-sweep", "test_extending:add_sweep_command", "toy: brighten at several eps"
    )
    TABLES.add("sweep", "test_extending:SWEEP_TABLE", "toy: the brightness sweep")
    torch.jit.script(Threshold()).save(str(tmp_path / "classifier.pt"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_toy_of_each_kind_runs_through_the_cli(registered, capsys):
    assets = registered / "assets"
    assert main(["assets", "build", "--only", "offset", "--out", str(assets)]) == 0  # the component
    assert json.loads((assets / "manifest.json").read_text())["offset"]["n"] == 8
    argv = [
        "run",
        "--task",
        "toy_squares",
        "--methods",
        "brighten",
        "--n",
        "4",
        "--metrics",
        "FR,MEAN_CHANGE",
        "--set",
        "brighten.eps=0.3",
        "--out",
        "run",
    ]
    assert main(argv) == 0
    metrics = pd.read_csv("run/metrics.csv")
    assert metrics.loc[0, "FR"] == 0.5  # the two dark squares became bright
    assert metrics.loc[0, "MEAN_CHANGE"] == pytest.approx(0.3, abs=0.02)
    capsys.readouterr()
    assert main(["table", "run"]) == 0 and "MEAN_CHANGE ↓" in capsys.readouterr().out
    assert main(["regress", "run", "--baseline", "b.json", "--update"]) == 0
    assert json.loads(open("b.json").read())["methods"]["brighten"]["MEAN_CHANGE"] > 0
    assert main(["run", *argv[1:-4], "--set", "brighten.eps=0.35", "--out", "run2"]) == 0
    # its own tolerance flags the change
    assert main(["regress", "run2", "--baseline", "b.json"]) == 1
    assert "MEAN_CHANGE" in capsys.readouterr().out


def test_a_method_needing_a_missing_component_is_refused_before_any_work(registered, capsys):
    argv = ["run", "--task", "toy_squares", "--methods", "brighten", "--n", "2", "--out", "run"]
    assert main(argv) == 2 and "brightness offset" in capsys.readouterr().err
    assert not (registered / "run").exists()
    assert (
        main(["run", "--task", "toy_squares", "--methods", "brighten", "--set", "brighten.eps=-1"])
        == 2
    )
    assert "Method 'brighten': eps must be > 0" in capsys.readouterr().err.replace("\n", " ")


def test_a_toy_experiment_adds_its_command_and_its_table(registered, capsys):
    assert main(["assets", "build", "--only", "offset", "--out", str(registered / "assets")]) == 0
    assert main(["list", "experiments"]) == 0 and "brighten-sweep" in capsys.readouterr().out
    assert main(["brighten-sweep", "--eps", "0.1,0.3", "--out", "sweep"]) == 0
    capsys.readouterr()
    assert main(["table", "sweep/eps-0.1", "sweep/eps-0.3", "--table", "sweep"]) == 0
    table = capsys.readouterr().out
    assert "Brightness sweep" in table and "| 0.3 " in table and "MEAN_CHANGE ↓" in table


def test_a_toy_attribution_is_scored_by_localize(registered, capsys):
    assert main(["list", "attributions"]) == 0 and "brightness" in capsys.readouterr().out
    argv = ["localize", "--task", "toy_squares", "--attributions", "brightness", "--n", "4"]
    assert main([*argv, "--out", "loc"]) == 0
    metrics = pd.read_csv("loc/metrics.csv")
    assert metrics["method"].tolist() == ["brightness"] and metrics["PF"].notna().all()
    assert "Brightness" in capsys.readouterr().out  # its label in Table 4
