"""Our training step against the raw forward/backward/step of the same model and batch.

    python -m benchmarks.training_step [--model resnet20] [--width 0.5] [--images 1024]
                                       [--repeats 3] [--threads 1]

One pass over ``--images`` synthetic 32x32 images, batch 128, SGD momentum, on CPU with
``--threads`` intra-op threads (1: what the engine pins training to, TRAINING_CPU_THREADS):

* raw: ``cross_entropy(model(x), y).backward(); opt.step()`` in a bare loop, in fp32,
  channels_last (NHWC weights and inputs) and bf16 autocast;
* ours: the ``standard`` recipe's :class:`~models.training.loop.TrainingLoop` on the same
  images (random crop + flip, per-epoch resume state, progress accounting), fp32 and bf16
  (``training.autocast``), channels_last (``training.channels_last``) and both.

Rounds are interleaved (benchmarks.common.interleaved_best) so load on a shared machine hits
every contender. Then each of our settings runs twice from the same seed: "reproducible"
means bit-identical weights. Writes benchmarks/results/training_step.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmark.datasets.base import ArrayDataset, DataInfo
from benchmark.utils import write_text_atomic
from benchmarks.common import RESULTS, interleaved_best, machine_info
from models import build_model
from models.training.engine import torch_threads
from models.training.recipes import TrainContext
from models.training.standard import StandardParams, train_standard

INFO = DataInfo(10, 3, (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
BATCH = 128
OURS = ("fp32", "bf16", "channels_last", "channels_last+bf16")


def fresh(model_key: str, width: float) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(model_key, {"width": width}, INFO).train()


def raw_pass(model_key: str, width: float, x, y, mode: str) -> None:
    model = fresh(model_key, width)
    if mode.startswith("channels_last"):
        model.use_channels_last()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    dtype = torch.bfloat16 if mode.endswith("bf16") else None
    for start in range(0, len(x), BATCH):
        xb, yb = x[start : start + BATCH], y[start : start + BATCH]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def ours_pass(model_key: str, width: float, data: ArrayDataset, mode: str) -> torch.Tensor:
    model = fresh(model_key, width)
    if mode.startswith("channels_last"):
        model.use_channels_last()  # as the engine does for training.channels_last
    params = StandardParams(epochs=1, lr=0.01, schedule="constant", warmup_epochs=0)
    with tempfile.TemporaryDirectory() as folder:
        ctx = TrainContext(
            torch.device("cpu"),
            seed=0,
            state_path=Path(folder) / "state.pt",
            progress=False,
            autocast=torch.bfloat16 if mode.endswith("bf16") else None,
        )
        torch.manual_seed(0)
        train_standard(model, data, None, params, ctx)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 3, 32, 32, generator=g)
    y = torch.randint(10, (args.images,), generator=g)
    data = ArrayDataset("synthetic", "train", x, y, INFO, torch.arange(args.images))
    m, w = args.model, args.width
    contenders = {
        **{f"raw {mode}": (lambda mode=mode: raw_pass(m, w, x, y, mode))
           for mode in ("fp32", "channels_last", "bf16", "channels_last+bf16")},
        **{f"ours {mode}": (lambda mode=mode: ours_pass(m, w, data, mode))
           for mode in OURS},
    }  # fmt: skip
    with torch_threads(args.threads):
        best = interleaved_best(contenders, repeats=args.repeats)
        reproducible = {
            mode: bool(torch.equal(ours_pass(m, w, data, mode), ours_pass(m, w, data, mode)))
            for mode in OURS
        }
    rate = {name: args.images / seconds for name, seconds in best.items()}
    rows = [
        {
            "setting": name,
            "images_per_s": rate[name],
            "vs_raw_fp32": rate[name] / rate["raw fp32"],
            "reproducible": reproducible[name.split()[-1]] if name.startswith("ours") else None,
        }
        for name in contenders
    ]
    result = {
        "model": f"{m} width {w}",
        "images": args.images,
        "batch_size": BATCH,
        "threads": args.threads,
        "rows": rows,
        "fastest_reproducible": max(
            (r for r in rows if r["reproducible"]), key=lambda r: r["images_per_s"]
        )["setting"],
        "ours_fp32_overhead_vs_raw_fp32": rate["raw fp32"] / rate["ours fp32"],
        "machine": {**machine_info(torch.device("cpu")), "torch_threads": args.threads},
    }
    lines = [
        f"# Training step: {m} width {w}, batch {BATCH}, {args.threads} thread(s), "
        f"{args.images} images",
        "",
        "| setting | images/s | vs raw fp32 | bit-identical rerun |",
        "|---|---:|---:|---|",
    ]
    for row in rows:
        again = "" if row["reproducible"] is None else ("yes" if row["reproducible"] else "no")
        lines.append(
            f"| {row['setting']} | {row['images_per_s']:.0f} | {row['vs_raw_fp32']:.2f} | {again} |"
        )
    lines += ["", "machine: " + json.dumps(result["machine"])]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / "training_step.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(RESULTS / "training_step.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
