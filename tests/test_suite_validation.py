"""Malformed suites give one clear line naming file, field and expectation, and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmark.cli import main
from benchmark.suite import load_suite
from tests.conftest import REPO, tiny_suite


def run_validate(capsys, path) -> tuple[int, list[str]]:
    code = main(["validate", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def broken(tmp_path, **changes):
    suite = tiny_suite(tmp_path)
    for dotted, value in changes.items():
        parts = dotted.split("__")
        node = suite
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if value is KeyError:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return suite


CASES = [
    (
        "unknown_model",
        {"models__0__model": "resnet999"},
        "models[0].model: unknown model 'resnet999'",
    ),
    ("wrong_type", {"batch_size": "many"}, "batch_size: Input should be a valid integer"),
    ("missing_dataset", {"dataset": KeyError}, "dataset: required field is missing"),
    (
        "unknown_evaluation",
        {"evaluations__0__type": "pgdd"},
        "evaluations[0].type: unknown evaluation type 'pgdd'",
    ),
    ("unknown_top_level_key", {"seeds": 3}, "seeds: unknown field (not allowed here)"),
    (
        "bad_builder_param",
        {"models__1__params": {"width": "wide"}},
        "models[1].params.width: Input should be a valid number",
    ),
    (
        "unknown_builder_param",
        {"models__1__params": {"depth": 3}},
        "models[1].params.depth: unknown field",
    ),
    (
        "two_weight_sources",
        {"models__0__checkpoint": "x.pt"},
        "models[0]: give exactly one weight source",
    ),
    ("bad_device", {"device": "tpu"}, "device: Input should be 'auto', 'cpu' or 'cuda'"),
    (
        "unknown_dataset",
        {"dataset": {"name": "imagenet"}},
        "dataset.name: unknown dataset 'imagenet'",
    ),
    (
        "bad_eval_param",
        {"evaluations__1__params": {"n_bins": 0}},
        "evaluations[1].params.n_bins: Input should be greater than or equal to 1",
    ),
    (
        "bad_plugin",
        {"plugins": ["no_such_plugin_module"]},
        "plugins[0]: cannot import 'no_such_plugin_module'",
    ),
    ("duplicate_model_names", {"models__1__name": "cnn"}, "duplicate name(s) ['cnn']"),
    (
        "missing_checkpoint",
        {"models__0__random_init": False, "models__0__checkpoint": "nope.pt"},
        "models[0].checkpoint: file not found: nope.pt",
    ),
    (
        "bad_recipe_param",
        {
            "models__0__random_init": False,
            "models__0__training": {"recipe": "standard", "params": {"epochs": "ten"}},
        },
        "models[0].training.params.epochs: Input should be a valid integer",
    ),
    (
        "nested_attack_negative_steps",
        {
            "evaluations__1": {
                "type": "attacks",
                "params": {
                    "eps": 0.1,
                    "attacks": [{"type": "fgsm"}, {"type": "pgd", "params": {"steps": -5}}],
                },
            }
        },
        "evaluations[1].params.attacks[1]: attack 'pgd': params.steps: Input should be "
        "greater than or equal to 1 (got -5)",
    ),
    (
        "nested_attack_unknown_key",
        {
            "evaluations__1": {
                "type": "eps_sweep",
                "params": {"eps": [0.1], "attack": {"type": "pgd", "params": {"stepz": 3}}},
            }
        },
        "evaluations[1].params.attack: attack 'pgd': params.stepz: unknown field",
    ),
    (
        "nested_attack_not_a_number",
        {
            "evaluations__1": {
                "type": "adaptive",
                "params": {"eps": 0.1, "whitebox": {"type": "pgd", "params": {"steps": "abc"}}},
            }
        },
        "evaluations[1].params.whitebox: attack 'pgd': params.steps: Input should be a valid "
        "integer",
    ),
    (
        "fallbacks_nested_attack",
        {"fallbacks": {"scale_invariant": {"type": "pgd", "params": {"steps": -1}}}},
        "fallbacks.scale_invariant: attack 'pgd': params.steps: Input should be greater",
    ),
    (
        "torchattacks_combination",
        {
            "evaluations__1": {
                "type": "torchattacks",
                "params": {"eps": 0.1, "attack": "MultiAttack"},
            }
        },
        "evaluations[1].params: MultiAttack combines other attacks",
    ),
    (
        "torchattacks_kwarg_type",
        {
            "evaluations__1": {
                "type": "torchattacks",
                "params": {"eps": 0.1, "attack": "CW", "kwargs": {"c": 0.5, "lr": "fast"}},
            }
        },
        "evaluations[1].params: kwargs.lr: should be a number (got 'fast')",
    ),
    (
        "square_queries_bound",
        {"evaluations__1": {"type": "square", "params": {"eps": 0.1, "n_queries": 10**8}}},
        "evaluations[1].params.n_queries: Input should be less than or equal to 1000000",
    ),
    (
        "kap_sigma_differs_from_recipe",
        {
            "models__1": {
                "name": "kap",
                "model": "kap_resnet20",
                "params": {"sigma": 0.1},
                "training": {"recipe": "gaussian_noise", "params": {"epochs": 1, "sigma": 0.2}},
            }
        },
        "models[1].training.params.sigma: 0.2 differs from the noise the model adds itself",
    ),
    (
        "fallbacks_field_the_step_sets",
        {"fallbacks": {"n_examples": 5}},
        "fallbacks.n_examples: set by the automatic step per threat model",
    ),
]


@pytest.mark.parametrize("name,changes,expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_suite_gives_one_line_and_exit_2(
    tmp_path, write_suite, capsys, name, changes, expected
):
    path = write_suite(broken(tmp_path, **changes))
    code, err = run_validate(capsys, path)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"error: {path}: ")
    assert expected in err[0]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("name: [unclosed\nseed: 1\n", "invalid YAML: line"),
        ("", "expected a mapping of suite fields at the top level, got an empty file"),
        ("- just\n- a list\n", "got a list"),
        ("name: x\nobj: !!python/object/apply:os.system ['echo pwned']\n", "invalid YAML"),
    ],
    ids=["bad_yaml", "empty", "list", "python_tag"],
)
def test_unparseable_suite_files(write_suite, capsys, text, expected):
    path = write_suite(text)
    code, err = run_validate(capsys, path)
    assert code == 2 and len(err) == 1
    assert expected in err[0]


def test_missing_file(capsys, tmp_path):
    code, err = run_validate(capsys, tmp_path / "absent.yaml")
    assert code == 2 and err == [f"error: {tmp_path / 'absent.yaml'}: suite file not found"]


def test_several_errors_are_all_reported(tmp_path, write_suite, capsys):
    suite = broken(tmp_path, models__0__model="nope", evaluations__0__type="nope")
    code, err = run_validate(capsys, write_suite(suite))
    assert code == 2 and len(err) == 2
    assert "models[0].model" in err[0] and "evaluations[0].type" in err[1]


def test_valid_suite_validates(tmp_path, write_suite, capsys):
    assert main(["validate", str(write_suite(tiny_suite(tmp_path)))]) == 0
    assert "ok (2 model(s) x 2 evaluation(s)" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_suites_validate(path):
    assert load_suite(path).name == path.stem


def test_validate_subprocess_prints_no_traceback(tmp_path, write_suite):
    path = write_suite(broken(tmp_path, models__0__model="resnet999"))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "models[0].model: unknown model 'resnet999'" in proc.stderr


def test_an_eps_with_line_breaks_names_columns_without_them(tmp_path, write_suite):
    """An eps written "8/255\n\r" is the threat model 8/255: no line break reaches a
    column, a folder or the automatic fallback step's name (which used to crash loading)."""
    suite = tiny_suite(tmp_path)
    suite["evaluations"].append({"type": "fgsm", "params": {"eps": "8/255\n\r"}})
    loaded = load_suite(write_suite(suite))
    names = [spec.resolved.name for spec in loaded.evaluations]
    assert "fgsm_linf_8/255" in names and "fallbacks_linf_8/255" in names
    assert not any(ch in name for name in names for ch in "\n\r")
