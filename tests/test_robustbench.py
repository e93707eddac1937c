"""RobustBench bridge, offline: zoo entries fail with one clear line when the package does not
import or cannot download; JSON entries export with numbers as numbers and import as
reference rows."""

from __future__ import annotations

import json
import sys
import types

import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.robustbench import read_entries, reference_rows, to_entries
from benchmark.suite import load_suite
from models import MODELS
from tests.conftest import tiny_suite


def zoo_suite(tmp_path, write_suite, **params):
    suite = tiny_suite(tmp_path)
    suite["models"] = [
        {"name": "rb", "model": "robustbench:Standard", "params": params, "pretrained": True}
    ]
    suite["evaluations"] = [{"type": "clean", "params": {"bootstrap": 0}}]
    return write_suite(suite)


def run_and_capture(path, capsys) -> tuple[int, list[str]]:
    code = main(["run", str(path), "--quiet"])
    return code, capsys.readouterr().err.strip().splitlines()


def test_zoo_entries_resolve_any_name_and_validate_parameters(tmp_path, write_suite):
    entry = MODELS.get("robustbench:Carmon2019Unlabeled")
    assert set(entry.params_model.model_fields) == {"dataset", "threat_model", "model_dir"}
    assert "robustbench:Anything" in MODELS and "nothing:Anything" not in MODELS
    from benchmark.suite.loader import SuiteError

    with pytest.raises(SuiteError, match=r"models\[0\]\.params\.threat_model"):
        load_suite(zoo_suite(tmp_path, write_suite, threat_model="Linf3"))


def test_missing_package_fails_in_one_line(tmp_path, write_suite, capsys, monkeypatch):
    # the PyPI robustbench 1.1.1 situation: its import chain needs 'autoattack'
    monkeypatch.setitem(sys.modules, "robustbench", None)
    monkeypatch.setitem(sys.modules, "robustbench.utils", None)
    code, err = run_and_capture(zoo_suite(tmp_path, write_suite), capsys)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: robustbench:Standard: the 'robustbench' package does not")
    assert "autoattack" in err[0]


def _fake_robustbench(monkeypatch, load_model) -> None:
    package = types.ModuleType("robustbench")
    utils = types.ModuleType("robustbench.utils")
    utils.load_model = load_model
    package.utils = utils
    monkeypatch.setitem(sys.modules, "robustbench", package)
    monkeypatch.setitem(sys.modules, "robustbench.utils", utils)


def test_offline_download_fails_in_one_line(tmp_path, write_suite, capsys, monkeypatch):
    def offline(**kwargs):
        raise OSError("Failed to establish a new connection:\n[Errno 101] Network is unreachable")

    _fake_robustbench(monkeypatch, offline)
    code, err = run_and_capture(zoo_suite(tmp_path, write_suite), capsys)
    assert code == 2 and len(err) == 1, err
    assert "could not load it (OSError: Failed to establish" in err[0]
    assert "online" in err[0]


class _UnitInputProbe(nn.Module):
    """Records the range of what it receives; RobustBench models expect [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)
        self.seen: list[tuple[float, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((float(x.min()), float(x.max())))
        return self.head(x.flatten(1))


def test_a_loaded_zoo_model_gets_unnormalized_input(tmp_path, write_suite, monkeypatch):
    from benchmark.runner import run_suite

    probe = _UnitInputProbe()
    calls = []

    def load_model(**kwargs):
        calls.append(kwargs)
        return probe

    _fake_robustbench(monkeypatch, load_model)
    path = zoo_suite(tmp_path, write_suite, threat_model="L2", model_dir=str(tmp_path / "zoo"))
    board = run_suite(load_suite(path), progress=False, log=lambda _m: None).leaderboard
    assert calls == [
        {
            "model_name": "Standard",
            "model_dir": str(tmp_path / "zoo"),
            "dataset": "cifar10",
            "threat_model": "L2",
        }
    ]
    assert probe.seen and all(low >= 0.0 and high <= 1.0 for low, high in probe.seen)
    assert board.loc[0, "model"] == "rb" and 0 <= board.loc[0, "clean_acc_pct"] <= 100


# --- JSON entries ----------------------------------------------------------------------


@pytest.fixture
def aa_suite(tmp_path, write_suite):
    suite = tiny_suite(tmp_path)
    suite["evaluations"] = [
        {"type": "clean"},
        {"type": "autoattack", "params": {"norm": "Linf", "eps": "8/255", "n_examples": 10}},
    ]
    return load_suite(write_suite(suite))


def test_export_uses_robustbench_fields_with_numbers_as_numbers(aa_suite, tmp_path):
    frame = pd.DataFrame(
        {
            "model": ["cnn", "rn20"],
            "arch": ["small_cnn", "resnet20"],
            "randomized": [False, False],
            "flags": ["", "degenerate_gradients"],
            "clean_acc_pct": [91.5, 88.25],
            "autoattack_linf_8/255_robust_acc_pct": [40.0, 12.5],
        }
    )
    entries = to_entries(aa_suite, frame)
    assert [(threat, model) for threat, model, _ in entries] == [("Linf", "cnn"), ("Linf", "rn20")]
    cnn = entries[0][2]
    expected_fields = [
        "link",
        "name",
        "authors",
        "additional_data",
        "number_forward_passes",
        "dataset",
        "venue",
        "architecture",
        "eps",
        "clean_acc",
        "reported",
        "autoattack_acc",
    ]
    assert list(cnn) == expected_fields
    assert cnn["clean_acc"] == 91.5 and isinstance(cnn["clean_acc"], float)
    assert cnn["autoattack_acc"] == 40.0 and cnn["eps"] == "8/255" and cnn["dataset"] == "digits"
    assert entries[1][2]["footnote"] == "trust flags: degenerate_gradients"

    from benchmark.robustbench import export_entries

    # a flagged row is refused unless asked for; then it carries its flags as the footnote
    with pytest.raises(BenchmarkError, match=r"row\(s\) rn20 carry trust flags.*--allow-flagged"):
        export_entries(aa_suite, frame, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    paths = export_entries(aa_suite, frame, tmp_path / "rb", allow_flagged=True)
    assert json.loads(paths[1].read_text())["footnote"] == "trust flags: degenerate_gradients"
    assert paths[0] == tmp_path / "rb" / "digits" / "Linf" / "cnn.json"
    assert json.loads(paths[0].read_text()) == cnn
    # and what we export reads back as reference rows with the same numbers
    (threat, model_id, entry), _ = read_entries(tmp_path / "rb")
    assert (threat, model_id, entry["autoattack_acc"]) == ("Linf", "cnn", 40.0)


def test_robustbench_string_entries_become_reported_rows(aa_suite, tmp_path):
    folder = tmp_path / "model_info" / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    entry = {
        "link": "https://example.org/paper",
        "name": "A paper",
        "authors": "Someone",
        "additional_data": True,
        "number_forward_passes": 1,
        "dataset": "cifar10",
        "venue": "Somewhere 2020",
        "architecture": "WideResNet-28-10",
        "eps": "8/255",
        "clean_acc": "89.5",  # RobustBench's own files hold strings
        "reported": "62.5",
        "autoattack_acc": "59.25",
    }
    (folder / "Someone2020Paper.json").write_text(json.dumps(entry))
    measured = pd.DataFrame({"model": ["cnn"], "flags": [""], "clean_acc_pct": [90.0]})
    frame = reference_rows(aa_suite, measured, [str(tmp_path / "model_info")])
    assert frame["source"].tolist() == ["measured", "reported"]
    reported = frame.iloc[1]
    assert reported["model"] == "Someone2020Paper (reported)"
    assert reported["clean_acc_pct"] == 89.5
    assert reported["autoattack_linf_8/255_robust_acc_pct"] == 59.25
    assert reported["reported_acc_pct"] == 62.5

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    from benchmark.errors import BenchmarkError

    with pytest.raises(BenchmarkError, match="not a JSON file"):
        read_entries(bad)


def test_suite_references_add_rows_to_the_leaderboard(tmp_path, write_suite):
    from benchmark.runner import run_suite

    entry = {"name": "x", "dataset": "digits", "eps": "8/255", "clean_acc": 97.0}
    entry["autoattack_acc"] = 50.0
    (tmp_path / "Ref2024.json").write_text(json.dumps(entry))
    suite = tiny_suite(tmp_path, references=[str(tmp_path / "Ref2024.json")])
    suite["evaluations"] = [{"type": "clean", "params": {"bootstrap": 0}}]
    board = run_suite(load_suite(write_suite(suite)), progress=False, log=lambda _m: None)
    frame = board.leaderboard
    assert frame["model"].tolist() == ["cnn", "rn20", "Ref2024 (reported)"]
    assert frame.iloc[2]["clean_acc_pct"] == 97.0
    assert frame.iloc[2]["robustbench_linf_acc_pct"] == 50.0
    html = (tmp_path / "leaderboard" / "tiny.html").read_text()
    assert 'class="reported"' in html

    missing = tiny_suite(tmp_path, references=[str(tmp_path / "nope.json")])
    from benchmark.suite.loader import SuiteError

    with pytest.raises(SuiteError, match=r"references\[0\]: file or folder not found"):
        load_suite(write_suite(missing, "missing.yaml"))
