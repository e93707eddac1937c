"""What pinning CPU training to one thread costs, and whether more threads stay reproducible.

    python -m benchmarks.training_threads [--width 0.5] [--images 1024] [--repeats 3]

Trains a CIFAR ResNet-20 (given width) for one pass over ``--images`` synthetic 32x32 images
(batch 128, SGD momentum, the standard recipe's step) with 1 thread and with every core,
interleaved (benchmarks.common.interleaved_best), and reports images/s and the ratio. Then it
repeats each setting from the same seed and reports whether the weights are bit-identical
run to run (same thread count) and across thread counts. Writes
benchmarks/results/training_threads.json. Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.nn.functional as F

from benchmark.datasets.base import DataInfo
from benchmark.utils import write_text_atomic
from benchmarks.common import RESULTS, interleaved_best, machine_info
from models import build_model
from models.training.engine import torch_threads

INFO = DataInfo(10, 3, (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def train_once(width: float, x: torch.Tensor, y: torch.Tensor, threads: int) -> torch.Tensor:
    """One epoch from seed 0 with ``threads`` intra-op threads; the flattened weights."""
    with torch_threads(threads):
        torch.manual_seed(0)
        model = build_model("resnet20", {"width": width}, INFO).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        for start in range(0, len(x), 128):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[start : start + 128]), y[start : start + 128]).backward()
            opt.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 3, 32, 32, generator=g)
    y = torch.randint(10, (args.images,), generator=g)
    settings = {1: "1 thread", cores: f"{cores} threads"}
    best = interleaved_best(
        {label: (lambda t=t: train_once(args.width, x, y, t)) for t, label in settings.items()},
        repeats=args.repeats,
    )
    weights = {t: [train_once(args.width, x, y, t) for _ in range(2)] for t in settings}
    result = {
        "model": f"resnet20 width {args.width}",
        "images": args.images,
        "images_per_s": {label: args.images / best[label] for label in settings.values()},
        "speedup_all_cores_vs_1": best["1 thread"] / best[settings[cores]],
        "bit_identical_run_to_run": {
            label: bool(torch.equal(*weights[t])) for t, label in settings.items()
        },
        "bit_identical_across_thread_counts": bool(torch.equal(weights[1][0], weights[cores][0])),
        "max_abs_weight_difference_1_vs_all": float(
            (weights[1][0] - weights[cores][0]).abs().max()
        ),
        "machine": machine_info(torch.device("cpu")),
    }
    for label, rate in result["images_per_s"].items():
        print(f"{label:>10}: {rate:7.1f} img/s (fwd+bwd+step)")
    print(f"speed-up with all cores: {result['speedup_all_cores_vs_1']:.2f}x")
    print(f"bit-identical run to run: {result['bit_identical_run_to_run']}")
    print(f"bit-identical across thread counts: {result['bit_identical_across_thread_counts']}")
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / "training_threads.json", json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
