"""Bringing a checkpoint: the layouts seen in the wild load without conversion, bad files fail
in one line, URL checkpoints are verified and found offline, normalization can be overridden."""

from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.datasets.digits import DIGITS_INFO
from benchmark.errors import BenchmarkError
from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.suite import load_suite
from models import build_model, load_checkpoint
from models.weights import resolve_checkpoint, resolve_url
from tests.conftest import tiny_suite

MODEL, PARAMS = "small_cnn", {"width": 0.25}


@pytest.fixture(autouse=True)
def isolated_weights(tmp_path, monkeypatch):
    """Never touch the user's weights cache or weights folders."""
    monkeypatch.setenv("BENCHMARK_WEIGHTS_CACHE", str(tmp_path / "weights-cache"))
    monkeypatch.delenv("BENCHMARK_WEIGHTS_DIR", raising=False)


def trained_like_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(MODEL, PARAMS, DIGITS_INFO)


def backbone_state(model) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict(model.backbone.state_dict())


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def layouts(state):
    prefixed = OrderedDict((f"module.{k}", v) for k, v in state.items())
    return {
        "bare": state,
        "state_dict": {"state_dict": state, "epoch": 3, "best_prec1": 91.7},
        "model": {"model": state, "optimizer_name": "sgd"},
        "net": {"net": state, "acc": 95.0, "epoch": 200},
        "model_state_dict": {"model_state_dict": state, "epoch": 1},
        "module_prefix": {"state_dict": prefixed, "best_prec1": 91.7},
        "compiled_prefix": OrderedDict((f"_orig_mod.{k}", v) for k, v in state.items()),
        "one_element_list": {"state_dict": [state]},
        "bare_list": [state],
        "extra_entries_inside": {**state, "epoch": 7, "note": "trained on digits"},
    }


@pytest.mark.parametrize("layout", sorted(layouts({})))
def test_every_common_layout_loads_without_conversion(tmp_path, layout):
    source = trained_like_model(seed=1)
    path = tmp_path / f"{layout}.pt"
    torch.save(layouts(backbone_state(source))[layout], path)
    target = trained_like_model(seed=2)
    assert not same_weights(source, target)
    load_checkpoint(target, path)
    assert same_weights(source, target)


def test_cuda_saved_tensors_load_on_cpu(tmp_path, monkeypatch):
    """A file whose storages are tagged 'cuda:0' (saved on a GPU) loads on a CPU machine."""
    source = trained_like_model(seed=1)
    path = tmp_path / "cuda.pt"
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    torch.save({"state_dict": backbone_state(source)}, path)
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):  # proves the file really asks for a GPU
            torch.load(path, weights_only=True)
    target = trained_like_model(seed=2)
    load_checkpoint(target, path)
    assert same_weights(source, target)


def test_checkpoint_key_and_strip_prefix_resolve_ambiguity(tmp_path):
    source, other = trained_like_model(seed=1), trained_like_model(seed=3)
    path = tmp_path / "two.pt"
    ema = OrderedDict((f"net.{k}", v) for k, v in backbone_state(source).items())
    torch.save({"model": backbone_state(other), "state_dict": ema}, path)
    target = trained_like_model(seed=2)
    with pytest.raises(BenchmarkError, match=r"ambiguous.*checkpoint_key"):
        load_checkpoint(target, path)
    with pytest.raises(BenchmarkError, match="missing"):
        load_checkpoint(target, path, checkpoint_key="state_dict")  # "net." not stripped
    load_checkpoint(target, path, checkpoint_key="state_dict", strip_prefix="net.")
    assert same_weights(source, target)
    with pytest.raises(BenchmarkError, match=r"checkpoint_key .ema.: no .ema."):
        load_checkpoint(target, path, checkpoint_key="ema")
    with pytest.raises(BenchmarkError, match=r"strip_prefix 'x\.': no key"):
        load_checkpoint(target, path, checkpoint_key="model", strip_prefix="x.")


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def test_wrong_shapes_name_the_key_and_both_shapes(tmp_path):
    path = tmp_path / "wide.pt"
    torch.manual_seed(0)
    torch.save(build_model(MODEL, {"width": 0.5}, DIGITS_INFO).state_dict(), path)
    with pytest.raises(BenchmarkError) as exc:
        load_checkpoint(trained_like_model(), path)
    text = one_line(exc)
    assert "shape mismatch" in text and "checkpoint (" in text and "vs model (" in text


def test_missing_and_unexpected_keys_are_named(tmp_path):
    state = backbone_state(trained_like_model())
    first = next(iter(state))
    state["extra.weight"] = torch.zeros(1)
    del state[first]
    path = tmp_path / "keys.pt"
    torch.save(state, path)
    with pytest.raises(BenchmarkError) as exc:
        load_checkpoint(trained_like_model(), path)
    text = one_line(exc)
    assert f"missing 1 ({first})" in text and "unexpected 1 (extra.weight)" in text


def test_code_executing_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Exploit()}, path)
    with pytest.raises(BenchmarkError) as exc:
        load_checkpoint(trained_like_model(), path)
    assert "refused to load" in one_line(exc)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"  # a plain (non-zip) pickle too
    raw.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(BenchmarkError):
        load_checkpoint(trained_like_model(), raw)
    assert not marker.exists()


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_or_empty_files_fail_in_one_line(tmp_path, keep):
    good = tmp_path / "good.pt"
    torch.save(backbone_state(trained_like_model()), good)
    data = good.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(BenchmarkError) as exc:
        load_checkpoint(trained_like_model(), cut)
    assert "cannot read checkpoint" in one_line(exc)


def saved_file(tmp_path: Path, name: str = "weights.pt", seed: int = 1) -> tuple[Path, str]:
    path = tmp_path / "origin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": backbone_state(trained_like_model(seed))}, path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_url_downloads_once_into_the_cache_and_is_verified(tmp_path, monkeypatch):
    path, sha = saved_file(tmp_path)
    url = path.as_uri()  # file:// goes through the same urllib download path
    first = resolve_url(url, sha, progress=False)
    assert first.parent == tmp_path / "weights-cache" and first.read_bytes() == path.read_bytes()
    path.unlink()  # the source is gone: the cached copy must be served without a download
    assert resolve_url(url, sha, progress=False) == first
    other, _ = saved_file(tmp_path, "other.pt", seed=5)
    with pytest.raises(BenchmarkError) as exc:
        resolve_url(other.as_uri(), sha, progress=False)  # content does not match the hash
    text = one_line(exc)
    assert "expected" in text and "refusing" in text
    assert [p.name for p in (tmp_path / "weights-cache").iterdir() if p.suffix != ".lock"] == [
        first.name
    ]  # nothing half-written or wrong left behind


def test_file_with_the_right_hash_in_a_weights_dir_is_used_offline(tmp_path, monkeypatch):
    path, sha = saved_file(tmp_path, "renamed_copy.th")
    offline = "http://127.0.0.1:9/nowhere/original-name.th"  # nothing listens on port 9
    monkeypatch.setattr(
        "urllib.request.urlopen", lambda *a, **k: pytest.fail("must not touch the network")
    )
    assert resolve_url(offline, sha, [str(path.parent)], progress=False) == path
    monkeypatch.setenv("BENCHMARK_WEIGHTS_DIR", str(path.parent))
    assert resolve_url(offline, sha, progress=False) == path
    monkeypatch.undo()
    monkeypatch.setenv("BENCHMARK_WEIGHTS_CACHE", str(tmp_path / "weights-cache"))
    with pytest.raises(BenchmarkError) as exc:
        resolve_url(offline, "0" * 64, [str(path.parent)], progress=False)
    text = one_line(exc)
    assert "could not download" in text and "weights_dir" in text


def test_local_path_with_a_wrong_sha256_is_refused(tmp_path):
    path, sha = saved_file(tmp_path)
    assert resolve_checkpoint(str(path), None, sha) == path
    with pytest.raises(BenchmarkError, match="does not match"):
        resolve_checkpoint(str(path), None, "f" * 64)


def suite_with_checkpoint(tmp_path, checkpoint, **model_fields):
    model = {"name": "cnn", "model": MODEL, "params": PARAMS, "checkpoint": checkpoint}
    return tiny_suite(
        tmp_path,
        models=[{**model, **model_fields}],
        evaluations=[{"type": "clean"}],
        sanity=False,
    )


def test_suite_url_checkpoint_runs_from_a_weights_dir(tmp_path, write_suite):
    path, sha = saved_file(tmp_path, "copy.pt")
    suite = load_suite(
        write_suite(
            {
                **suite_with_checkpoint(
                    tmp_path, {"url": "http://127.0.0.1:9/w.pt", "sha256": sha}
                ),
                "weights_dir": str(path.parent),
            }
        )
    )
    summary = run_suite(suite, progress=False, log=lambda _m: None)
    assert summary.leaderboard.loc[0, "clean_acc_pct"] > 0
    (job,) = expand_jobs(suite, "cpu")
    by_path = load_suite(write_suite(suite_with_checkpoint(tmp_path, str(path)), "p.yaml"))
    assert expand_jobs(by_path, "cpu")[0].key == job.key  # same bytes, same results


def test_normalization_override_changes_key_and_numbers(tmp_path, write_suite):
    path, _ = saved_file(tmp_path)
    keys, probabilities = [], []
    for index, normalization in enumerate([None, "none", {"mean": [0.5], "std": [0.1]}]):
        fields = {} if normalization is None else {"normalization": normalization}
        spec = suite_with_checkpoint(tmp_path, str(path), **fields)
        suite = load_suite(write_suite(spec, f"s{index}.yaml"))
        job = expand_jobs(suite, "cpu")[0]
        keys.append(job.key)
        run_suite(suite, progress=False, log=lambda _m: None)
        records = ResultCache(suite.cache_root).load_records(job.key)
        probabilities.append(records[[f"prob_{k}" for k in range(10)]].to_numpy())
    assert len(set(keys)) == 3
    assert not np.allclose(probabilities[0], probabilities[1])
    assert not np.allclose(probabilities[0], probabilities[2])


def test_normalization_is_applied_inside_the_model():
    torch.manual_seed(0)
    model = build_model(MODEL, PARAMS, DIGITS_INFO, normalization=((0.5,), (0.25,)))
    assert model.mean.flatten().tolist() == [0.5] and model.std.flatten().tolist() == [0.25]
    plain = build_model(MODEL, PARAMS, DIGITS_INFO, normalization="none")
    assert plain.mean.flatten().tolist() == [0.0] and plain.std.flatten().tolist() == [1.0]
    with pytest.raises(BenchmarkError, match="one per input channel"):
        build_model(MODEL, PARAMS, DIGITS_INFO, normalization=((0.5,) * 3, (0.2,) * 3))


@pytest.mark.parametrize(
    ("normalization", "expected"),
    [
        ({"mean": [0.5], "std": [0.0]}, "std must be > 0"),
        ({"mean": [0.5, 0.5], "std": [0.2]}, "mean has 2 values but std has 1"),
        ({"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}, "one per channel of 'digits' (1)"),
        ("identity", "expected 'none' or"),
    ],
)
def test_bad_normalization_fails_in_one_line(
    tmp_path, write_suite, capsys, normalization, expected
):
    from benchmark.cli import main

    path, _ = saved_file(tmp_path)
    spec = suite_with_checkpoint(tmp_path, str(path), normalization=normalization)
    assert main(["validate", str(write_suite(spec))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "models[0].normalization" in err and expected in err


def test_suite_checkpoint_with_a_wrong_sha_fails_validation(tmp_path, write_suite, capsys):
    from benchmark.cli import main

    path, _ = saved_file(tmp_path)
    spec = suite_with_checkpoint(tmp_path, {"path": str(path), "sha256": "a" * 64})
    assert main(["validate", str(write_suite(spec))]) == 2
    err = capsys.readouterr().err.strip()
    assert "models[0].checkpoint" in err and "expected aaaaaaaa" in err


def test_a_checkpoint_replaced_during_a_run_is_refused_not_served(
    tmp_path, write_suite, monkeypatch
):
    """The job keys hold the checkpoint's hash at the start of the run; a file replaced
    before its row is loaded would otherwise be evaluated (and cached) under the old file's
    key, and served for good."""
    from benchmark.datasets import load_dataset
    from benchmark.errors import BenchmarkError
    from benchmark.runner import run_suite, worker
    from benchmark.suite import load_suite
    from models import build_model, save_checkpoint
    from tests.conftest import tiny_suite

    info = load_dataset("digits", "test").info
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.pt")
        save_checkpoint(build_model("small_cnn", {"width": 0.25}, info), paths[-1])
    models = [
        {"name": f"m{i}", "model": "small_cnn", "params": {"width": 0.25}, "checkpoint": str(p)}
        for i, p in enumerate(paths)
    ]
    suite = load_suite(
        write_suite(tiny_suite(tmp_path, models=models, evaluations=[{"type": "clean"}]))
    )
    original = worker.run_job

    def replace_the_second_file(*args, **kwargs):
        result = original(*args, **kwargs)
        torch.manual_seed(9)
        save_checkpoint(build_model("small_cnn", {"width": 0.25}, info), paths[1])
        return result

    monkeypatch.setattr(worker, "run_job", replace_the_second_file)
    with pytest.raises(BenchmarkError, match="checkpoint hash mismatch"):
        run_suite(suite, progress=False, log=lambda _m: None)
