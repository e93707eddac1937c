"""How close each job of a finished suite run came to the cost of the passes it needed.

    python -m benchmarks.suite_costs suites/cifar10-pretrained.yaml [--set FIELD=VALUE ...]

For every cached job the runner stored its wall time and the images it pushed through the
model, split into plain forward passes and forward passes recording autograd (each followed
by a backward). This script measures, per model and at the suite's batch size, the forward
and input-gradient throughput (best of interleaved rounds) and prints for each job

    ideal_s = forward_images / forward_rate + grad_images / grad_rate,   ratio = wall_s / ideal_s

A ratio near 1 means the evaluation costs what its passes cost; a large one points at
per-call overhead (small batches, Python loops, data movement). Writes
``benchmarks/results/costs_<suite>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json

import torch

from benchmark.runner.cache import ResultCache
from benchmark.runner.jobs import expand_jobs
from benchmark.runner.worker import SuiteData, materialize_model
from benchmark.suite.loader import load_suite
from benchmark.utils import resolve_device
from benchmarks.common import RESULTS, interleaved_best, machine_info


def throughput(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(forward images/s, input-gradient images/s) of ``model`` on the batch ``x``."""

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def input_grad() -> None:
        xg = x.clone().requires_grad_(True)
        model(xg).logsumexp(1).sum().backward()

    best = interleaved_best({"fwd": forward, "grad": input_grad}, repeats=3)
    return len(x) / best["fwd"], len(x) / best["grad"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    suite = load_suite(args.suite, args.set)
    device = resolve_device(suite.device)
    cache = ResultCache(suite.cache_root)
    data = SuiteData(suite)
    batch = data.evaluation_set().x[: suite.batch_size].to(device)
    jobs = expand_jobs(suite, device.type)
    rates: dict[str, tuple[float, float]] = {}
    rows = []
    for job in jobs:
        if not cache.has(job.key):
            continue
        cost = cache.load_summary(job.key).get("cost")
        if not cost:
            continue
        if job.model.row_name not in rates:
            model = materialize_model(job.model, suite, data, device, progress=False)
            for p in model.parameters():
                p.requires_grad_(False)
            rates[job.model.row_name] = throughput(model, batch)
        fwd_rate, grad_rate = rates[job.model.row_name]
        ideal = cost["forward_images"] / fwd_rate + cost["grad_images"] / grad_rate
        rows.append(
            {
                "model": job.row_name,
                "evaluation": job.evaluation_name,
                "wall_s": cost["seconds"],
                "forward_images": cost["forward_images"],
                "grad_images": cost["grad_images"],
                "ideal_s": ideal,
                "ratio": cost["seconds"] / ideal if ideal > 0 else float("nan"),
            }
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "suite": suite.name,
        "machine": machine_info(device),
        "rates_img_per_s": {m: {"forward": f, "input_grad": g} for m, (f, g) in rates.items()},
        "rows": rows,
    }
    (RESULTS / f"costs_{suite.name}.json").write_text(json.dumps(payload, indent=1))
    lines = [
        "| model | evaluation | wall s | fwd images | grad images | ideal s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['model']} | {r['evaluation']} | {r['wall_s']:.1f} | {r['forward_images']} | "
        f"{r['grad_images']} | {r['ideal_s']:.1f} | {r['ratio']:.2f} |"
        for r in rows
    ]
    total_wall = sum(r["wall_s"] for r in rows)
    total_ideal = sum(r["ideal_s"] for r in rows)
    lines += ["", f"total wall {total_wall:.0f} s, ideal {total_ideal:.0f} s"]
    lines += ["", "machine: " + json.dumps(payload["machine"])]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"costs_{suite.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
