"""Attack cost against its floor and against reference libraries, measured side by side.

    python -m benchmarks.attacks [--model resnet20] [--width 1.0] [--n 256] [--batch 128]
                                 [--steps 10] [--cw-steps 50] [--device cpu]

Prints and writes (benchmarks/results/attacks.{json,md}):
1. our PGD-k time / (k x one batched input-gradient pass): overhead over the floor;
2. our PGD-k time / torchattacks PGD-k time, identical settings (no early stopping);
3. our CW-L2 time / foolbox CW-L2 time at the same iteration budget (no early abort);
4. our clean-evaluation throughput / raw forward throughput (pipeline overhead).
Random-weight 32x32x3 models: the costs measured here do not depend on training.
"""

from __future__ import annotations

import argparse

import torch

from benchmark.attacks import ATTACKS, AttackContext
from benchmark.attacks.minimal import CWConfig, carlini_wagner_l2
from benchmark.datasets.cifar10 import CIFAR10_INFO
from benchmark.evaluations.predictions import predict_probs
from benchmarks.common import best_time, machine_info, write_results
from models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cw-steps", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(args.model, {"width": args.width}, CIFAR10_INFO).to(device).eval()
    x = torch.rand(args.n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.n,), device=device)
    eps, alpha = 8 / 255, 2 / 255
    batches = list(zip(x.split(args.batch), y.split(args.batch), strict=True))
    rows: list[dict[str, float | str]] = []

    def input_grad_pass() -> None:
        for p in model.parameters():
            p.requires_grad_(False)
        for xb, yb in batches:
            xb = xb.clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xb), yb, reduction="sum")
            torch.autograd.grad(loss, xb)
        for p in model.parameters():
            p.requires_grad_(True)

    pgd = ATTACKS.get("pgd")
    attack = pgd.obj(
        pgd.params_model.model_validate(
            {"steps": args.steps, "step_size": alpha, "random_start": True, "early_stop": False}
        )
    )

    def ours() -> None:
        ctx = AttackContext(
            model, "Linf", eps, device, 0, args.batch, False, 1, torch.Generator().manual_seed(0)
        )
        for xb, yb in batches:
            attack.perturb(xb, yb, ctx)

    def torchattacks_pgd() -> None:
        import torchattacks

        reference = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=args.steps)
        for xb, yb in batches:
            reference(xb, yb)

    floor = best_time(input_grad_pass, device=device)
    t_ours = best_time(ours, device=device)
    t_ta = best_time(torchattacks_pgd, device=device)
    rows += [
        {"name": f"input-gradient pass, {args.n} images (s)", "value": floor},
        {"name": f"our PGD-{args.steps} (s)", "value": t_ours},
        {"name": f"torchattacks PGD-{args.steps} (s)", "value": t_ta},
        {"name": "ratio 1: our PGD / (k x floor)", "value": t_ours / (args.steps * floor)},
        {"name": "ratio 2: our PGD / torchattacks PGD", "value": t_ours / t_ta},
    ]

    cw_x, cw_y = batches[0]
    config = CWConfig(binary_search_steps=1, steps=args.cw_steps, abort_early=False)

    def ours_cw() -> None:
        carlini_wagner_l2(model, cw_x, cw_y, config)

    def foolbox_cw() -> None:
        import foolbox

        attack = foolbox.attacks.L2CarliniWagnerAttack(
            binary_search_steps=1, steps=args.cw_steps, abort_early=False
        )
        attack(foolbox.PyTorchModel(model, bounds=(0, 1), device=device), cw_x, cw_y, epsilons=None)

    t_cw, t_fb = best_time(ours_cw, 2, device), best_time(foolbox_cw, 2, device)
    rows += [
        {"name": f"our CW-L2, {args.cw_steps} iterations (s)", "value": t_cw},
        {"name": f"foolbox CW-L2, {args.cw_steps} iterations (s)", "value": t_fb},
        {"name": "ratio 3: our CW / foolbox CW", "value": t_cw / t_fb},
    ]

    def raw_forward() -> None:
        with torch.inference_mode():
            for xb, _ in batches:
                model(xb)

    def clean_eval() -> None:
        predict_probs(model, x, batch_size=args.batch, device=device)

    t_fwd, t_eval = best_time(raw_forward, device=device), best_time(clean_eval, device=device)
    rows += [
        {"name": "raw forward (s)", "value": t_fwd},
        {"name": "clean evaluation (s)", "value": t_eval},
        {
            "name": "ratio 4: clean-eval throughput / raw forward throughput",
            "value": t_fwd / t_eval,
        },
    ]
    payload = {"machine": machine_info(device), "args": vars(args)}
    path = write_results("attacks", payload, rows)
    width = max(len(str(r["name"])) for r in rows)
    for row in rows:
        print(f"{row['name']:<{width}}  {row['value']:.3f}")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
