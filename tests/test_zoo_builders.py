"""Every registered builder: forward/backward on CIFAR-shaped and digits-shaped input, the
randomized flag matches behaviour, and each paper variant puts its layers where the paper does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.datasets.cifar10 import CIFAR10_INFO
from benchmark.datasets.digits import DIGITS_INFO
from benchmark.errors import BenchmarkError
from models import MODELS, build_model
from models.layers import GaussianNoise, KernelAvgPool, MCDropout, Smooth

INFOS = {"cifar": CIFAR10_INFO, "digits": DIGITS_INFO}
# collected at import: builders added later are covered automatically; test modules register
# deliberately broken models (masked gradients, undeclared noise) as test_*, left out here
BUILT_IN = [entry.key for entry in MODELS if not entry.key.startswith("test_")]


def narrow(key: str) -> dict[str, float]:
    return {"width": 0.125} if "width" in MODELS.get(key).params_model.model_fields else {}


@pytest.mark.parametrize("data", list(INFOS))
@pytest.mark.parametrize("key", BUILT_IN)
def test_builder_forward_backward_and_randomized_flag(key, data):
    info = INFOS[data]
    if key == "conv_small" and min(info.image_size) < 10:
        pytest.skip("ERAN ConvSmall (no padding) needs images of at least 10x10 pixels")
    torch.manual_seed(0)
    model = build_model(key, narrow(key), info)
    x = torch.rand(4, info.in_channels, *info.image_size, requires_grad=True)
    logits = model.train()(x)
    assert logits.shape == (4, info.num_classes)
    torch.nn.functional.cross_entropy(logits, torch.arange(4) % info.num_classes).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(param.grad).all(), name
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.isfinite(first).all()
    assert model.randomized == MODELS.get(key).extras["randomized"]
    assert torch.equal(first, second) != model.randomized, "randomized flag contradicts outputs"


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize(("depth", "stages", "blocks"), [(18, 4, 8), (20, 3, 9)])
def test_variants_insert_layers_where_the_papers_do(depth, stages, blocks):
    kap = build_model(f"kap_resnet{depth}", {"width": 0.25}, CIFAR10_INFO)
    convs = count(kap, nn.Conv2d)
    assert count(kap, KernelAvgPool) == convs  # a KAP after *every* convolution
    assert count(kap, GaussianNoise) == convs + 1  # after each KAP and on the input
    assert count(build_model(f"nt_resnet{depth}", {}, CIFAR10_INFO), GaussianNoise) == convs + 1
    assert count(build_model(f"smooth_resnet{depth}", {}, CIFAR10_INFO), Smooth) == stages
    mcdo = build_model(f"mcdo_smooth_resnet{depth}", {}, CIFAR10_INFO)
    assert count(mcdo, MCDropout) == blocks and count(mcdo, Smooth) == stages
    block = mcdo.backbone.stages[0][0]
    assert isinstance(block.mid, MCDropout) and block.mid.p == 0.3


def test_kap_resnet18_channel_sheets_follow_the_paper():
    model = build_model("kap_resnet18", {}, CIFAR10_INFO)
    sheets = {m.channels: m.sheet for m in model.modules() if isinstance(m, KernelAvgPool)}
    assert sheets == {64: (8, 8), 128: (8, 16), 256: (16, 16), 512: (16, 32)}
    assert all(m.kernel_size == 3 and m.stride == 1 for m in model.modules() if hasattr(m, "sheet"))


def test_kap_stride_keeps_the_network_shape():
    model = build_model("kap_resnet20", {"width": 0.25, "stride": 2}, CIFAR10_INFO)
    assert model.backbone.stages[1][0].conv1.out_channels == 8 * 4  # C * S^2 before KAP
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_noise_trains_only_and_sigma_zero_is_the_plain_network():
    x = torch.rand(4, 3, 32, 32)
    torch.manual_seed(1)
    noisy = build_model("nt_resnet20", {"width": 0.25, "sigma": 0.2}, CIFAR10_INFO)
    torch.manual_seed(1)
    plain = build_model("resnet20", {"width": 0.25}, CIFAR10_INFO)
    noisy.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert torch.equal(noisy.eval()(x), plain.eval()(x))  # no noise at evaluation
        assert not torch.equal(noisy.train()(x), noisy(x))  # noise in training mode
    torch.manual_seed(1)
    silent = build_model("nt_resnet20", {"width": 0.25, "sigma": 0.0}, CIFAR10_INFO)
    with torch.no_grad():
        assert torch.equal(silent.train()(x), plain.train()(x))
    first = noisy.backbone.input_layer
    assert torch.allclose(first.scale.flatten(), 1 / torch.tensor(CIFAR10_INFO.std))


def test_bad_variant_parameters_are_one_line_errors():
    for key, params in [
        ("kap_resnet20", {"kernel_size": 4}),
        ("mcdo_resnet20", {"dropout": 1.5}),
        ("smooth_resnet20", {"tau": 0.0}),
        ("nt_resnet20", {"sigma": -1.0}),
    ]:
        with pytest.raises(BenchmarkError) as info:
            build_model(key, params, CIFAR10_INFO)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("key", [k for k in BUILT_IN if not MODELS.get(k).extras.get("randomized")])
def test_channels_last_gives_the_same_outputs_and_input_gradients(key):
    """The runner's ``channels_last`` option must not change what any builder computes."""
    info = DIGITS_INFO
    if key == "conv_small":
        pytest.skip("ERAN ConvSmall (no padding) needs images of at least 10x10 pixels")
    torch.manual_seed(0)
    model = build_model(key, narrow(key), info).eval()
    converted = build_model(key, narrow(key), info).eval()
    converted.load_state_dict(model.state_dict())
    converted.use_channels_last()
    x = torch.rand(6, info.in_channels, *info.image_size)
    outputs, grads = [], []
    for net in (model, converted):
        xg = x.clone().requires_grad_(True)
        logits = net(xg)
        (grad,) = torch.autograd.grad(logits.logsumexp(1).sum(), xg)
        outputs.append(logits.detach())
        grads.append(grad)
    assert torch.allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-3, atol=1e-6)
