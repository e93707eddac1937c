"""Calibration of the incomplete-optimization indicator on the real checkpoints.

    python -m benchmarks.incomplete_optimization [--data ../shared/data] [--n 200]

Runs the ``pgd`` evaluation (the harness's own path, margin traces included) on the real
standard ResNet-20 and the real adversarially trained resnet4b of ``../shared/data``, on the
first ``--n`` images of the seed-0 CIFAR-10 test subset, once with PGD's default step size
(2.5 eps / steps: a converged attack, which must raise nothing) and once with a step size far
too small for its steps (an attack that stops while still making progress, which should
raise ``incomplete_optimization``). Prints and writes
``benchmarks/results/incomplete_optimization.md``: per setting, the robust examples with a
trace, how many of them were unfinished (margin still falling, on course to cross zero), and
whether the flag was raised.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmark.datasets import load_dataset
from benchmark.datasets.base import DataInfo
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmarks.common import RESULTS, machine_info
from models import build_model, load_checkpoint

# file, builder params, normalization (mean, std) -- ../shared/data/README.md
CHECKPOINTS = {
    "resnet20": (
        "akamaster_resnet20-12fca82f.th",
        {"shortcut": "A"},
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ),
    "resnet4b": (
        "abcrown__cifar10_resnet__resnet4b.pth",
        {},
        ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    ),
}
SETTINGS = [  # (label, pgd params)
    ("Linf 8/255, 10 steps, default step", {"norm": "Linf", "eps": "8/255", "steps": 10}),
    ("Linf 8/255, 20 steps, default step", {"norm": "Linf", "eps": "8/255", "steps": 20}),
    ("Linf 8/255, 50 steps, default step", {"norm": "Linf", "eps": "8/255", "steps": 50}),
    ("Linf 2/255, 20 steps, default step", {"norm": "Linf", "eps": "2/255", "steps": 20}),
    ("L2 0.5, 20 steps, default step", {"norm": "L2", "eps": 0.5, "steps": 20}),
    (
        "Linf 8/255, 20 steps of 0.1/255 (too small)",
        {"norm": "Linf", "eps": "8/255", "steps": 20, "step_size": "1/2550"},
    ),
    (
        "L2 0.5, 20 steps of 0.002 (too small)",
        {"norm": "L2", "eps": 0.5, "steps": 20, "step_size": 0.002},
    ),
]


def model_for(key: str, data_root: Path) -> torch.nn.Module:
    file, params, (mean, std) = CHECKPOINTS[key]
    info = DataInfo(num_classes=10, in_channels=3, image_size=(32, 32), mean=mean, std=std)
    model = build_model(key, params, info)
    load_checkpoint(model, data_root / "weights" / file)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    data = load_dataset("cifar10", "test", root=str(args.data)).subset(args.n, seed=0)
    ctx = EvalContext(torch.device("cpu"), 500, 0, progress=False, randomized=False)
    entry = EVALUATIONS.get("pgd")
    lines = [
        f"# Incomplete-optimization indicator on real checkpoints ({args.n} CIFAR-10 test images)",
        "",
        "| model | PGD setting | robust acc % | traced robust | unfinished | unfinished % | flag |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for key in CHECKPOINTS:
        model = model_for(key, args.data)
        for label, params in SETTINGS:
            result = entry.obj(entry.params_model.model_validate(params)).run(model, data, ctx)
            counts = result.extras["loss_traces"]["pgd"]
            traced, unfinished = counts["traced"], counts["unfinished"]
            pct = f"{100 * unfinished / traced:.0f}" if traced else "-"
            flag = "raised" if "incomplete_optimization" in result.extras.get("flags", []) else ""
            line = (
                f"| {key} | {label} | {result.metrics['robust_acc_pct']:.1f} | {traced} | "
                f"{unfinished} | {pct} | {flag} |"
            )
            print(line, flush=True)
            lines.append(line)
    lines += ["", f"machine: {machine_info(torch.device('cpu'))}"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "incomplete_optimization.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
