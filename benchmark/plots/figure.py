"""Figure creation and PNG writing shared by the plot modules.

Figures are built with :class:`matplotlib.figure.Figure` directly, not ``pyplot``: no global
figure registry, no interactive backend is ever selected (saving a bare Figure renders with
Agg), and nothing leaks between plots or threads.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from matplotlib.figure import Figure

from benchmark.utils import atomic_path


def new_figure(width: float = 5.0, height: float = 4.0) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_png(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG atomically (a killed run never leaves a truncated image)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes (for artifacts stored in the result cache, and data URIs)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def file_stem(name: str) -> str:
    """A file-name-safe version of a model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
