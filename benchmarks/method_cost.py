"""How close each method's time is to the cost of its network calls (issue 34).

    .venv/bin/python benchmarks/method_cost.py [--task synth_cheetah_cougar] [--n 16]
        [--methods slcf,rcsb_a,gcd,cecas,pgd] [--set METHOD.PARAM=VALUE ...] [--json out.json]

Per method, on ``n`` samples as one batch (the runner's default), fit included:

1. one instrumented run: wall seconds per counterfactual (the hooks' own cost included, so the
   ratio errs high); every forward of a network (classifier, autoencoder encoder/decoder, UNet,
   ...) is counted with its batch rows, timed, and its backward (if one follows) timed from the
   gradient arriving at its output to the gradient leaving its input;
2. a replay: one recorded call per distinct (network, input shapes, backward) signature is run
   again alone, with the same inputs, ``repeats`` times; its median times the count is the raw
   cost of the calls, the limit for that algorithm in this process.

``ratio`` = clean seconds / raw cost; the issue's bar is <= 1.3. Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from cfbench.catalog import METHODS, TASKS
from cfbench.spec import parse_overrides

# the submodules a component's methods call; a role not listed is timed as one network
NETWORKS = {
    "autoencoder": ("vae.encoder", "vae.decoder"),
    "diffusion_prior": ("unet",),
    "diffae": ("encoder", "unet"),
}


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif hasattr(value, "sample") and isinstance(value.sample, torch.Tensor):  # diffusers output
        yield value.sample


def _signature(args, kwargs) -> tuple:
    return tuple((tuple(t.shape), t.dtype, t.requires_grad) for t in _tensors((args, kwargs)))


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    return value


class Recorder:
    """Forward/backward hooks on named networks: counts, batch rows, seconds, one example each."""

    def __init__(self, networks: dict[str, nn.Module]):
        self.calls = defaultdict(int)  # (kind, signature, backward) -> count
        self.rows = defaultdict(int)  # "kind fwd"/"kind bwd" -> batch rows
        self.seconds = defaultdict(float)
        self.examples = {}  # (kind, signature) -> (module, args, kwargs)
        self.handles = []
        for kind, module in networks.items():
            self.handles.append(
                module.register_forward_pre_hook(self._pre(kind, module), with_kwargs=True)
            )
            self.handles.append(module.register_forward_hook(self._post(kind), with_kwargs=True))

    def _pre(self, kind, module):
        def hook(_, args, kwargs):
            sig = _signature(args, kwargs)
            self.examples.setdefault((kind, sig), (module, _clone(args), _clone(kwargs)))
            module._cost_started = (sig, time.perf_counter())

        return hook

    def _post(self, kind):
        def hook(module, args, kwargs, output):
            sig, started = module._cost_started
            self.seconds[f"{kind} fwd"] += time.perf_counter() - started
            rows = next(_tensors((args, kwargs))).shape[0]
            self.rows[f"{kind} fwd"] += rows
            out = next(_tensors(output), None)
            inputs = [t for t in _tensors((args, kwargs)) if t.requires_grad]
            if out is None or not out.requires_grad or not inputs:
                self.calls[(kind, sig, False)] += 1
                return
            mark = {}

            def start(grad):
                mark["t"] = time.perf_counter()

            def end(grad):
                if "t" in mark:
                    self.seconds[f"{kind} bwd"] += time.perf_counter() - mark.pop("t")
                    self.rows[f"{kind} bwd"] += rows
                    self.calls[(kind, sig, True)] += 1

            out.register_hook(start)
            inputs[0].register_hook(end)
            # a forward whose backward never runs counts as a forward only
            self.calls[(kind, sig, False)] += 1

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _replay(module, args, kwargs, backward: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        a, k = _clone(args), _clone(kwargs)
        inputs = [t for t in _tensors((a, k)) if t.requires_grad]
        t0 = time.perf_counter()
        with torch.enable_grad() if backward else torch.no_grad():
            out = next(_tensors(module(*a, **k)))
            if backward:
                torch.autograd.grad(out, inputs, grad_outputs=torch.ones_like(out))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def raw_cost(recorder: Recorder, repeats: int) -> float:
    """Seconds the recorded calls take replayed alone; a call with a backward counts its forward
    (recorded among the forwards) and its backward (here, forward + backward minus forward)."""
    measured = {}  # (kind, signature, with backward) -> seconds of one call

    def replay(kind, sig, grad: bool) -> float:
        if (kind, sig, grad) not in measured:
            module, args, kwargs = recorder.examples[(kind, sig)]
            measured[(kind, sig, grad)] = _replay(module, args, kwargs, grad, repeats)
        return measured[(kind, sig, grad)]

    total = 0.0
    for (kind, sig, backward), count in recorder.calls.items():
        if backward:
            total += count * max(replay(kind, sig, True) - replay(kind, sig, False), 0.0)
        else:
            total += count * replay(kind, sig, False)
    return total


def networks_of(task, method) -> dict[str, nn.Module]:
    found = {"classifier": task.classifier}
    features = getattr(method, "features", None)  # CECAS calls the classifier in two parts
    if isinstance(features, nn.Module) and features is not task.classifier:
        found["classifier.features"] = features
    for role in type(method).requires(method.hparams):
        if role == "classifier":
            continue
        component = task.component(role)
        for path in NETWORKS.get(role, ("",)):
            module = component.get_submodule(path) if path else component
            found[f"{role}.{path}" if path else role] = module
    return found


def run_once(name, task, device, ids, sets, store: Path):
    method = METHODS.build(name, task, device, **sets)
    recorder = Recorder(networks_of(task, method))
    batch = task.batch(ids)
    t0 = time.perf_counter()
    method.fit(ids, 0, store)
    cf = method.generate(batch)
    seconds = time.perf_counter() - t0
    recorder.remove()
    with torch.no_grad():
        fr = float((task.classifier(cf.images).argmax(1) == batch.target).float().mean())
    return seconds, fr, recorder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="synth_cheetah_cougar")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--methods", default="slcf,rcsb_a,gcd,cecas,pgd")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    device = torch.device("cpu")
    task = TASKS.build(args.task, device=device)
    ids = task.sample_ids(args.n)
    names = args.methods.split(",")
    sets = parse_overrides(args.sets, names)
    report = {"task": args.task, "n": args.n, "threads": torch.get_num_threads(), "methods": {}}
    for name in names:
        with tempfile.TemporaryDirectory() as store:
            seconds, fr, rec = run_once(name, task, device, ids, sets.get(name, {}), Path(store))
        raw = raw_cost(rec, args.repeats)
        row = {
            "sec_per_cf": round(seconds / args.n, 3),
            "FR": fr,
            "calls_per_cf": {k: round(v / args.n, 1) for k, v in sorted(rec.rows.items())},
            "sec_in_calls_per_cf": {
                k: round(v / args.n, 3) for k, v in sorted(rec.seconds.items())
            },
            "raw_cost_per_cf": round(raw / args.n, 3),
            "ratio": round(seconds / raw, 2) if raw else None,
        }
        report["methods"][name] = row
        print(name, json.dumps(row), flush=True)
    print("\n| method | sec/cf | raw call cost/cf | ratio | calls per cf (batch rows) |")
    print("|:--|--:|--:|--:|:--|")
    for name, row in report["methods"].items():
        calls = ", ".join(f"{k} {v:g}" for k, v in row["calls_per_cf"].items())
        print(
            f"| {name} | {row['sec_per_cf']} | {row['raw_cost_per_cf']} | {row['ratio']} | "
            f"{calls} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
