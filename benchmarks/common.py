"""Timing helpers shared by the benchmarks: best-of-N wall time and a machine description."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"


def interleaved_best(
    fns: dict[str, Callable[[], Any]], repeats: int = 3, device: torch.device | None = None
) -> dict[str, float]:
    """Best wall time of each function, run in interleaved rounds (a, b, c, a, b, c, ...)
    after one warm-up each: on a shared machine a burst of load then hits every contender,
    not only whichever happened to run during it, so their ratios stay meaningful."""
    for fn in fns.values():
        fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device is not None and device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device is not None and device.type == "cuda":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def machine_info(device: torch.device) -> dict[str, Any]:
    """What a timing depends on: software versions, processor, threads, device, load."""
    import numpy as np

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_results(name: str, payload: dict[str, Any], rows: list[dict[str, Any]]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**payload, "rows": rows}, indent=1))
    lines = ["| measurement | value |", "|---|---|"]
    lines += [f"| {row['name']} | {row['value']:.3f} |" for row in rows]
    lines += ["", "machine: " + json.dumps(payload.get("machine", {}))]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    return path
