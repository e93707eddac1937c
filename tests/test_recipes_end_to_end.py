"""The recipes end to end through the real pipeline (``suites/recipes_digits.yaml``): the
adversarially trained models are clearly more robust than the standard one, and label
smoothing is better calibrated. Slow (~10 min on 2 cores): ``pytest -m slow``."""

from __future__ import annotations

import pytest
import yaml

from benchmark.runner import run_suite
from benchmark.suite import load_suite
from tests.conftest import REPO


@pytest.mark.slow
def test_recipes_digits_suite(tmp_path):
    raw = yaml.safe_load((REPO / "suites/recipes_digits.yaml").read_text())
    raw.update(output_dir=str(tmp_path / "run"), leaderboard_dir=str(tmp_path / "board"))
    path = tmp_path / "recipes_digits.yaml"
    path.write_text(yaml.safe_dump(raw))
    board = run_suite(load_suite(path), progress=False).leaderboard.set_index("model")
    robust = board["pgd_linf_0.1_robust_acc_pct"]
    for model in ("pgd_at", "trades"):
        assert robust[model] > robust["standard"] + 30, robust.to_dict()
    assert board.loc["pgd_at", "clean_acc_pct"] > 80 and board.loc["trades", "clean_acc_pct"] > 80
    ece = board["clean_ece_pct"]
    assert ece["label_smoothing"] < ece["standard"], ece.to_dict()
