"""Repository promises: CI runs exactly the README's test command; the code is ruff-clean
and passes the static type check (mypy, configured in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("```bash")
    block = lines[start + 1 : lines.index("```", start)]
    return [line for line in block if line and not line.startswith("#")]


def test_readme_starts_with_the_two_setup_commands():
    run_command, test_command = readme_commands()[:2]
    assert run_command == "./install.sh && .venv/bin/python -m benchmark run suites/quickstart.yaml"
    assert test_command.startswith("./install.sh && ")
    ci_lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci_lines[-2] == "bash install.sh"
    assert ci_lines[-1] == test_command.removeprefix("./install.sh && ")


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (REPO / ".venv/bin/ruff").exists(),
    reason="ruff not installed",
)
def test_code_is_ruff_clean():
    ruff = shutil.which("ruff") or str(REPO / ".venv/bin/ruff")
    proc = subprocess.run(
        [ruff, "check", "--output-format", "concise", "."], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("mypy") is None,
    reason="mypy not installed (it is pinned in requirements.lock: run ./install.sh)",
)
def test_code_type_checks():
    # [tool.mypy] in pyproject.toml; the incremental cache (.mypy_cache/) makes reruns fast
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "benchmark", "models"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_install_script_refuses_unknown_options_before_touching_anything():
    script = Path(__file__).resolve().parents[1] / "install.sh"
    done = subprocess.run(["bash", str(script), "--gpu-please"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "unknown option '--gpu-please'" in done.stderr and "--cuda" in done.stderr
    text = script.read_text()
    # the CUDA path installs torch with its dependencies; the CPU path never does
    assert '"${PIP[@]}" "torch${TORCH_RANGE}"' in text and "--no-deps -r requirements.lock" in text
