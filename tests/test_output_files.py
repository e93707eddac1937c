"""Written files follow the umask (not mkstemp's 0600), and saving the same weights twice
gives the same bytes (the checkpoint SHA-256 is part of cache keys)."""

from __future__ import annotations

import os
import stat

import torch
from torch import nn

from benchmark.utils import file_sha256, write_text_atomic
from models.checkpoints import save_checkpoint


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.umask(0o077)
        write_text_atomic(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_saving_identical_weights_gives_identical_files(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    first = save_checkpoint(model, tmp_path / "one.pt")
    second = save_checkpoint(model, tmp_path / "two.pt")
    again = save_checkpoint(model, tmp_path / "one.pt")
    assert first == second == again == file_sha256(tmp_path / "two.pt")
