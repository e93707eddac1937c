"""The recipes end to end through the real pipeline (``suites/recipes_digits.yaml``): the
adversarially trained models are clearly more robust than the standard one, and label
smoothing lowers confidence. Slow (~2 min on 2 cores): ``pytest -m slow``.

Label smoothing is *not* asserted to lower ECE: on digits the standard small CNN is already
calibrated (ECE about 1 %), and smoothing with eps = 0.1 caps the trained confidence near
0.9, so the smoothed model is underconfident and its ECE is higher (about 12 %, measured).
What smoothing reliably does -- and what AdaLS / AR-AdaLS build on -- is lower confidence."""

from __future__ import annotations

import pytest
import yaml

from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.suite import load_suite
from tests.conftest import REPO


@pytest.mark.slow
def test_recipes_digits_suite(tmp_path):
    raw = yaml.safe_load((REPO / "suites/recipes_digits.yaml").read_text())
    raw.update(output_dir=str(tmp_path / "run"), leaderboard_dir=str(tmp_path / "board"))
    path = tmp_path / "recipes_digits.yaml"
    path.write_text(yaml.safe_dump(raw))
    suite = load_suite(path)
    board = run_suite(suite, progress=False).leaderboard.set_index("model")
    robust = board["pgd_linf_0.1_robust_acc_pct"]
    for model in ("pgd_at", "trades"):
        assert robust[model] > robust["standard"] + 30, robust.to_dict()
    assert board.loc["pgd_at", "clean_acc_pct"] > 80 and board.loc["trades", "clean_acc_pct"] > 80
    cache = ResultCache(suite.cache_root)
    confidence = {
        job.row_name: cache.load_records(job.key)["confidence"].mean()
        for job in expand_jobs(suite, "cpu")
        if job.evaluation.type == "clean"
    }
    assert confidence["label_smoothing"] < confidence["standard"] - 0.03, confidence
    accuracy = board.loc["label_smoothing", "clean_acc_pct"] / 100
    assert confidence["label_smoothing"] < accuracy, (confidence, accuracy)  # underconfident
