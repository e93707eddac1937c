"""Hostile suite values fail validation in one line instead of a traceback (or silently):
duplicate keys, numbers too large for a float or a seed, absurd sizes, a plugin exiting."""

from __future__ import annotations

import pytest
import yaml

from benchmark.suite import load_suite
from benchmark.suite.loader import SuiteError
from tests.conftest import tiny_suite


def _write(tmp_path, text: str):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_duplicate_keys_are_refused_with_their_line(tmp_path):
    text = yaml.safe_dump(tiny_suite(tmp_path), sort_keys=False)
    text = text.replace("seed: 3\n", "seed: 3\nseed: 4\n", 1)
    with pytest.raises(SuiteError, match=r"line \d+: duplicate key 'seed'") as info:
        load_suite(_write(tmp_path, text))
    assert len(info.value.lines) == 1


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    suite = tiny_suite(tmp_path)
    del suite["models"]
    text = yaml.safe_dump(suite, sort_keys=False) + (
        "models:\n"
        "  - &m {name: cnn, model: small_cnn, params: {width: 0.25}, random_init: true}\n"
        "  - {<<: *m, name: cnn2}\n"
    )
    loaded = load_suite(_write(tmp_path, text))
    assert [m.row_name for m in loaded.models] == ["cnn", "cnn2"]


@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        (("evaluations", 0), {"type": "pgd", "params": {"eps": "1e400"}}, "eps"),
        (("evaluations", 0), {"type": "pgd", "params": {"eps": "1/0"}}, "eps"),
        (("dataset", "subset_seed"), 10**40, "subset_seed"),
        (("seed",), 10**40, "seed"),
        (("evaluations", 0), {"type": "clean", "params": {"n_bins": 10**12}}, "n_bins"),
        (
            ("evaluations", 0),
            {"type": "pgd", "params": {"eps": 0.1, "eot_samples": 10**9}},
            "eot_samples",
        ),
        (
            ("evaluations", 0),
            {
                "type": "torchattacks",
                "params": {"eps": 0.1, "attack": "PGD", "kwargs": {"steps": 10**9}},
            },
            "kwargs.steps",
        ),
        (
            ("evaluations", 0),
            {
                "type": "torchattacks",
                "params": {"eps": 0.1, "attack": "EOTPGD", "kwargs": {"eot_iter": 0}},
            },
            "kwargs.eot_iter",
        ),
        (
            ("models", 0),
            {
                "name": "trained",
                "model": "small_cnn",
                "training": {"recipe": "standard", "params": {"epochs": 10**9}},
            },
            "epochs",
        ),
        (
            ("models", 0),
            {
                "name": "trained",
                "model": "small_cnn",
                "training": {"recipe": "pgd_at", "params": {"epochs": 10**6}},
            },
            "epochs",
        ),
    ],
)
def test_huge_or_infinite_numbers_fail_in_one_line(tmp_path, write_suite, where, value, expected):
    suite = tiny_suite(tmp_path)
    target = suite
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(suite))
    assert any(expected in line for line in info.value.lines)
    assert all("\n" not in line for line in info.value.lines)


def test_a_plugin_calling_sys_exit_is_an_error_not_silence(tmp_path, write_suite):
    plugin = tmp_path / "leaves.py"
    plugin.write_text("import sys\nsys.exit(0)\n")
    suite = tiny_suite(tmp_path, plugins=[str(plugin)])
    with pytest.raises(SuiteError, match="SystemExit"):
        load_suite(write_suite(suite))


RAISING_PLUGIN = """
from torch import nn
from models import register_model


class Raises(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.linear = nn.Linear(1, num_classes)

    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\\n(2x64 and 1x10)")


@register_model("raising_forward", "forward raises")
def raising_forward(num_classes, in_channels):
    return Raises(num_classes, in_channels)
"""


def test_a_model_whose_forward_raises_fails_in_one_line(tmp_path, write_suite):
    from benchmark.errors import BenchmarkError
    from benchmark.runner import run_suite

    plugin = tmp_path / "raising_plugin.py"
    plugin.write_text(RAISING_PLUGIN)
    suite = tiny_suite(tmp_path, plugins=[str(plugin)])
    suite["models"] = [{"name": "bad", "model": "raising_forward", "random_init": True}]
    with pytest.raises(BenchmarkError) as info:
        run_suite(load_suite(write_suite(suite)), progress=False, log=lambda _m: None)
    message = str(info.value)
    assert "model 'bad': forward failed" in message and "RuntimeError" in message
    assert "\n" not in message


BOMB = (
    "[&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b],"
    " &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d],"
    " &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]]"
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("&a [*a]", "an alias refers to a node that contains it"),
        ("[" * 3000 + "]" * 3000, "nested too deeply"),
        (BOMB, "YAML nodes (aliases); limit"),
    ],
    ids=["self-referencing alias", "deep nesting", "alias bomb"],
)
def test_hostile_yaml_is_one_line_in_files_and_in_set_values(
    tmp_path, write_suite, capsys, value, message
):
    from benchmark.cli import main

    path = write_suite(f"name: x\nseed: {value}\n", "hostile.yaml")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and len(err[0]) < 400
    good = write_suite(tiny_suite(tmp_path), "good.yaml")
    assert main(["validate", str(good), "--set", f"seed={value}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and len(err[0]) < 400


def test_a_huge_rejected_value_is_not_echoed_in_full(tmp_path, write_suite, capsys):
    from benchmark.cli import main

    big = "[" + ", ".join(["1"] * 5000) + "]"
    assert main(["validate", str(write_suite(tiny_suite(tmp_path))), "--set", f"seed={big}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed: Input should be a valid integer" in err[0]
    assert len(err[0]) < 400
