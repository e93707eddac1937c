"""No two things share one name: evaluations whose columns or plot folders collide, a user
evaluation named like the automatic sanity one, and a shard size that cuts attack batches
are refused when the suite loads, in one line."""

from __future__ import annotations

import pytest

from benchmark.errors import BenchmarkError
from benchmark.suite import load_suite
from tests.conftest import tiny_suite


@pytest.mark.parametrize(
    ("evaluations", "message"),
    [
        (
            [
                {"type": "fgsm", "name": "a", "params": {"eps": 0.1}},
                {"type": "clean", "name": "a_robust"},
            ],
            r"'a_robust' and evaluations\[0\] 'a' would both write the column 'a_robust_acc_pct'",
        ),
        (
            [{"type": "clean", "name": "p/q"}, {"type": "clean", "name": "p_q"}],
            "share the plot folder 'p_q'",
        ),
        (
            [{"type": "fgsm", "params": {"eps": 0.1}}, {"type": "clean", "name": "sanity"}],
            "'sanity' is the name of the sanity evaluation added automatically",
        ),
        (
            [{"type": "pgd", "params": {"eps": 0.1, "steps": 2}, "shard_size": 50}],
            r"shard_size: 50 is not a multiple of the batch size \(32\)",
        ),
    ],
    ids=["columns", "plot folder", "sanity name", "shard size"],
)
def test_colliding_names_are_refused_at_load(tmp_path, write_suite, evaluations, message):
    with pytest.raises(BenchmarkError, match=message):
        load_suite(write_suite(tiny_suite(tmp_path, evaluations=evaluations)))


def test_distinct_names_with_a_common_prefix_are_fine(tmp_path, write_suite):
    evaluations = [
        {"type": "clean"},
        {"type": "clean", "name": "clean_10", "params": {"n_bins": 10}},
    ]
    load_suite(write_suite(tiny_suite(tmp_path, evaluations=evaluations)))


def test_two_suite_files_with_one_name_say_so_before_replacing_one_leaderboard(
    tmp_path, write_suite, capsys
):
    """Two suite files named alike, one leaderboard_dir: the second run says, before it runs,
    whose leaderboard it replaces; rerunning the first says nothing of the kind."""
    from benchmark.cli import main

    shared = {"leaderboard_dir": str(tmp_path / "boards"), "sanity": False}
    first = write_suite(tiny_suite(tmp_path, **shared), name="first.yaml")
    other = tiny_suite(tmp_path, **shared, output_dir=str(tmp_path / "other_run"))
    other["evaluations"] = [{"type": "clean", "name": "other_clean"}]
    second = write_suite(other, name="second.yaml")
    assert main(["run", str(first), "--no-progress"]) == 0
    assert "is the leaderboard of suite file" not in capsys.readouterr().err
    assert main(["run", str(second), "--no-progress"]) == 0
    warned = [
        line for line in capsys.readouterr().err.splitlines() if "leaderboard of suite file" in line
    ]
    assert len(warned) == 1 and str(first) in warned[0] and "second.yaml" in warned[0], warned
    assert main(["run", str(second), "--no-progress"]) == 0  # now it is the second's
    assert "leaderboard of suite file" not in capsys.readouterr().err
