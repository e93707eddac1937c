"""Corruption generator: the vectorized functions against independent, per-image
implementations of make_cifar_c.py's formulas (loops, colorsys, PIL, scipy.ndimage), plus
determinism, shapes, grayscale/size support and the on-disk cache."""

from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from benchmark.corruptions import CORRUPTIONS, EXTRA, STANDARD, corrupt, resolve_corruptions
from benchmark.corruptions import params as P
from benchmark.corruptions.blur import defocus_blur, gaussian_blur, glass_blur, zoom_blur
from benchmark.corruptions.cache import cached_corrupt
from benchmark.corruptions.digital import contrast, jpeg_compression, pixelate, saturate
from benchmark.corruptions.weather import brightness, fog

SEVERITY_LIST = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Four 32x32 RGB uint8 test images: smooth gradients + texture + flat and gray areas
    (gray pixels exercise the HSV tie rules)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    out = []
    for i in range(4):
        base = np.stack([xx, yy, (xx + yy) / 2], -1) * (0.5 + 0.15 * i)
        base += 0.25 * ndimage.gaussian_filter(rng.random((32, 32, 3)), (1.5, 1.5, 0))
        base[:8, :8] = 0.5 if i % 2 else 1.0  # flat gray / white block
        out.append(np.clip(base * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def unbatch(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).double().numpy()


def ours(fn, images, severity, rng=None, scale=1.0) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng(0)
    return unbatch(fn(batch(images), severity, rng, scale))


# ---- independent per-image references of make_cifar_c.py --------------------------------


def ref_hsv(img: np.ndarray, change) -> np.ndarray:
    """rgb2hsv -> change -> hsv2rgb, one pixel at a time with Python's colorsys."""
    x = img / 255.0
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            h, s, v = colorsys.rgb_to_hsv(*x[i, j])
            out[i, j] = colorsys.hsv_to_rgb(*change(h, s, v))
    return np.clip(out, 0, 1)


def ref_disk(radius: float, alias_blur: float) -> np.ndarray:
    grid = np.arange(-8, 9)
    xx, yy = np.meshgrid(grid, grid)
    d = ((xx**2 + yy**2) <= radius**2).astype(np.float64)
    d /= d.sum()
    g = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias_blur**2))
    g /= g.sum()
    return ndimage.correlate(d, np.outer(g, g), mode="mirror")  # cv2.GaussianBlur 3x3


def ref_plasma(mapsize: int, wibbledecay: float, draws: list[np.ndarray], k: int):
    """The original diamond-square, consuming image ``k``'s slice of the recorded draws."""
    maparray = np.empty((mapsize, mapsize))
    maparray[0, 0] = 0
    stepsize, wibble = mapsize, 100.0
    pending = iter(draws)

    def wibbledmean(array):
        return array / 4 + wibble * (wibble * next(pending)[k])

    while stepsize >= 2:
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize] = (
            wibbledmean(squareaccum)
        )
        drgrid = maparray[stepsize // 2 : mapsize : stepsize, stepsize // 2 : mapsize : stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, stepsize // 2 : mapsize : stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[stepsize // 2 : mapsize : stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


class Recording:
    """A numpy Generator wrapper that remembers what it drew."""

    def __init__(self, seed: int) -> None:
        self.rng, self.draws = np.random.default_rng(seed), []

    def uniform(self, low, high, size):
        out = self.rng.uniform(low, high, size)
        self.draws.append(out)
        return out

    def integers(self, low, high, size):
        out = self.rng.integers(low, high, size=size)
        self.draws.append(out)
        return out


# ---- deterministic corruptions vs references ---------------------------------------------


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_brightness_and_saturate_match_hsv_reference(images, severity):
    c = P.BRIGHTNESS[severity - 1]
    a, b = P.SATURATE[severity - 1]
    got_b, got_s = ours(brightness, images, severity), ours(saturate, images, severity)
    for k in range(2):
        want_b = ref_hsv(images[k], lambda h, s, v: (h, s, min(max(v + c, 0), 1)))
        want_s = ref_hsv(images[k], lambda h, s, v: (h, min(max(s * a + b, 0), 1), v))
        np.testing.assert_allclose(got_b[k], want_b, atol=2e-6)
        np.testing.assert_allclose(got_s[k], want_s, atol=2e-6)


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_contrast_matches_formula(images, severity):
    c = P.CONTRAST[severity - 1]
    got = ours(contrast, images, severity)
    for k in range(len(images)):
        x = images[k] / 255.0
        means = np.mean(x, axis=(0, 1), keepdims=True)
        np.testing.assert_allclose(got[k], np.clip((x - means) * c + means, 0, 1), atol=2e-6)


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_pixelate_and_jpeg_match_pil_exactly(images, severity):
    c, quality = P.PIXELATE[severity - 1], P.JPEG_COMPRESSION[severity - 1]
    got_pix = np.rint(ours(pixelate, images, severity) * 255).astype(np.uint8)
    got_jpeg = np.rint(ours(jpeg_compression, images, severity) * 255).astype(np.uint8)
    for k in range(len(images)):
        pil = Image.fromarray(images[k])
        small = pil.resize((int(32 * c), int(32 * c)), Image.BOX)
        np.testing.assert_array_equal(got_pix[k], np.asarray(small.resize((32, 32), Image.BOX)))
        buffer = io.BytesIO()
        pil.save(buffer, "JPEG", quality=quality)
        np.testing.assert_array_equal(got_jpeg[k], np.asarray(Image.open(buffer)))


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_defocus_and_gaussian_blur_match_scipy(images, severity):
    radius, alias = P.DEFOCUS_BLUR[severity - 1]
    sigma = P.GAUSSIAN_BLUR[severity - 1]
    kernel = ref_disk(radius, alias)
    got_defocus = ours(defocus_blur, images, severity)
    got_gauss = ours(gaussian_blur, images, severity)
    for k in range(len(images)):
        x = images[k] / 255.0
        # cv2.filter2D per channel, BORDER_REFLECT_101 (= scipy 'mirror')
        want = np.stack([ndimage.correlate(x[..., d], kernel, mode="mirror") for d in range(3)])
        np.testing.assert_allclose(
            got_defocus[k], np.clip(want.transpose(1, 2, 0), 0, 1), atol=1e-5
        )
        # skimage gaussian(multichannel=True): scipy gaussian_filter, 'nearest', truncate 4
        want = ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)
        np.testing.assert_allclose(got_gauss[k], np.clip(want, 0, 1), atol=1e-5)


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_zoom_blur_matches_scipy_zoom(images, severity):
    got = ours(zoom_blur, images[:2], severity)
    for k in range(2):
        x = (images[k] / 255.0).astype(np.float32)
        out = np.zeros_like(x)
        for factor in P.ZOOM_BLUR[severity - 1]:
            ch = int(np.ceil(32 / factor))
            top = (32 - ch) // 2
            zoomed = ndimage.zoom(x[top : top + ch, top : top + ch], (factor, factor, 1), order=1)
            trim = (zoomed.shape[0] - 32) // 2
            out += zoomed[trim : trim + 32, trim : trim + 32]
        np.testing.assert_allclose(
            got[k], np.clip((x + out) / (len(P.ZOOM_BLUR[severity - 1]) + 1), 0, 1), atol=1e-5
        )


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_fog_matches_original_with_the_same_draws(images, severity):
    weight, decay = P.FOG[severity - 1]
    rng = Recording(severity)
    got = ours(fog, images, severity, rng=rng)
    for k in range(len(images)):
        x = images[k] / 255.0
        max_val = x.max()
        x = x + weight * ref_plasma(32, decay, rng.draws, k)[:32, :32][..., None]
        np.testing.assert_allclose(
            got[k], np.clip(x * max_val / (max_val + weight), 0, 1), atol=1e-5
        )


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_glass_blur_matches_the_original_loop_with_the_same_draws(images, severity):
    """The original's in-place 'swap' loop on an RGB uint8 array (which copies: see
    blur.glass_blur) reproduces our one-step gather."""
    sigma, delta, iterations = P.GLASS_BLUR[severity - 1]
    rng = Recording(severity)
    got = ours(glass_blur, images[:2], severity, rng=rng)
    for k in range(2):
        x = images[k] / 255.0
        x = np.uint8(ndimage.gaussian_filter(x, (sigma, sigma, 0), mode="nearest") * 255)
        for i in range(iterations):
            shifts = rng.draws[i]
            for h in range(32 - delta, delta, -1):
                for w in range(32 - delta, delta, -1):
                    dx = shifts[0, k, h - delta - 1, w - delta - 1]
                    dy = shifts[1, k, h - delta - 1, w - delta - 1]
                    h_prime, w_prime = h + dy, w + dx
                    x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
        want = ndimage.gaussian_filter(x / 255.0, (sigma, sigma, 0), mode="nearest")
        np.testing.assert_allclose(got[k], np.clip(want, 0, 1), atol=1e-5)


# ---- every corruption: determinism, range, shapes ----------------------------------------


def test_names_and_groups():
    assert len(STANDARD) == 15 and len(EXTRA) == 4 and len(CORRUPTIONS) == 19
    assert resolve_corruptions("all") == list(STANDARD + EXTRA)
    assert set(EXTRA) == {"speckle_noise", "gaussian_blur", "spatter", "saturate"}
    with pytest.raises(ValueError, match="unknown corruption"):
        resolve_corruptions(["gaussian_noise", "rain"])


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_corruption_is_seeded_and_handles_rgb_and_gray_of_any_size(images, name):
    x = batch(images)
    a = corrupt(x, name, 3, seed=11)
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, corrupt(x, name, 3, seed=11))
    gray = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert corrupt(gray, name, 5, seed=1).shape == gray.shape
    odd = torch.rand(2, 3, 20, 27, generator=torch.Generator().manual_seed(0))
    assert corrupt(odd, name, 5, seed=1).shape == odd.shape
    if name not in ("brightness", "contrast", "defocus_blur", "gaussian_blur", "pixelate",
                    "jpeg_compression", "saturate", "zoom_blur"):  # fmt: skip
        assert not torch.equal(a, corrupt(x, name, 3, seed=12)), "seed has no effect"


def test_corrupting_with_truncation_like_np_uint8(images):
    x = batch(images[:1])
    out = corrupt(x, "contrast", 5, seed=0).permute(0, 2, 3, 1).numpy()[0]
    xi = images[0] / 255.0
    means = np.mean(xi, axis=(0, 1), keepdims=True)
    want = np.uint8(np.clip((xi - means) * 0.15 + means, 0, 1) * 255)
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1
    assert (out == want).mean() > 0.99


def test_generated_sets_are_cached_atomically(tmp_path, images, monkeypatch):
    x = batch(images)
    first = cached_corrupt(x, "gaussian_noise", 2, seed=5, length_scale=None, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy" and not files[0].name.startswith(".")
    import benchmark.corruptions.cache as cache_module

    def fail(*args, **kwargs):
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(cache_module, "corrupt", fail)
    again = cached_corrupt(x, "gaussian_noise", 2, seed=5, length_scale=None, cache_dir=tmp_path)
    assert torch.equal(first, again)
    with pytest.raises(AssertionError, match="regenerated"):  # other seed: other file
        cached_corrupt(x, "gaussian_noise", 2, seed=6, length_scale=None, cache_dir=tmp_path)
