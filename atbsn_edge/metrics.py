"""Image quality metrics on the 0..255 scale: PSNR, SSIM and no-reference residual statistics.

With a clean reference, :func:`psnr` and :func:`ssim` score a denoised image. Without one,
:func:`residual_stats` describes what the denoiser removed, the residual
``r = noisy - denoised``: its mean and standard deviation per channel and its normalised
spatial autocorrelation at a few small lags. Real camera noise is spatially correlated
(demosaicing, JPEG); a denoiser that removes it leaves a residual whose lag-1
autocorrelation is clearly positive, while one that only removes white noise leaves a
residual with autocorrelation near 0 at every non-zero lag.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

PEAK = 255.0
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_TRUNCATE = 3.5  # 11-tap window for sigma 1.5, as Wang et al. and scikit-image use
LAGS: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (1, 1), (0, 2), (2, 0))


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"{what}: expected an H x W or H x W x C image, got shape {a.shape}")


def l2_norm(x: np.ndarray) -> float:
    """The Frobenius norm of ``x`` in float64 (NaN where ``x`` holds NaN), summed by numpy's own
    loops, not BLAS: numpy's ``linalg.norm`` is a BLAS dot product, which OpenBLAS splits
    across threads above 10,000 elements, and that threaded dot product once hung the test
    suite here (OpenBLAS 0.3.31 in numpy 2.4, spinning in ``exec_blas``; scipy/scipy#20294
    reports the same hang on Windows)."""
    flat = np.asarray(x, np.float64).ravel()
    with np.errstate(invalid="ignore", over="ignore"):
        return math.sqrt(float(np.einsum("i,i->", flat, flat)))


def relative_l2(got: np.ndarray, want: np.ndarray) -> float:
    """``||got - want|| / ||want||`` (:func:`l2_norm`, in float64; NaN where either holds NaN)."""
    if np.shape(got) != np.shape(want):
        raise ValueError(f"relative_l2: shapes differ, {np.shape(got)} vs {np.shape(want)}")
    reference = np.asarray(want, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.asarray(got, np.float64) - reference
    return l2_norm(error) / max(l2_norm(reference), 1e-12)


def psnr(a: np.ndarray, b: np.ndarray, *, clip: bool = True) -> float:
    """PSNR in dB of the estimate ``a`` against the reference ``b`` on the 0..255 scale.

    The estimate is clipped to 0..255 first (what would be stored) unless ``clip=False``
    (comparing raw network outputs); identical images give inf.
    """
    _check_pair(a, b, "psnr")
    estimate = np.clip(a, 0, PEAK) if clip else a
    diff = estimate.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff * diff))
    return float("inf") if mse == 0 else 10 * math.log10(PEAK ** 2 / mse)


def _gaussian_kernel(sigma: float, truncate: float) -> np.ndarray:
    """Normalised 1-D Gaussian of radius ``int(truncate * sigma + 0.5)`` (scipy.ndimage's)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _ssim_channel(x: np.ndarray, y: np.ndarray, kernel: np.ndarray) -> float:
    """Mean SSIM of two float64 H x W planes, border of the window radius excluded."""
    import cv2

    def blur(plane: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(plane, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)

    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    r = len(kernel) // 2
    return float(s[r:s.shape[0] - r, r:s.shape[1] - r].mean())


def ssim_min_side() -> int:
    """The smallest image side :func:`ssim` takes: its Gaussian window's (11)."""
    return len(_gaussian_kernel(SSIM_SIGMA, SSIM_TRUNCATE))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) of the estimate ``a`` against the reference ``b``, 0..255 scale.

    Gaussian window sigma 1.5 (11 taps), K1 = 0.01, K2 = 0.03, L = 255, population
    covariances; the mean of the SSIM map without a border of the window radius, computed per
    channel and averaged over channels. It matches ``skimage.metrics.structural_similarity(a,
    b, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. Like :func:`psnr`, the estimate is clipped to 0..255 first.
    """
    _check_pair(a, b, "ssim")
    kernel = _gaussian_kernel(SSIM_SIGMA, SSIM_TRUNCATE)
    if min(a.shape[:2]) < len(kernel):
        raise ValueError(f"ssim: images must be at least {len(kernel)} x {len(kernel)}, "
                         f"got {a.shape[0]} x {a.shape[1]}")
    x = np.clip(a, 0, PEAK).astype(np.float64)
    y = b.astype(np.float64)
    if x.ndim == 2:
        x, y = x[:, :, None], y[:, :, None]
    scores = [_ssim_channel(np.ascontiguousarray(x[:, :, c]), np.ascontiguousarray(y[:, :, c]),
                            kernel) for c in range(x.shape[2])]
    return float(np.mean(scores))


def autocorrelation(plane: np.ndarray, lag: tuple[int, int]) -> float:
    """Normalised spatial autocorrelation of an H x W plane at ``lag = (rows, columns)``.

    The mean over all pixel pairs ``lag`` apart of the product of mean-removed values,
    divided by the plane's variance: 1 at lag (0, 0), about 0 for white noise. A constant
    plane (no variance) gives 0.
    """
    dy, dx = lag
    if dy < 0 or dx < 0:
        raise ValueError(f"lags must be non-negative, got {lag}")
    h, w = plane.shape
    if dy >= h or dx >= w:
        raise ValueError(f"lag {lag} does not fit a {h} x {w} plane")
    z = plane.astype(np.float64) - plane.mean(dtype=np.float64)
    var = float(np.mean(z * z))
    if var == 0:
        return 0.0
    return float(np.mean(z[:h - dy, :w - dx] * z[dy:, dx:]) / var)


def lag_key(lag: tuple[int, int]) -> str:
    """The name of a lag in reports and JSON: ``"0,1"`` for one column to the right."""
    return f"{lag[0]},{lag[1]}"


@dataclass
class ResidualStats:
    """What a denoiser removed: statistics of ``noisy - denoised``."""

    mean: list[float]
    std: list[float]
    autocorr: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The statistics under their report keys: residual_mean, residual_std, autocorr."""
        return {"residual_mean": self.mean, "residual_std": self.std, "autocorr": self.autocorr}


def residual_stats(noisy: np.ndarray, denoised: np.ndarray,
                   lags: Sequence[tuple[int, int]] = LAGS) -> ResidualStats:
    """Mean and std per channel of ``r = noisy - denoised`` and its autocorrelation at ``lags``.

    Autocorrelations (:func:`autocorrelation`) are averaged over the channels whose residual
    is not constant; 0 when every channel's is. The denoised image is not clipped: this
    describes what the network removed. H x W inputs count as one channel.
    """
    _check_pair(noisy, denoised, "residual_stats")
    r = noisy.astype(np.float64) - denoised.astype(np.float64)
    if r.ndim == 2:
        r = r[:, :, None]
    planes = [r[:, :, c] for c in range(r.shape[2])]
    mean = [float(p.mean()) for p in planes]
    std = [float(p.std()) for p in planes]
    varying = [p for p, s in zip(planes, std) if s > 0]
    autocorr = {lag_key(lag): float(np.mean([autocorrelation(p, lag) for p in varying]))
                if varying else 0.0 for lag in lags}
    return ResidualStats(mean=mean, std=std, autocorr=autocorr)
