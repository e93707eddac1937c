"""Evaluation cost against its floor and against reference libraries, measured side by side.

    python -m benchmarks.attacks [--model resnet20] [--width 1.0] [--n 256] [--batch 128]
                                 [--steps 10] [--cw-steps 50] [--repeats 3] [--ic-images 200]
                                 [--device cpu] [--skip-corruptions] [--no-compile]

One process, one model (random weights: cost does not depend on training), one batch of
32x32x3 inputs labelled with the model's own predictions (so every example starts correctly
classified and no attack gets a free skip). Each comparison runs its contenders in interleaved
rounds and keeps the best time of each, so load bursts on a shared machine hit all of them.
Every attack measurement runs on the plain (NCHW) model, on its ``channels_last`` copy and on
its ``torch.compile``d copy (the suite options ``channels_last: true`` / ``compile: true``;
warm-up rounds absorb compilation). Prints and writes ``benchmarks/results/attacks.{json,md}``:

1. our PGD-k time / (k x one batched input-gradient pass): overhead over the floor;
2. our PGD-k time / torchattacks PGD-k time, identical settings (no early stopping);
3. our CW-L2 time / foolbox CW-L2 time at the same iteration budget (no early abort);
4. clean and corrupted (CIFAR-10-C files) inference throughput / raw forward throughput;
5. corruption generation throughput / the ``imagecorruptions`` package's on the same images
   (only if it imports: see the README's performance section; per corruption, with the reason
   where the package fails).
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmark.attacks import ATTACKS, AttackContext
from benchmark.attacks.minimal import CarliniWagnerL2
from benchmark.datasets.base import ArrayDataset
from benchmark.datasets.cifar10 import CIFAR10_INFO
from benchmark.evaluations.corruptions import CorruptionsEvaluation
from benchmark.evaluations.predictions import predict_probs
from benchmarks.common import interleaved_best, machine_info, write_results
from models import build_model

Row = dict[str, Any]


def input_gradient_floor(model: nn.Module, batches: list, steps: int) -> Any:
    """k batched input-gradient passes: what any k-step gradient attack must pay at least."""

    def run() -> None:
        for p in model.parameters():
            p.requires_grad_(False)
        for xb, yb in batches:
            for _ in range(steps):
                xb = xb.detach().requires_grad_(True)
                loss = nn.functional.cross_entropy(model(xb), yb, reduction="sum")
                torch.autograd.grad(loss, xb)
        for p in model.parameters():
            p.requires_grad_(True)

    return run


def versus(
    t: dict[str, float], number: str, attack: str, reference: str, layouts: list[str]
) -> list[Row]:
    """Ratio rows: ours / the reference library on each model layout, then ours on each
    faster layout / the reference on the plain model (what switching to us gives a user)."""
    rows = [
        {
            "name": f"ratio {number} ({layout}): our {attack} / {reference} {attack}, same model",
            "value": t[f"ours {layout}"] / t[f"{reference} {layout}"],
        }
        for layout in layouts
    ]
    rows += [
        {
            "name": f"ratio {number} (ours {layout} / {reference} plain)",
            "value": t[f"ours {layout}"] / t[f"{reference} plain"],
        }
        for layout in layouts
        if layout != "plain"
    ]
    return rows


def pgd_section(models: dict[str, nn.Module], batches: list, args: argparse.Namespace) -> list[Row]:
    import torchattacks

    eps, alpha, device = 8 / 255, 2 / 255, torch.device(args.device)
    entry = ATTACKS.get("pgd")
    params = {"steps": args.steps, "step_size": alpha, "random_start": True, "early_stop": False}
    attack = entry.obj(entry.params_model.model_validate(params))

    def ours(model: nn.Module) -> Any:
        def run() -> None:
            generator = torch.Generator().manual_seed(0)
            ctx = AttackContext(model, "Linf", eps, device, 0, args.batch, False, 1, generator)
            for xb, yb in batches:
                attack.perturb(xb, yb, ctx)

        return run

    def reference(model: nn.Module) -> Any:
        def run() -> None:
            pgd = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=args.steps)
            for xb, yb in batches:
                pgd(xb, yb)

        return run

    fns = {}
    for layout, model in models.items():
        fns[f"floor {layout}"] = input_gradient_floor(model, batches, args.steps)
        fns[f"ours {layout}"] = ours(model)
        fns[f"torchattacks {layout}"] = reference(model)
    t = interleaved_best(fns, args.repeats, device)
    k, n = args.steps, args.n
    rows = [{"name": f"PGD-{k}, {n} images: {name} (s)", "value": v} for name, v in t.items()]
    for layout in models:
        rows.append(
            {
                "name": f"ratio 1 ({layout}): our PGD / k input-gradient passes",
                "value": t[f"ours {layout}"] / t[f"floor {layout}"],
            }
        )
    rows += versus(t, "2", "PGD", "torchattacks", list(models))
    return rows


def cw_section(models: dict[str, nn.Module], batches: list, args: argparse.Namespace) -> list[Row]:
    import foolbox

    device = torch.device(args.device)
    x, y = batches[0]
    cw = CarliniWagnerL2(
        CarliniWagnerL2.Params(binary_search_steps=1, steps=args.cw_steps, abort_early=False)
    )

    def ours(model: nn.Module) -> Any:
        return lambda: cw.distances(model, x, y)

    def reference(model: nn.Module) -> Any:
        def run() -> None:
            attack = foolbox.attacks.L2CarliniWagnerAttack(
                binary_search_steps=1, steps=args.cw_steps, abort_early=False
            )
            fmodel = foolbox.PyTorchModel(model, bounds=(0, 1), device=device)
            attack(fmodel, x, y, epsilons=None)

        return run

    fns = {}
    for layout, model in models.items():
        fns[f"ours {layout}"] = ours(model)
        fns[f"foolbox {layout}"] = reference(model)
    t = interleaved_best(fns, max(2, args.repeats - 1), device)
    rows = [
        {"name": f"CW-L2, {args.cw_steps} iterations, {len(x)} images: {name} (s)", "value": v}
        for name, v in t.items()
    ]
    rows += versus(t, "3", "CW", "foolbox", list(models))
    floor = input_gradient_floor(models["plain"], [(x, y)], args.cw_steps)
    t_floor = interleaved_best({"floor": floor}, 1, device)["floor"]
    rows += [
        {"name": f"CW floor: {args.cw_steps} input-gradient passes, plain (s)", "value": t_floor},
        {"name": "foolbox CW plain / its floor", "value": t["foolbox plain"] / t_floor},
        {"name": "our CW plain / its floor", "value": t["ours plain"] / t_floor},
    ]
    return rows


def write_fake_cifar10c(root: Path, x: torch.Tensor, name: str) -> None:
    """A CIFAR-10-C folder with one corruption file: 5 severity blocks of ``x`` (uint8 NHWC)."""
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    images = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    np.save(folder / f"{name}.npy", np.concatenate([images] * 5))
    np.save(folder / "labels.npy", np.zeros(5 * len(x), dtype=np.uint8))


def inference_section(model: nn.Module, x: torch.Tensor, args: argparse.Namespace) -> list[Row]:
    device = torch.device(args.device)
    data = ArrayDataset("bench", "test", x, torch.zeros(len(x), dtype=torch.long), CIFAR10_INFO,
                        torch.arange(len(x)))  # fmt: skip

    def raw_forward(times: int) -> Any:
        def run() -> None:
            with torch.inference_mode():
                for _ in range(times):
                    for xb in x.split(args.batch):
                        model(xb.to(device))

        return run

    def clean() -> None:
        predict_probs(model, x, batch_size=args.batch, device=device)

    with tempfile.TemporaryDirectory() as tmp:
        write_fake_cifar10c(Path(tmp), x, "fog")
        evaluation = CorruptionsEvaluation(
            CorruptionsEvaluation.Params.model_validate(
                {"source": "cifar10c", "root": tmp, "corruptions": ["fog"], "n_examples": None}
            )
        )

        def corrupted() -> None:  # the evaluation's own path: read .npy, convert, predict
            for _, _, dataset in evaluation._sets(data):
                predict_probs(model, dataset.x, batch_size=args.batch, device=device)

        t = interleaved_best(
            {"raw forward": raw_forward(1), "clean inference": clean,
             "raw forward x5": raw_forward(5), "corrupted inference (5 severities)": corrupted},
            args.repeats, device,
        )  # fmt: skip
    rows = [{"name": f"{name}, {len(x)} images (s)", "value": v} for name, v in t.items()]
    rows += [
        {"name": "ratio 4a: clean inference throughput / raw forward throughput",
         "value": t["raw forward"] / t["clean inference"]},
        {"name": "ratio 4b: corrupted inference throughput / raw forward throughput",
         "value": t["raw forward x5"] / t["corrupted inference (5 severities)"]},
    ]  # fmt: skip
    return rows


def corruption_section(args: argparse.Namespace) -> list[Row]:
    """Our batched generator against imagecorruptions' per-image numpy loop, severity 3.

    Not identical work: imagecorruptions uses ImageNet-C's constants (sized for 224 px) and
    ours CIFAR-10-C's, so both do their own version of each corruption on the same images.
    """
    import time

    from benchmark.corruptions import CORRUPTIONS, corrupt
    from benchmarks.corruptions import images

    try:
        import imagecorruptions
    except ImportError as exc:
        return [{"name": f"ratio 5 skipped: imagecorruptions does not import ({exc})",
                 "value": float("nan")}]  # fmt: skip
    x = images(args.ic_images)
    hwc = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    rows: list[Row] = []
    speedups = []
    for name in CORRUPTIONS:
        corrupt(x[:2], name, 3, seed=0)  # warm-up: first-call costs (kernels, imports)
        start = time.perf_counter()
        corrupt(x, name, 3, seed=0)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        try:
            imagecorruptions.corrupt(hwc[0], corruption_name=name, severity=3)  # warm-up
            start = time.perf_counter()
            for image in hwc:
                imagecorruptions.corrupt(image, corruption_name=name, severity=3)
        except Exception as exc:  # the package's own breakage on current NumPy/scikit-image
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:100]
            rows.append({"name": f"ratio 5 {name}: imagecorruptions fails ({reason})",
                         "value": float("nan")})  # fmt: skip
            continue
        theirs = time.perf_counter() - start
        speedups.append(theirs / ours)
        rows.append({"name": f"ratio 5 {name}: our throughput / imagecorruptions'",
                     "value": theirs / ours})  # fmt: skip
    if speedups:
        geomean = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        label = f"{len(speedups)} corruptions, {args.ic_images} images, severity 3"
        rows.append({"name": f"ratio 5 geometric mean ({label})", "value": geomean})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cw-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ic-images", type=int, default=200)
    parser.add_argument("--skip-corruptions", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    plain = build_model(args.model, {"width": args.width}, CIFAR10_INFO).to(device).eval()
    models = {"plain": plain, "channels_last": copy.deepcopy(plain).use_channels_last()}
    if not args.no_compile:  # the suite options channels_last: true and compile: true
        compiled = copy.deepcopy(plain)
        compiled.compile()
        models["compiled"] = compiled
    x = torch.rand(args.n, 3, 32, 32, device=device)
    with torch.no_grad():  # not inference_mode: the labels enter autograd graphs later
        y = plain(x).argmax(1)  # correctly classified by construction
    batches = list(zip(x.split(args.batch), y.split(args.batch), strict=True))

    rows: list[Row] = []
    sections = [
        ("PGD", lambda: pgd_section(models, batches, args)),
        ("CW", lambda: cw_section(models, batches, args)),
        ("inference", lambda: inference_section(plain, x.cpu(), args)),
    ]
    if not args.skip_corruptions:
        sections.append(("corruptions", lambda: corruption_section(args)))
    for title, section in sections:
        print(f"-- {title}", flush=True)
        new = section()
        for row in new:
            print(f"{row['name']:<78}  {row['value']:.3f}", flush=True)
        rows += new
    payload = {"machine": machine_info(device), "args": vars(args)}
    path = write_results("attacks", payload, rows)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
