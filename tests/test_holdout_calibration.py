"""Post-hoc calibration of real public checkpoints: fitted on a held-out part of the test set
it calibrates; fitted on the ``val`` split (carved from the training images these
checkpoints were trained on) it is refused by the leakage check.

Needs ../shared/data (CIFAR-10 and the akamaster ResNets); skips, saying why, without it.
The default run checks temperature scaling of ResNet-20 on 2,000 held-out / 2,000 evaluation
images; the slow test checks temperature scaling and PEP (a shortened search) of all four
ResNets on the same images.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmark.datasets import load_dataset
from benchmark.datasets.base import ArrayDataset, DataInfo
from benchmark.errors import BenchmarkError
from benchmark.inference import predict_probs
from benchmark.metrics import negative_log_likelihood
from benchmark.metrics.calibration import expected_calibration_error
from models import build_model, load_checkpoint
from models.posthoc import fit_posthoc

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEIGHTS = DATA / "weights"
pytestmark = pytest.mark.skipif(
    not (WEIGHTS.is_dir() and (DATA / "cifar-10-batches-py").is_dir()),
    reason=f"../shared/data is absent ({DATA}): the real checkpoints and CIFAR-10 live there",
)
AKAMASTER = DataInfo(10, 3, (32, 32), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
FILES = {
    "resnet20": "akamaster_resnet20-12fca82f.th",
    "resnet32": "akamaster_resnet32-d509ac18.th",
    "resnet44": "akamaster_resnet44-014dd654.th",
    "resnet56": "akamaster_resnet56-4bfd9763.th",
}
CPU = torch.device("cpu")


def akamaster(key: str) -> torch.nn.Module:
    model = build_model(key, {"shortcut": "A"}, AKAMASTER)
    load_checkpoint(model, WEIGHTS / FILES[key])
    return model.eval()


def halves(n: int) -> tuple[ArrayDataset, ArrayDataset]:
    """A seeded held-out draw of ``n`` test images and ``n`` of the rest (the same split the
    suite's ``dataset: {holdout: n}`` makes, then a subset of what it leaves)."""
    test = load_dataset("cifar10", "test", root=str(DATA))
    held, rest = test.split_off(n, seed=0)
    return held, rest.subset(n, seed=0)


def nll_and_ece(model: torch.nn.Module, data: ArrayDataset) -> tuple[float, float]:
    torch.manual_seed(0)  # PEP members are fixed; this only pins any randomized pass
    probs = predict_probs(model, data.x, batch_size=500, device=CPU)
    labels = data.y.numpy()
    correct = probs.argmax(1) == labels
    return negative_log_likelihood(probs, labels), expected_calibration_error(probs.max(1), correct)


def check_calibrates(key: str, n: int, pep_params: dict | None) -> None:
    """Temperature scaling (and PEP unless ``pep_params`` is None) fitted on ``n`` held-out
    test images lower the NLL and ECE on ``n`` others; fitting on ``val`` is refused."""
    model = akamaster(key)
    held, rest = halves(n)
    before = nll_and_ece(model, rest)
    fits = {
        "temperature": fit_posthoc(
            "temperature", model, held, {}, 0, row=f"{key}+t", evaluation=rest
        )
    }
    if pep_params is not None:
        fits["pep"] = fit_posthoc(
            "pep", model, held, pep_params, 0, row=f"{key}+pep", evaluation=rest
        )
    for method, fitted in fits.items():
        after = nll_and_ece(fitted, rest)
        assert after[0] < before[0], (key, method, "NLL", before, after)
        assert after[1] < before[1], (key, method, "ECE", before, after)
    assert fits["temperature"].fit_info["temperature"] > 1  # softens an overconfident net

    val = load_dataset("cifar10", "val", root=str(DATA)).subset(n, seed=0)
    with pytest.raises(BenchmarkError, match=rf"model '{key}\+t'.*looks seen in training"):
        fit_posthoc("temperature", model, val, {}, 0, row=f"{key}+t", evaluation=rest)


def test_resnet20_temperature_calibrates_on_held_out_test_images_and_refuses_val():
    check_calibrates("resnet20", 2000, None)


@pytest.mark.slow
@pytest.mark.parametrize("key", list(FILES))
def test_every_akamaster_resnet_calibrates_on_held_out_data(key):
    """PEP's search shortened (7 evaluations of 4 members, 8 members served): about 35
    passes over 2,000 images, minutes for ResNet-56 on 2 CPU cores."""
    check_calibrates(key, 2000, {"iterations": 6, "search_members": 4, "members": 8})
