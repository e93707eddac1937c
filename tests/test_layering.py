"""Package layering: the model zoo and its training recipes never load the evaluation,
runner or report stack (importing ``models`` must stay light, and the recipes that rank
examples by robustness -- AR-AdaLS -- use ``benchmark.attacks.distances`` instead)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("benchmark.evaluations", "benchmark.runner", "benchmark.report", "matplotlib")


def loaded_after(statement: str) -> list[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.splitlines()[-1])


def test_importing_the_zoo_and_every_recipe_loads_no_evaluation_code():
    modules = loaded_after("import models, models.training, models.posthoc")
    assert "models.training.ar_adals" in modules and "models.posthoc.pep" in modules
    bad = [m for m in modules if m.startswith(FORBIDDEN)]
    assert not bad, f"importing models loaded {bad[:5]}"


def test_the_ranking_evaluation_and_ar_adals_share_one_distance_implementation():
    from benchmark.attacks import distances
    from benchmark.evaluations import ranking
    from models.training import ar_adals

    assert ranking.verified_minimal_distances is distances.verified_minimal_distances
    assert ar_adals.verified_minimal_distances is distances.verified_minimal_distances
