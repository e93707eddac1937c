"""CIFAR-10-C severity constants, copied from Hendrycks' ``make_cifar_c.py``.

One tuple per corruption, index ``severity - 1``. These are the CIFAR constants, not the
ImageNet-C ones (which are larger, e.g. gaussian_noise .08-.38): generic "imagecorruptions"
packages use the ImageNet-C values and their output must not be called CIFAR-10-C.

Lengths (sigmas, radii, kernel sizes) are in CIFAR pixels (32 px images); the generator
multiplies them by ``length_scale`` (default ``min(H, W) / 32``) for other image sizes.
"""

from __future__ import annotations

import numpy as np

# noise
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # std of additive N(0, c^2)
SHOT_NOISE = (500, 250, 100, 75, 50)  # Poisson rate scale: poisson(x * c) / c
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # salt-and-pepper amount
SPECKLE_NOISE = (0.06, 0.1, 0.12, 0.16, 0.2)  # std of multiplicative noise x + x * N(0, c^2)

# blur
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)  # sigma
# sigma, max_delta, iterations
GLASS_BLUR = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))  # radius, alias_blur
MOTION_BLUR = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))  # ImageMagick radius, sigma
ZOOM_BLUR = (  # zoom factors; np.arange exactly as in make_cifar_c.py (1.06 gives 7 factors)
    np.arange(1, 1.06, 0.01),
    np.arange(1, 1.11, 0.01),
    np.arange(1, 1.16, 0.01),
    np.arange(1, 1.21, 0.01),
    np.arange(1, 1.26, 0.01),
)

# weather
SNOW = (  # loc, scale, zoom, threshold, blur radius, blur sigma, blend
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))  # image weight, frost weight
# The frost photographs (package data of imagecorruptions==1.1.2), in make_cifar_c.py's order.
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
# make_cifar_c.py draws np.random.randint(5): frost6.jpg is listed but never chosen.
FROST_CHOICES = 5
FROST_RESIZE = 0.2  # cv2.resize(frost, (0, 0), fx=0.2, fy=0.2) before the 32 x 32 crop
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))  # fog weight, wibble decay
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to HSV value
SPATTER = (  # loc, scale, sigma, threshold, intensity, mud (1) or water (0)
    (0.62, 0.1, 0.7, 0.7, 0.5, 0),
    (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0),
    (0.65, 0.1, 0.7, 0.69, 0.6, 1),
    (0.65, 0.1, 0.5, 0.68, 0.6, 1),
)

# digital
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # factor around the per-channel mean
ELASTIC_TRANSFORM = (  # (alpha, sigma, affine jitter) as fractions of the image size (IMSIZE=32)
    (0, 0, 0.08),
    (0.05, 0.2, 0.07),
    (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05),
    (0.1, 0.03, 0.03),
)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # BOX downscale factor
JPEG_COMPRESSION = (80, 65, 58, 50, 40)  # PIL JPEG quality
SATURATE = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))  # HSV saturation * a + b
