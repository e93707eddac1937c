"""What ``autocast: bf16|fp16`` buys for prediction passes and training steps, and what it
changes in the predictions.

    python -m benchmarks.autocast [--device cpu|cuda] [--width 1.0] [--images 512] [--repeats 3]

Times, interleaved (benchmarks.common.interleaved_best), float32 vs bfloat16 vs float16 on a
CIFAR ResNet-20 of the given width with random weights and random 32x32 images:
``benchmark.inference.predict_probs`` over ``--images`` images (batch 128), and one pass of
training steps (forward and loss under autocast, backward and SGD step outside, as
``models.training.loop`` does; fp16 with a GradScaler). Reports images/s, the speed-ups over
float32, and the largest probability difference and prediction agreement against float32.
A precision the device cannot run is reported as skipped. Writes
benchmarks/results/autocast_<device>.json. Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F

from benchmark.datasets.base import DataInfo
from benchmark.errors import BenchmarkError
from benchmark.inference import autocast_dtype, precision, predict_probs
from benchmark.utils import write_text_atomic
from benchmarks.common import RESULTS, interleaved_best, machine_info
from models import build_model

INFO = DataInfo(10, 3, (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
PRECISIONS = ("fp32", "bf16", "fp16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.images, 3, 32, 32, generator=g)
    y = torch.randint(10, (args.images,), generator=g)
    torch.manual_seed(0)
    model = build_model("resnet20", {"width": args.width}, INFO).to(device).eval()

    dtypes: dict[str, torch.dtype | None] = {}
    skipped: dict[str, str] = {}
    for name in PRECISIONS:
        try:
            dtypes[name] = None if name == "fp32" else autocast_dtype(name, device, "autocast")
        except BenchmarkError as error:
            skipped[name] = str(error)

    def predict(dtype: torch.dtype | None):
        return predict_probs(model, x, batch_size=128, device=device, autocast=dtype)

    xd, yd = x.to(device), y.to(device)

    def train(dtype: torch.dtype | None) -> None:
        net = build_model("resnet20", {"width": args.width}, INFO).to(device).train()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        for start in range(0, len(xd), 128):
            opt.zero_grad(set_to_none=True)
            with precision(device, dtype):
                loss = F.cross_entropy(net(xd[start : start + 128]), yd[start : start + 128])
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    best_predict = interleaved_best(
        {n: (lambda d=d: predict(d)) for n, d in dtypes.items()}, args.repeats, device
    )
    best_train = interleaved_best(
        {n: (lambda d=d: train(d)) for n, d in dtypes.items()}, args.repeats, device
    )
    reference = predict(None)
    rows = {}
    for name, dtype in dtypes.items():
        probs = predict(dtype)
        rows[name] = {
            "predict_images_per_s": args.images / best_predict[name],
            "train_images_per_s": args.images / best_train[name],
            "predict_speedup_vs_fp32": best_predict["fp32"] / best_predict[name],
            "train_speedup_vs_fp32": best_train["fp32"] / best_train[name],
            "max_abs_prob_difference_vs_fp32": float(abs(probs - reference).max()),
            "prediction_agreement_vs_fp32": float((probs.argmax(1) == reference.argmax(1)).mean()),
        }
        r = rows[name]
        print(
            f"{name}: predict {r['predict_images_per_s']:8.1f} img/s "
            f"({r['predict_speedup_vs_fp32']:.2f}x), train {r['train_images_per_s']:7.1f} "
            f"img/s ({r['train_speedup_vs_fp32']:.2f}x), max |dp| "
            f"{r['max_abs_prob_difference_vs_fp32']:.4f}, agreement "
            f"{r['prediction_agreement_vs_fp32']:.3f}"
        )
    for name, why in skipped.items():
        print(f"{name}: skipped ({why})")
    result = {
        "model": f"resnet20 width {args.width}, random weights",
        "images": args.images,
        "precisions": rows,
        "skipped": skipped,
        "machine": machine_info(device),
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"autocast_{device.type}.json"
    write_text_atomic(path, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
