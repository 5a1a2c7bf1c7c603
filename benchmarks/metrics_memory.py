"""Peak memory of a scored run at n = 64 vs n = 512: metrics must stream (issue 4 bar).

    .venv/bin/python benchmarks/metrics_memory.py [--task synth_egyptian_persian] [--sizes 64,512]
    [--threads 2]

Each size runs in its own process: ``cfbench run`` with ``--metrics all`` on a cheap stand-in method
(one signed-gradient step toward the target, registered only inside this script), so the measurement
is about the metric suite and the runner, not about a method's optimiser. The child reports its peak
resident set size (``ru_maxrss``) and the time of the metric summary; the only state that should
grow with n is the stored FID feature matrices (n x 128 x 8 bytes per folder) and the per-sample
rows."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from cfbench.api.method import CounterfactualMethod, HParams, hparam
from cfbench.api.types import Counterfactuals


class SignedStep(CounterfactualMethod):
    """x + eps * sign(grad of the target log-probability): one classifier forward and backward."""

    name = "bench_signed_step"

    @dataclass(frozen=True)
    class Params(HParams):
        eps: float = hparam(0.1, "positive")

    def generate(self, batch):
        x = batch.images.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = -F.cross_entropy(self.task.classifier(x), batch.target, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x)
        images = (batch.images + self.hparams.eps * grad.sign()).clamp(0, 1)
        ones = torch.ones(len(batch), dtype=torch.long)
        return Counterfactuals(
            images, grad.abs().sum(1, keepdim=True), {"steps": ones, "nfe": ones}
        )


def child(task: str, n: int, out: Path, threads: int) -> None:
    from cfbench.catalog import METHODS
    from cfbench.runner import Runner, RunSpec

    METHODS.add(SignedStep.name, f"{__name__}:SignedStep")
    torch.set_num_threads(threads)
    runner = Runner(
        RunSpec(task=task, methods=[SignedStep.name], n=n, batch_size=32, device="cpu", out=out)
    )
    finalize = runner._finalize
    timing = {}

    def timed_finalize(*args):
        t0 = time.perf_counter()
        finalize(*args)
        timing["summary_seconds"] = time.perf_counter() - t0

    runner._finalize = timed_finalize
    t0 = time.perf_counter()
    run = runner.execute()
    metrics = run.read_metrics().iloc[0].to_dict()
    print(
        json.dumps(
            {
                "n": n,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "total_seconds": time.perf_counter() - t0,
                **timing,
                "metrics": {
                    k: metrics.get(k) for k in ("FR", "COUT", "S3", "FID", "sFID", "PF", "GT_IN")
                },
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_egyptian_persian")
    ap.add_argument("--sizes", default="64,512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.task, args.child, args.out, args.threads)
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--task",
                    args.task,
                    "--child",
                    str(n),
                    "--threads",
                    str(args.threads),
                    "--out",
                    str(Path(tmp) / f"n{n}"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    base = results[0]["peak_rss_mb"]
    for r in results[1:]:
        print(
            f"peak RSS n={r['n']}: {r['peak_rss_mb']:.0f} MB vs n={results[0]['n']}: {base:.0f} MB "
            f"(+{r['peak_rss_mb'] - base:.0f} MB)"
        )


if __name__ == "__main__":
    main()
