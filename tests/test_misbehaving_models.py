"""A model whose own code misbehaves ends the run with one line naming the row and the
evaluation: never a traceback, never a silent exit 0 with the previous leaderboard left."""

from __future__ import annotations

import pytest

from benchmark.cli import main
from tests.conftest import tiny_suite

PLUGIN = """
import sys
import torch
from torch import nn
from models import register_model


class Base(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.linear = nn.Linear(64 * in_channels, num_classes)

    def logits(self, x):
        return self.linear(x.flatten(1))


class Exits(Base):
    def forward(self, x):
        if len(x) > 2:  # passes the 2-image probe, exits on the first real batch
            sys.exit(0)
        return self.logits(x)


class IntegerLogits(Base):
    def forward(self, x):
        return self.logits(x).round().long()


class RaisesOnLargeBatches(Base):
    def forward(self, x):
        if len(x) > 2:
            raise ValueError("batch too large for this toy")
        return self.logits(x)


class EditsWeightsInPlace(Base):
    def forward(self, x):
        out = self.logits(x)
        with torch.no_grad():
            self.linear.weight.mul_(1.0001)  # what the backward pass needs, changed under it
        return out


MODELS = {"exits": Exits, "integer_logits": IntegerLogits,
          "raises_large": RaisesOnLargeBatches, "edits_weights": EditsWeightsInPlace}
for key, cls in MODELS.items():
    register_model(key, key)(lambda num_classes, in_channels, cls=cls: cls(num_classes,
                                                                          in_channels))
"""


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """One plugin file for the module: a second file would register the same keys again."""
    path = tmp_path_factory.mktemp("plugin") / "bad_models.py"
    path.write_text(PLUGIN)
    return path


@pytest.mark.parametrize(
    ("model", "evaluations", "message"),
    [
        ("exits", [{"type": "clean"}], "evaluation 'clean': called sys.exit(0)"),
        ("integer_logits", [{"type": "clean"}], "returned torch.int64 outputs"),
        ("raises_large", [{"type": "clean"}], "ValueError: batch too large for this toy"),
        (
            "edits_weights",
            [{"type": "pgd", "params": {"eps": 0.1, "steps": 2}}],
            "evaluation 'pgd_linf_0.1': RuntimeError",
        ),
    ],
)
def test_a_misbehaving_model_is_one_line_and_writes_nothing(
    tmp_path, write_suite, capsys, plugin, model, evaluations, message
):
    suite = tiny_suite(
        tmp_path, plugins=[str(plugin)], evaluations=evaluations, sanity=False, fallbacks=False
    )
    suite["models"] = [{"name": "bad", "model": model, "random_init": True}]
    code = main(["run", str(write_suite(suite)), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and "model 'bad'" in errors[0] and message in errors[0], err
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "leaderboard").exists()
