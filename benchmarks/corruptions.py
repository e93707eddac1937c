"""Throughput of the corruption generator: every corruption, severities 1..5, on 10,000
32x32 RGB images (the size of one CIFAR-10-C severity block).

    python -m benchmarks.corruptions [--n 10000] [--out benchmarks/results/corruptions.json]

Prints a table (seconds per severity block, images per second) and writes it with machine
information as JSON. Timings depend on the machine and its load; this is not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmark.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from benchmark.utils import write_text_atomic
from benchmarks.common import machine_info


def images(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth, CIFAR-like synthetic images (8-bit values), so that data-dependent steps
    (JPEG entropy coding, spatter edges) do realistic work."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear")
    x = (x + 0.1 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1)
    return torch.round(x * 255) / 255


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--out", default="benchmarks/results/corruptions.json")
    parser.add_argument("--only", nargs="*", default=None, help="corruption names")
    args = parser.parse_args(argv)
    x = images(args.n)
    rows = []
    print(f"{args.n} images 3x32x32, {torch.get_num_threads()} torch threads")
    print(f"{'corruption':18s} {'s/severity (1..5)':>44s} {'mean s':>7s} {'img/s':>8s}")
    for name in args.only or list(CORRUPTIONS):
        seconds = []
        for severity in SEVERITIES:
            start = time.perf_counter()
            corrupt(x, name, severity, seed=severity)
            seconds.append(time.perf_counter() - start)
        mean = sum(seconds) / len(seconds)
        rows.append(
            {"corruption": name, "seconds_per_severity": seconds, "mean_seconds": mean,
             "images_per_second": args.n / mean}
        )  # fmt: skip
        per = " ".join(f"{s:8.2f}" for s in seconds)
        print(f"{name:18s} {per:>44s} {mean:7.2f} {args.n / mean:8.0f}", flush=True)
    total = sum(sum(r["seconds_per_severity"]) for r in rows)
    print(f"total {total:.1f} s for {len(rows)} corruptions x 5 severities")
    report = {"n_images": args.n, "image_shape": [3, 32, 32],
              "machine": machine_info(torch.device("cpu")),
              "total_seconds": total, "results": rows}  # fmt: skip
    write_text_atomic(Path(args.out), json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
