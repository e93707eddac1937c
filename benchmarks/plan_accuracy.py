"""How far ``python -m benchmark plan``'s pass counts lie from what a finished run spent.

    python -m benchmarks.plan_accuracy suites/cifar10-pretrained.yaml

Reads the per-job costs ``benchmarks.suite_costs`` recorded for the suite
(``benchmarks/results/costs_<suite>.json``: the images each job pushed through the model,
forward and with gradients, and the measured throughput of each model), plans the same jobs
without timing anything, and prints per evaluation kind the ratio planned / recorded of the
ideal seconds (passes divided by the recorded throughput): 1 means the plan counted exactly
the passes the run spent; attacks come out above 1 because the plan is an upper bound
(every example surviving every step). Writes ``benchmarks/results/plan_accuracy_<suite>.md``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

from benchmark.runner.plan import plan_suite
from benchmark.suite.loader import load_suite
from benchmarks.common import RESULTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    suite = load_suite(args.suite, args.set)
    recorded = json.loads((RESULTS / f"costs_{suite.name}.json").read_text())
    rates = recorded["rates_img_per_s"]
    planned = {
        tuple(w.label.split(" x ", 1)): w
        for w in plan_suite(suite, measure=False)
        if w.kind == "evaluate"
    }
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    lines = ["| model | evaluation | recorded ideal s | planned ideal s | planned / recorded |"]
    lines.append("|---|---|---:|---:|---:|")
    for row in recorded["rows"]:
        work = planned.get((row["model"], row["evaluation"]))
        rate = rates.get(row["model"])
        if work is None or rate is None:
            continue
        ideal = work.forward_images / rate["forward"] + work.grad_images / rate["input_grad"]
        kind = row["evaluation"].split("_")[0]
        by_kind[kind][0] += row["ideal_s"]
        by_kind[kind][1] += ideal
        ratio = ideal / row["ideal_s"] if row["ideal_s"] else float("nan")
        lines.append(
            f"| {row['model']} | {row['evaluation']} | {row['ideal_s']:.1f} | {ideal:.1f} | "
            f"{ratio:.2f} |"
        )
    lines += ["", "| evaluation kind | recorded ideal s | planned ideal s | planned / recorded |"]
    lines.append("|---|---:|---:|---:|")
    total = [0.0, 0.0]
    for kind, (spent, plan) in sorted(by_kind.items()):
        total[0] += spent
        total[1] += plan
        lines.append(f"| {kind} | {spent:.0f} | {plan:.0f} | {plan / spent:.2f} |")
    lines.append(f"| all | {total[0]:.0f} | {total[1]:.0f} | {total[1] / total[0]:.2f} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"plan_accuracy_{suite.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
