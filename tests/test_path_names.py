"""Every suite name that becomes part of a file path refuses path components: a hostile
suite cannot write outside its output folders (issue: replica_groups names went unchecked
into ``variance_<group>.{csv,png}``)."""

from __future__ import annotations

import copy

import pytest

from benchmark.suite import load_suite
from benchmark.suite.loader import SuiteError
from tests.conftest import tiny_suite

HOSTILE = ["../x", "../../../../tmp/owned", "..", "a/../../b", "/abs", "x/..", ".hidden"]


def _ranking(groups: dict) -> dict:
    return {"type": "robustness_ranking", "params": {"method": "ddn", "replica_groups": groups}}


def _cases(base: dict) -> list[tuple[str, dict]]:
    cases = []
    for bad in HOSTILE:
        suite = copy.deepcopy(base)
        suite["name"] = bad
        cases.append((f"name={bad}", suite))
        suite = copy.deepcopy(base)
        suite["models"][0]["name"] = bad
        cases.append((f"models[0].name={bad}", suite))
        suite = copy.deepcopy(base)
        suite["evaluations"][1]["name"] = bad
        cases.append((f"evaluations[1].name={bad}", suite))
        suite = copy.deepcopy(base)
        suite["evaluations"].append(_ranking({bad: ["cnn", "rn20"]}))
        cases.append((f"replica_groups.{bad}", suite))
    return cases


@pytest.mark.parametrize("index", range(len(HOSTILE) * 4))
def test_path_components_in_names_are_refused(tmp_path, write_suite, index):
    label, suite = _cases(tiny_suite(tmp_path))[index]
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(suite))
    assert all("\n" not in line for line in info.value.lines), label


def test_ordinary_names_with_slashes_still_load(tmp_path, write_suite):
    suite = tiny_suite(tmp_path)
    suite["evaluations"][1]["name"] = "clean/10_bins"
    suite["evaluations"].append(_ranking({"seeds.v1": ["cnn", "rn20"]}))
    assert load_suite(write_suite(suite)).evaluations[1].name == "clean/10_bins"
