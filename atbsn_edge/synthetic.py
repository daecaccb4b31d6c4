"""Realistic synthetic camera noise, for tests and evaluations with a known clean image.

A clean RGB image goes through the steps that make real-world noise spatially correlated:
RGGB Bayer sampling, Poisson-Gaussian sensor noise on the mosaic, bilinear demosaicing (each
missing colour is a weighted mean of noisy neighbours, which correlates adjacent pixels),
8-bit quantisation and optionally JPEG compression. This is the noise AT-BSN is built for,
and the noise a plain (pixel-wise) blind-spot network cannot remove.
"""
from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

# Bilinear demosaicing kernels, applied to each colour's sparse plane (zeros where the
# colour was not sampled). R and B: sampled on one site in four; G: on two in four.
_KERNEL_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
_KERNEL_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise ValueError(f"a Bayer mosaic needs at least 2 x 2 pixels, got shape {image.shape}")


def bayer_masks(height: int, width: int) -> np.ndarray:
    """H x W x 3 boolean: where an RGGB sensor samples R, G and B (R at the top-left)."""
    yy, xx = np.mgrid[0:height, 0:width]
    red = (yy % 2 == 0) & (xx % 2 == 0)
    blue = (yy % 2 == 1) & (xx % 2 == 1)
    return np.stack([red, ~(red | blue), blue], axis=2)


def bayer_mosaic(rgb: np.ndarray) -> np.ndarray:
    """The H x W RGGB mosaic of an H x W x 3 RGB image: one colour sample per pixel."""
    _check_rgb(rgb)
    masks = bayer_masks(*rgb.shape[:2])
    return np.sum(np.where(masks, rgb, 0), axis=2).astype(np.float32)


def demosaic(mosaic: np.ndarray) -> np.ndarray:
    """Bilinear demosaicing of an RGGB mosaic (float, any scale) to H x W x 3 float32 RGB.

    Sampled values are kept; missing ones are the mean of the nearest samples of that colour.
    Borders are mirrored about the edge pixel, which keeps the Bayer phase.
    """
    import cv2

    if mosaic.ndim != 2 or min(mosaic.shape) < 2:
        raise ValueError(f"expected an H x W mosaic of at least 2 x 2, got shape {mosaic.shape}")
    masks = bayer_masks(*mosaic.shape)
    raw = mosaic.astype(np.float32)
    planes = []
    for c, kernel in enumerate((_KERNEL_RB, _KERNEL_G, _KERNEL_RB)):
        sparse = np.where(masks[:, :, c], raw, np.float32(0))
        planes.append(cv2.filter2D(sparse, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT_101))
    return np.stack(planes, axis=2)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode an RGB image (0..255) as JPEG at ``quality`` and decode it, as float32 RGB."""
    import cv2

    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    u8 = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(u8[:, :, ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return decoded[:, :, ::-1].astype(np.float32)


def camera_noise(clean: np.ndarray, *, gain: float, read_noise: float,
                 rng: np.random.Generator, jpeg_quality: int | None = None) -> np.ndarray:
    """A noisy camera image of ``clean`` (H x W x 3 RGB, 0..255), as float32 0..255.

    Mosaic (RGGB) -> photons ``~ Poisson(value * gain)`` -> back to 0..255 units plus Gaussian
    read noise of sigma ``read_noise`` (0..255 units), clipped to 0..255 like a sensor ->
    bilinear demosaic -> rounded to 8 bits -> JPEG at ``jpeg_quality`` when given. On the
    mosaic the noise variance is ``value / gain + read_noise ** 2``: ``gain`` is photons per
    0..255 unit, so a larger gain means less shot noise. The result holds whole numbers
    (an 8-bit camera output), so it survives a PNG round trip exactly.
    """
    _check_rgb(clean)
    if not gain > 0:
        raise ValueError(f"gain must be positive, got {gain}")
    if not read_noise >= 0:
        raise ValueError(f"read_noise must be non-negative, got {read_noise}")
    mosaic = np.clip(bayer_mosaic(clean).astype(np.float64), 0, 255)
    raw = rng.poisson(mosaic * gain) / gain
    if read_noise > 0:
        raw = raw + rng.normal(0.0, read_noise, raw.shape)
    raw = np.clip(raw, 0, 255).astype(np.float32)
    rgb = np.clip(np.rint(demosaic(raw)), 0, 255).astype(np.float32)
    if jpeg_quality is not None:
        rgb = jpeg_roundtrip(rgb, jpeg_quality)
    return rgb
