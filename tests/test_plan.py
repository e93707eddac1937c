"""``python -m benchmark plan``: the jobs a run would run, the passes each needs (counted from
the evaluation's and the recipe's own parameters) and an estimate from measured throughput."""

from __future__ import annotations

from benchmark.cli import main
from benchmark.runner import run_suite
from benchmark.runner.plan import plan_lines, plan_suite
from benchmark.suite import load_suite
from tests.conftest import tiny_suite


def test_plan_counts_passes_from_parameters_and_sees_the_cache(tmp_path, write_suite):
    suite_dict = tiny_suite(
        tmp_path,
        sanity=False,
        fallbacks=False,
        evaluations=[
            {"type": "clean"},
            {"type": "pgd", "params": {"eps": 0.1, "steps": 7, "n_examples": 20}},
            {"type": "fgsm", "params": {"eps": 0.1}},
        ],
    )
    suite_dict["models"][0] = {
        "name": "cnn",
        "model": "small_cnn",
        "params": {"width": 0.25},
        "training": {"recipe": "standard", "params": {"epochs": 3, "batch_size": 64}},
    }
    suite = load_suite(write_suite(suite_dict))
    work = {w.label: w for w in plan_suite(suite, measure=False)}
    n_eval = 60  # the tiny suite's dataset.n_examples
    assert work["cnn x clean"].forward_images == n_eval and work["cnn x clean"].grad_images == 0
    pgd = work["cnn x pgd_linf_0.1"]
    assert pgd.grad_images == 20 * 7 and pgd.forward_images == 2 * 20  # clean + final pass
    assert work["rn20 x fgsm_linf_0.1"].grad_images == n_eval
    train = work["train cnn"]
    from benchmark.datasets import load_dataset

    assert train.train_images == 3 * len(load_dataset("digits", "train"))
    assert not any(w.cached for w in work.values())

    timed = plan_suite(suite, measure=True)
    assert all(w.seconds is not None and w.seconds > 0 for w in timed)
    assert plan_lines(timed)[-1].startswith("total: ~")

    run_suite(suite, progress=False, log=lambda _: None)
    after = plan_suite(suite, measure=False)
    assert all(w.cached for w in after)
    assert plan_lines(after)[0].startswith("0 of ")


def test_plan_command_prints_the_jobs_and_a_total(tmp_path, write_suite, capsys):
    path = write_suite(tiny_suite(tmp_path, sanity=False, fallbacks=False))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "suite 'tiny': 4 of 4 job(s) to run" in out and "total: ~" in out
    assert main(["plan", str(path), "--no-timing"]) == 0
    assert "total" not in capsys.readouterr().out
