"""Corruption generator: the vectorized functions against independent, per-image
implementations of make_cifar_c.py's formulas (loops, colorsys, PIL, scipy.ndimage), plus
determinism, shapes, grayscale/size support and the on-disk cache."""

from __future__ import annotations

import colorsys
import importlib.util
import io
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from benchmark.corruptions import (
    CORRUPTIONS,
    EXTRA,
    STANDARD,
    corrupt,
    resolve_corruptions,
    weather,
)
from benchmark.corruptions import params as P
from benchmark.corruptions.blur import defocus_blur, gaussian_blur, glass_blur, zoom_blur
from benchmark.corruptions.cache import cached_corrupt
from benchmark.corruptions.digital import contrast, jpeg_compression, pixelate, saturate
from benchmark.corruptions.weather import brightness, fog
from benchmark.errors import BenchmarkError

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


# ---- frost: the photographs of imagecorruptions==1.1.2 ----------------------------------

FROST_SHAPES = [(600, 900), (315, 560), (315, 560), (350, 527), (495, 660), (323, 485)]
FROST_AT_02 = [(120, 180), (63, 112), (63, 112), (70, 105), (99, 132), (65, 97)]


def test_frost_photographs_load_without_importing_imagecorruptions():
    """Located with find_spec and decoded with Pillow: the package's own code (broken on
    NumPy 2) never runs. A fresh interpreter, so nothing else has imported it."""
    code = (
        "import sys, json\n"
        "from benchmark.corruptions.weather import frost_images\n"
        "images = frost_images()\n"
        "print(json.dumps([[list(i.shape), str(i.dtype)] for i in images]"
        " + ['imagecorruptions' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    *shapes, imported = json.loads(out.splitlines()[-1])
    assert shapes == [[[h, w, 3], "uint8"] for h, w in FROST_SHAPES]
    assert imported is False


def test_missing_frost_photographs_give_one_clear_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BenchmarkError, match=r"pip install --no-deps imagecorruptions==1\.1\.2"):
        weather.frost_folder()
    try:
        weather.frost_folder()
    except BenchmarkError as exc:
        assert "\n" not in str(exc)


def test_cv2_resize_at_the_cifar_factor_is_a_subsampling():
    """cv2.resize(fx=fy=0.2, INTER_LINEAR) samples at (i + 0.5) * 5 - 0.5 = 5 i + 2 exactly:
    every output pixel is a source pixel (no antialiasing, unlike Pillow's reduction)."""
    shapes = []
    for photo in weather.frost_images():
        got = weather.cv2_resize_linear(photo, 0.2, 0.2)
        shapes.append(got.shape[:2])
        np.testing.assert_array_equal(got, photo[2::5, 2::5][: got.shape[0], : got.shape[1]])
    assert shapes == FROST_AT_02


@pytest.mark.parametrize("fx, fy", [(0.3, 0.45), (0.125, 0.125), (0.7, 1.3), (1.4, 1.4)])
def test_cv2_resize_linear_is_half_pixel_bilinear(fx, fy):
    """Against float bilinear interpolation at half-pixel centres with edge clamping
    (scipy.ndimage.map_coordinates): OpenCV's 11-bit fixed point stays within one level."""
    img = np.random.default_rng(0).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    got = weather.cv2_resize_linear(img, fx, fy).astype(np.int64)
    assert got.shape == (round(37 * fy), round(53 * fx), 3)
    rows = np.clip((np.arange(got.shape[0]) + 0.5) / fy - 0.5, 0, 36)
    cols = np.clip((np.arange(got.shape[1]) + 0.5) / fx - 0.5, 0, 52)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    for ch in range(3):
        want = ndimage.map_coordinates(img[..., ch].astype(float), [rr, cc], order=1)
        assert np.abs(got[..., ch] - want).max() <= 1.0


def test_cv2_resize_linear_matches_opencv_where_installed():
    cv2 = pytest.importorskip("cv2")  # not a dependency: checked where it happens to exist
    rng = np.random.default_rng(1)
    for fx, fy in [(0.2, 0.2), (0.5, 0.5), (0.05, 0.05), (0.3, 0.45), (1.4, 1.4), (2.0, 0.7)]:
        img = rng.integers(0, 256, size=(*rng.integers(5, 90, size=2), 3), dtype=np.uint8)
        want = cv2.resize(img, (0, 0), fx=fx, fy=fy)
        np.testing.assert_array_equal(weather.cv2_resize_linear(img, fx, fy), want)


def frost_reference(images: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """make_cifar_c.py's frost per image, on the photographs decoded independently (Pillow,
    subsampled at 5 i + 2 as cv2's 0.2 resize is) and the generator's documented draws: all
    indices randint(5), then all row offsets, then all column offsets."""
    folder = weather.frost_folder()
    photos = []
    for name in P.FROST_FILES:
        with Image.open(folder / name) as im:
            full = np.asarray(im.convert("RGB"))
        h, w = round(full.shape[0] * 0.2), round(full.shape[1] * 0.2)
        photos.append(full[2::5, 2::5][:h, :w])
    rng = np.random.default_rng(seed)
    n = len(images)
    idx = rng.integers(0, 5, size=n)
    assert idx.max() < 5  # randint(5): frost6.jpg is never used, as in the original
    x_start = rng.integers(0, np.array([photos[k].shape[0] for k in idx]) - 32)
    y_start = rng.integers(0, np.array([photos[k].shape[1] for k in idx]) - 32)
    c = P.FROST[severity - 1]
    out = []
    for i in range(n):
        frost = photos[idx[i]][x_start[i] : x_start[i] + 32, y_start[i] : y_start[i] + 32]
        out.append(np.uint8(np.clip(c[0] * np.array(images[i]) + c[1] * frost, 0, 255)))
    return np.stack(out)


@pytest.mark.parametrize("severity", SEVERITY_LIST)
def test_frost_matches_make_cifar_c_for_the_same_crops(images, severity):
    many = np.concatenate([images] * 16)  # 64 images: every photograph gets chosen
    got = corrupt(batch(many), "frost", severity, seed=severity).permute(0, 2, 3, 1).numpy()
    want = frost_reference(many, severity, seed=severity)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1  # float32 blend + quantize's 1e-3 allowance vs float64 np.uint8
    assert (diff == 0).mean() > 0.999


def test_frost_on_black_is_the_weighted_crop_and_grows_with_severity(images):
    """On black images the output is c1 * frost: the mean change is then non-decreasing in
    severity (c1 = .2, .3, .4, .4, .45). On ordinary images the CIFAR constants themselves
    make severities 4-5 change the image less than 3 (image weight .9 -> .85 -> .75 with
    frost weight .4 -> .4 -> .45): only 1 < 2 < 3 and 1 < 5 are asserted there."""
    black = torch.zeros(64, 3, 32, 32)
    change = []
    for severity in SEVERITY_LIST:
        out = weather.frost(black, severity, np.random.default_rng(3), 1.0)
        assert out.min() >= 0 and out.max() <= 1
        crops = weather.frost_crops(black, np.random.default_rng(3), 1.0)
        torch.testing.assert_close(out, P.FROST[severity - 1][1] * crops)
        change.append(float(out.mean()))
    assert all(a <= b for a, b in itertools.pairwise(change)) and change[0] < change[-1]
    x = batch(images)
    mean_change = []
    for severity in SEVERITY_LIST:
        out = weather.frost(x, severity, np.random.default_rng(3), 1.0)
        assert out.min() >= 0 and out.max() <= 1 and out.shape == x.shape
        mean_change.append(float((out - x).abs().mean()))
    assert mean_change[0] < mean_change[1] < mean_change[2] and mean_change[0] < mean_change[4]


def test_frost_is_deterministic_and_handles_wide_images(images):
    x = batch(images)
    a = corrupt(x, "frost", 2, seed=4)
    assert torch.equal(a, corrupt(x, "frost", 2, seed=4))
    assert not torch.equal(a, corrupt(x, "frost", 2, seed=5))
    wide = torch.rand(3, 3, 32, 200, generator=torch.Generator().manual_seed(0))
    assert corrupt(wide, "frost", 5, seed=0).shape == wide.shape  # photographs enlarged


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
    files = sorted(tmp_path.iterdir())
    assert [f.suffix for f in files] == [".npy", ".sha256"]
    assert not any(f.name.startswith(".") for f in files)
    import benchmark.corruptions.cache as cache_module

    def fail(*args, **kwargs):
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(cache_module, "corrupt", fail)
    again = cached_corrupt(x, "gaussian_noise", 2, seed=5, length_scale=None, cache_dir=tmp_path)
    assert torch.equal(first, again)
    with pytest.raises(AssertionError, match="regenerated"):  # other seed: other file
        cached_corrupt(x, "gaussian_noise", 2, seed=6, length_scale=None, cache_dir=tmp_path)


@pytest.mark.parametrize(
    "damage",
    [
        lambda npy, sha: npy.write_bytes(npy.read_bytes()[:-7] + b"\x01" * 7),  # pixels edited
        lambda npy, sha: sha.unlink(),  # no checksum beside it
        lambda npy, sha: npy.write_bytes(npy.read_bytes()[:200]),  # truncated
    ],
    ids=["edited", "no checksum", "truncated"],
)
def test_a_damaged_cached_set_is_regenerated_in_one_line(tmp_path, images, caplog, damage):
    x = batch(images)
    first = cached_corrupt(x, "gaussian_noise", 2, seed=5, length_scale=None, cache_dir=tmp_path)
    npy = next(tmp_path.glob("*.npy"))
    damage(npy, npy.with_suffix(".sha256"))
    with caplog.at_level("WARNING"):
        again = cached_corrupt(
            x, "gaussian_noise", 2, seed=5, length_scale=None, cache_dir=tmp_path
        )
    assert torch.equal(first, again)
    lines = [r.getMessage() for r in caplog.records if "regenerating" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]


def test_set_keys_change_only_for_bumped_corruptions():
    """A corruption's own version enters its cached sets' key once past "1": frost (2) gets
    new files, every other corruption keeps the keys it had."""
    from benchmark.corruptions.cache import GENERATOR_VERSION, set_key
    from benchmark.corruptions.registry import CHUNK
    from benchmark.utils import stable_hash

    def old_key(name: str) -> str:
        return stable_hash(
            {"corruption": name, "severity": 3, "seed": 1, "source": "f", "length_scale": None,
             "version": GENERATOR_VERSION, "chunk": CHUNK},
            length=24,
        )  # fmt: skip

    assert CORRUPTIONS["frost"].version == "2"
    assert set_key("frost", 3, 1, "f", None) != old_key("frost")
    for name in CORRUPTIONS:
        if name != "frost":
            assert CORRUPTIONS[name].version == "1"
            assert set_key(name, 3, 1, "f", None) == old_key(name)
