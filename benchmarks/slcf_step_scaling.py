"""Where SLCF's batch speed-up comes from: one inner-loop step (decoder + classifier, forward and
backward) in ms per sample, by batch size and thread count.

    .venv/bin/python benchmarks/slcf_step_scaling.py [--task synth_cheetah_cougar] [--batches
    1,4,8,32]

``slcf_batch_speed.py`` measures the end-to-end ratio; this script explains it. If batching gains
little with one thread, the batch speed-up is bounded by the number of cores (a batch-1 step cannot
use the second one). ``--without-attention`` also times the decoder with its mid-block attention
removed: the images it decodes are meaningless, the timing shows what an attention-free autoencoder
would cost before anyone retrains one."""

from __future__ import annotations

import argparse
import json
import time

import torch

from cfbench.catalog import TASKS


def ms_per_sample(decode, classify, z: torch.Tensor, repeats: int) -> float:
    delta = torch.zeros_like(z, requires_grad=True)

    def step():
        classify(decode(z + delta)).sum().backward()

    for _ in range(2):
        step()  # warm-up: allocator and oneDNN kernel selection
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - t0) / repeats / len(z) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="synth_cheetah_cougar")
    ap.add_argument("--batches", default="1,4,8,32")
    ap.add_argument(
        "--samples-per-point", type=int, default=64, help="samples stepped per measurement"
    )
    ap.add_argument("--without-attention", action="store_true")
    args = ap.parse_args()
    task = TASKS.build(args.task, device=torch.device("cpu"))
    batches = [int(b) for b in args.batches.split(",")]
    images = task.load(task.sample_ids(max(batches))).images
    with torch.no_grad():
        latents = task.component("autoencoder").encode(images)
    variants = {"decoder": task.component("autoencoder").decode}
    if args.without_attention:
        import copy

        bare = copy.deepcopy(task.component("autoencoder"))
        mid = bare.vae.decoder.mid_block
        mid.attentions = torch.nn.ModuleList([None] * len(mid.attentions))
        variants["decoder without mid-block attention"] = bare.decode
    cores = torch.get_num_threads()
    for name, decode in variants.items():
        for threads in range(1, cores + 1):
            torch.set_num_threads(threads)
            row = {"variant": name, "threads": threads}
            for b in batches:
                row[f"b{b}"] = round(
                    ms_per_sample(
                        decode, task.classifier, latents[:b], max(2, args.samples_per_point // b)
                    ),
                    2,
                )
            row[f"speedup b{batches[-1]} vs b{batches[0]}"] = round(
                row[f"b{batches[0]}"] / row[f"b{batches[-1]}"], 2
            )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
