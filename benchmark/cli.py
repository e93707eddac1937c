"""Command line: ``python -m benchmark {run,train,validate,models,leaderboard,check,compare}``.

User errors (bad suite, missing data, bad checkpoint) print one line to stderr and exit 2;
tracebacks are reserved for bugs in the harness itself.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import BenchmarkError, Terminated

if TYPE_CHECKING:
    from benchmark.registry import Registry
    from benchmark.suite.schema import ExecutorSpec

EPILOG = """examples:
  python -m benchmark run suites/quickstart.yaml      run a suite, print its leaderboard
  python -m benchmark train suites/recipes_digits.yaml --model pgd_at
                                                      train (or reuse) models, evaluate nothing
  python -m benchmark validate suites/cifar10.yaml    check a suite without running it
  python -m benchmark run suites/cifar10-pretrained.yaml --set dataset.root=../shared/data
                                                      same suite, another data folder
  python -m benchmark models                          list registered models and parameters
  python -m benchmark leaderboard --sort clean_ece_pct
  python -m benchmark check suites/quickstart.yaml    trust flags with explanations and numbers
  python -m benchmark compare runs/quickstart small_cnn resnet20_w0.5
                                                      paired tests between two models
"""


SET_HELP = (
    "override a suite field before validation, e.g. --set dataset.root=../shared/data "
    "--set models[0].params.width=0.5 (value read as YAML); repeatable"
)


def add_set_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        dest="overrides",
        help=SET_HELP,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Benchmark models on adversarial robustness, corruption robustness, "
        "calibration and failure prediction, from a YAML suite.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run a suite (reusing cached results) and print the leaderboard"
    )
    run.add_argument("suite", help="suite YAML file, e.g. suites/quickstart.yaml")
    add_set_option(run)
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--quiet", action="store_true", help="print only the leaderboard")
    run.add_argument(
        "--executor", metavar="KIND", help="local | process | ray (overrides the suite's executor)"
    )
    run.add_argument("--workers", type=int, metavar="N", help="parallel jobs (process, ray)")
    run.add_argument(
        "--ray-address", metavar="ADDRESS", help="connect to this Ray cluster (implies ray)"
    )

    train = commands.add_parser(
        "train", help="train the suite's models (reusing cached checkpoints); evaluate nothing"
    )
    train.add_argument("suite", help="suite YAML file")
    add_set_option(train)
    train.add_argument(
        "--model", action="append", metavar="NAME", help="only this model (row name); repeatable"
    )
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")

    plan = commands.add_parser(
        "plan",
        help="what a run would cost: jobs cached / to run, their passes and estimated time",
    )
    plan.add_argument("suite", help="suite YAML file")
    add_set_option(plan)
    plan.add_argument(
        "--no-timing", action="store_true", help="count passes only; time no model on the device"
    )

    validate = commands.add_parser("validate", help="check suite files without running them")
    validate.add_argument("suites", nargs="+", help="suite YAML file(s)")
    add_set_option(validate)

    listing = commands.add_parser("models", help="list registered models and their parameters")
    listing.add_argument(
        "--all", action="store_true", help="also list datasets, evaluations, attacks and recipes"
    )
    listing.add_argument("--plugin", action="append", default=[], help="module to import first")

    board = commands.add_parser("leaderboard", help="print a saved leaderboard")
    board.add_argument(
        "path",
        nargs="?",
        default="leaderboard",
        help="leaderboard CSV, suite YAML, or directory of CSVs (default: leaderboard/)",
    )
    board.add_argument(
        "--sort",
        metavar="COLUMN",
        help="sort by this column, best first by its declared direction (<name>.columns.json)",
    )
    order = board.add_mutually_exclusive_group()
    order.add_argument("--ascending", action="store_true", help="force ascending order")
    order.add_argument(
        "--descending",
        action="store_true",
        help="force descending order (columns without a direction need one of the two)",
    )
    board.add_argument("--full", action="store_true", help="all columns, CIs separate")

    check = commands.add_parser(
        "check",
        help="trust checks on a suite's cached results (runs the 'sanity' checks if missing)",
    )
    check.add_argument("suite", help="suite YAML file")
    add_set_option(check)
    check.add_argument("--no-progress", action="store_true", help="hide progress bars")
    check.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if any flag is raised or any of the suite's claims is contradicted",
    )

    compare = commands.add_parser(
        "compare", help="paired significance tests between two models of a run"
    )
    compare.add_argument(
        "source", help="run directory (or its manifest.json), suite YAML, or leaderboard CSV"
    )
    compare.add_argument("model_a", help="row name of the first model")
    compare.add_argument("model_b", help="row name of the second model")
    compare.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default 0.05)"
    )
    compare.add_argument(
        "--bootstrap", type=int, default=1000, help="paired resamples for ECE/AUROC (1000)"
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")

    export = commands.add_parser(
        "export", help="write a run's leaderboard as RobustBench JSON entries"
    )
    export.add_argument("suite", help="suite YAML file (its leaderboard CSV must exist)")
    add_set_option(export)
    export.add_argument(
        "--out",
        default=None,
        help="output folder (default <leaderboard_dir>/robustbench)",
    )
    export.add_argument(
        "--allow-flagged",
        action="store_true",
        help="also export rows with trust flags (the flags become the entry's footnote)",
    )
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from benchmark.leaderboard import format_table
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite

    suite = load_suite(args.suite, args.overrides)
    executor = executor_overrides(suite.executor, args)
    progress = not (args.no_progress or args.quiet)
    if progress:  # what the run is about to cost, before it starts spending it
        from benchmark.runner.plan import plan_lines, plan_suite

        work = plan_suite(suite, measure=True)
        if any(not w.cached for w in work):
            lines = plan_lines(work)
            print("plan: " + "\n".join(lines[:1] + lines[-2:]), file=sys.stderr)
    if args.quiet:
        summary = run_suite(suite, progress=progress, executor=executor, log=lambda _: None)
    else:
        summary = run_suite(suite, progress=progress, executor=executor)
    print(format_table(summary.leaderboard, columns=summary.columns))
    if summary.claims:
        from benchmark.claims import format_claims

        print("\n" + format_claims(summary.claims, suite.alpha))
    if not args.quiet:
        print(f"\nwritten: {', '.join(str(p) for p in summary.written)}", file=sys.stderr)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from benchmark.runner.plan import plan_lines, plan_suite
    from benchmark.suite import load_suite

    suite = load_suite(args.suite, args.overrides)
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    work = plan_suite(suite, measure=not args.no_timing, log=log)
    print(f"suite '{suite.name}': " + "\n".join(plan_lines(work)))
    return 0


def executor_overrides(spec: ExecutorSpec, args: argparse.Namespace) -> ExecutorSpec:
    """The suite's executor section with the command line's choices applied on top."""
    update: dict[str, object] = {}
    if args.ray_address:
        update.update(kind="ray", ray_address=args.ray_address)
    if args.executor:
        update["kind"] = args.executor
    if args.workers is not None:
        update["workers"] = args.workers
    # validated as the file's section is (model_copy would skip the bounds, e.g. workers <= 1024)
    from pydantic import ValidationError

    from benchmark.registry import format_validation_error
    from benchmark.suite.schema import ExecutorSpec

    try:
        return ExecutorSpec.model_validate({**spec.model_dump(), **update})
    except ValidationError as exc:
        lines = format_validation_error(exc)
        raise BenchmarkError(f"--{lines[0].replace('_', '-')}") from None


def cmd_train(args: argparse.Namespace) -> int:
    from benchmark.runner import train_suite
    from benchmark.suite import load_suite

    suite = load_suite(args.suite, args.overrides)
    for path in train_suite(suite, args.model, progress=not args.no_progress):
        print(path)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from benchmark.suite import load_suite

    for path in args.suites:
        suite = load_suite(path, args.overrides)
        print(
            f"{path}: ok ({len(suite.models)} model(s) x {len(suite.evaluations)} evaluation(s) "
            f"on {suite.dataset.name}/{suite.dataset.split})"
        )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from benchmark.suite.loader import import_plugins, load_registries

    load_registries()
    import_plugins(args.plugin, "--plugin")
    from benchmark.attacks import ATTACKS
    from benchmark.datasets import DATASETS
    from benchmark.evaluations import EVALUATIONS
    from models import MODELS
    from models.training import RECIPES

    registries: list[Registry[Any]] = [MODELS]
    if args.all:
        registries += [DATASETS, EVALUATIONS, ATTACKS, RECIPES]
    for registry in registries:
        print(f"{registry.kind}s:")
        for entry in registry:
            flag = " [randomized]" if entry.extras.get("randomized") else ""
            if "family" in entry.extras:  # attacks: fixed-eps (an evaluation type) or not
                flag = f" [{entry.extras['family']}]"
            print(f"  {entry.key:<16} {entry.description}{flag}")
            for name, type_name, default in entry.parameter_table():
                print(f"  {'':<16}   {name}: {type_name} = {default}")
        print()
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.leaderboard import (
        format_table,
        read_columns,
        read_leaderboard,
        sort_leaderboard,
    )

    path = Path(args.path)
    if path.suffix in (".yaml", ".yml"):
        from benchmark.suite import load_suite

        suite = load_suite(path)
        paths = [Path(suite.leaderboard_dir) / f"{suite.name}.csv"]
    elif path.is_dir():
        paths = sorted(path.glob("*.csv"))
        if not paths:
            raise BenchmarkError(f"{path}: no leaderboard CSV files here; run a suite first")
    else:
        paths = [path]
    for index, csv_path in enumerate(paths):
        frame, columns = read_leaderboard(csv_path), read_columns(csv_path)
        if args.sort:
            order = True if args.ascending else False if args.descending else None
            frame = sort_leaderboard(frame, args.sort, order, columns)
        if len(paths) > 1:
            print(("\n" if index else "") + f"== {csv_path.stem} ==")
        print(format_table(frame, full=args.full, columns=columns))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite
    from benchmark.suite.loader import with_sanity
    from benchmark.trust.checks import format_findings

    suite = with_sanity(load_suite(args.suite, args.overrides), always=True)
    summary = run_suite(
        suite,
        progress=not args.no_progress,
        select=lambda job: job.evaluation.type == "sanity",
        write=False,
    )
    if summary.missing:
        print(
            f"not yet run (checked without them; `run` the suite first): "
            f"{', '.join(summary.missing)}",
            file=sys.stderr,
        )
    print(format_findings(summary.findings))
    contradicted = [c for c in summary.claims if c.verdict == "contradicted"]
    if summary.claims:
        from benchmark.claims import format_claims

        print("\n" + format_claims(summary.claims, suite.alpha))
    return 1 if args.strict and (summary.findings or contradicted) else 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from benchmark.compare import compare_models, format_comparison, open_run

    if not 0 < args.alpha < 1:
        raise BenchmarkError(f"--alpha: must be between 0 and 1 (got {args.alpha})")
    if args.bootstrap < 1:  # 0 or fewer resamples would silently drop the ECE/AUROC rows
        raise BenchmarkError(f"--bootstrap: must be at least 1 (got {args.bootstrap})")
    run = open_run(args.source)
    comparison = compare_models(
        run, args.model_a, args.model_b, alpha=args.alpha, n_resamples=args.bootstrap
    )
    if args.json:
        print(json.dumps(comparison.as_dict(), indent=1, default=str))
    else:
        print(format_comparison(comparison))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from benchmark.leaderboard import read_leaderboard
    from benchmark.robustbench import export_entries
    from benchmark.suite import load_suite

    suite = load_suite(args.suite, args.overrides)
    frame = read_leaderboard(Path(suite.leaderboard_dir) / f"{suite.name}.csv")
    out = args.out or str(Path(suite.leaderboard_dir) / "robustbench")
    written = export_entries(suite, frame, out, allow_flagged=args.allow_flagged)
    if not written:
        raise BenchmarkError(
            f"{args.suite}: nothing to export: no row has a standard AutoAttack or standard "
            "corruptions accuracy"
        )
    for path in written:
        print(path)
    return 0


COMMANDS = {
    "run": cmd_run,
    "train": cmd_train,
    "plan": cmd_plan,
    "validate": cmd_validate,
    "models": cmd_models,
    "leaderboard": cmd_leaderboard,
    "check": cmd_check,
    "compare": cmd_compare,
    "export": cmd_export,
}


# errnos of a full disk, exceeded quota, read-only file system and missing permission
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return COMMANDS[args.command](args)
    except Terminated:
        print("terminated: finished jobs are cached; rerun to resume", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BenchmarkError as exc:
        for line in str(exc).splitlines() or ["error"]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished jobs are cached; rerun to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (stop the flush-at-exit error)
        return 0
    except OSError as exc:
        # A full disk or a read-only folder is the machine's state, not a harness bug: one
        # line naming the path, also where a write was not wrapped in a WriteError.
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return BenchmarkError.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
