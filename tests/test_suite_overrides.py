"""``--set`` dotted overrides and ``.py`` plugin files next to the suite."""

from __future__ import annotations

import os

import pytest

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.suite import load_suite
from benchmark.suite.overrides import apply_override, parse_path
from tests.conftest import tiny_suite


def test_paths_in_both_spellings():
    assert parse_path("models[0].params.width", "x") == ["models", 0, "params", "width"]
    assert parse_path("models.0.params.width", "x") == ["models", 0, "params", "width"]
    for bad in ("", ".a", "a..b", "a[x]", "[0]"):
        with pytest.raises(BenchmarkError, match="cannot parse"):
            parse_path(bad, "x")


def test_values_keep_their_yaml_types_and_missing_keys_are_created():
    document = {"dataset": {"name": "digits"}, "models": [{"params": {}}]}
    apply_override(document, "dataset.root=../shared/data")
    apply_override(document, "dataset.n_examples=100")
    apply_override(document, "dataset.download=true")
    apply_override(document, "models[0].params.width=0.5")
    apply_override(document, "evaluations=[{type: clean}]")
    assert document == {
        "dataset": {
            "name": "digits",
            "root": "../shared/data",
            "n_examples": 100,
            "download": True,
        },
        "models": [{"params": {"width": 0.5}}],
        "evaluations": [{"type": "clean"}],
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.root", "expected FIELD=VALUE"),
        ("models[5].name=x", "models has 2 item(s), no index 5"),
        ("dataset[0]=x", "dataset is not a list"),
        ("name.first=x", "name is not a mapping"),
        ("seed=[1", "value: invalid YAML"),
    ],
)
def test_malformed_overrides_fail_in_one_line(tmp_path, write_suite, capsys, override, message):
    path = write_suite(tiny_suite(tmp_path))
    assert main(["validate", str(path), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and override in err


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("dataset.n_examples=0", "dataset.n_examples"),
        ("models[1].params.width=wide", "models[1].params.width"),
        ("dataset.nmae=x", "dataset.nmae: unknown field"),
        ("evaluations[0].type=nope", "evaluations[0].type: unknown evaluation"),
    ],
)
def test_overrides_are_validated_like_the_file(tmp_path, write_suite, capsys, override, field):
    path = write_suite(tiny_suite(tmp_path))
    assert main(["validate", str(path), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and field in err and str(path) in err


def test_overrides_change_what_runs(tmp_path, write_suite):
    path = write_suite(tiny_suite(tmp_path))
    suite = load_suite(path, ["dataset.n_examples=20", "models[0].params.width=0.5", "seed=9"])
    assert suite.dataset.n_examples == 20 and suite.seed == 9
    assert suite.models[0].params == {"width": 0.5}
    assert load_suite(path).dataset.n_examples == 60  # the file itself is untouched


PLUGIN = """
from torch import nn
from models import register_model


@register_model("file_plugin_mlp", "an MLP registered by a .py plugin next to the suite")
def file_plugin_mlp(num_classes: int, in_channels: int, *, hidden: int = 16) -> nn.Module:
    layers = [nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, num_classes)]
    return nn.Sequential(*layers)
"""


def test_py_plugin_is_relative_to_the_suite_file(tmp_path, write_suite, monkeypatch):
    from benchmark.runner import run_suite

    (tmp_path / "suites" / "plugins").mkdir(parents=True)
    (tmp_path / "suites" / "plugins" / "mlp.py").write_text(PLUGIN)
    spec = tiny_suite(tmp_path, plugins=["plugins/mlp.py"], sanity=False)
    spec["models"] = [{"model": "file_plugin_mlp", "params": {"hidden": 8}, "random_init": True}]
    path = write_suite(spec, "suites/suite.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the plugin path must not depend on the working directory
    suite = load_suite(path)
    assert suite.plugins == [str((tmp_path / "suites" / "plugins" / "mlp.py").resolve())]
    summary = run_suite(suite, progress=False, log=lambda _m: None)
    assert summary.leaderboard["model"].tolist() == ["file_plugin_mlp"]
    assert load_suite(path).plugins == suite.plugins  # importing twice registers once


def test_missing_or_broken_py_plugin_fails_in_one_line(tmp_path, write_suite, capsys):
    (tmp_path / "broken.py").write_text("raise RuntimeError('plugin exploded')\n")
    for plugin, message in [("absent.py", "no such file"), ("broken.py", "plugin exploded")]:
        path = write_suite(tiny_suite(tmp_path, plugins=[plugin]))
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "plugins[0]" in err and message in err
    assert os.path.exists(tmp_path / "broken.py")


def test_odd_field_names_are_escaped_into_one_line(tmp_path, write_suite, capsys):
    """Hypothesis found `models: [{"\\n": null}]`: the error line must not split."""
    spec = tiny_suite(tmp_path)
    spec["models"] = [{"\n": None, "model": "small_cnn", "random_init": True}]
    assert main(["validate", str(write_suite(spec))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "models[0].'\\n': unknown field" in err
