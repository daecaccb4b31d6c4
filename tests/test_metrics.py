"""atbsn_edge.metrics: PSNR, SSIM (against scikit-image) and residual statistics on data whose
answers are known in closed form."""
from __future__ import annotations

import math

import numpy as np
import pytest

from atbsn_edge import metrics
from atbsn_edge.metrics import autocorrelation, psnr, relative_l2, residual_stats, ssim

skimage_data = pytest.importorskip("skimage.data")
skimage_metrics = pytest.importorskip("skimage.metrics")


def astronaut_crop(size: int = 96) -> np.ndarray:
    return skimage_data.astronaut()[120:120 + size, 180:180 + size].astype(np.float64)


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return skimage_metrics.structural_similarity(
        a.astype(np.float64), b.astype(np.float64), channel_axis=2 if a.ndim == 3 else None,
        data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


# ------------------------------------------------------------------------------------- PSNR

def test_psnr_of_a_constant_offset():
    """An error of 5 everywhere: MSE 25, PSNR = 10 log10(255^2 / 25) = 34.151 dB."""
    reference = 0.9 * astronaut_crop()
    assert psnr(reference + 5, reference) == pytest.approx(10 * math.log10(255 ** 2 / 25),
                                                           abs=1e-9)


def test_psnr_clips_the_estimate_and_identical_images_give_inf():
    clean = astronaut_crop()
    assert psnr(clean, clean) == math.inf
    over = clean.copy()
    over[clean == 255] = 300.0
    over[clean == 0] = -40.0
    assert (over != clean).any()
    assert psnr(over, clean) == math.inf  # clipped back onto the reference
    # the reference is not clipped: an estimate of 255 against a reference of 265 is 10 off
    assert psnr(np.full((4, 4), 300.0), np.full((4, 4), 265.0)) == pytest.approx(
        10 * math.log10(255 ** 2 / 100), abs=1e-9)


def test_psnr_refuses_different_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))


def test_relative_l2_without_blas():
    """The known value of a scaled array, the BLAS norm's value to 1e-12 on 3 x 512 x 512
    float32 (past OpenBLAS's 10,000-element threading threshold), NaN through, shapes checked."""
    want = np.random.default_rng(0).random((3, 512, 512)).astype(np.float32) * 255
    assert relative_l2(want * np.float32(1.5), want) == pytest.approx(0.5, rel=1e-6)
    got = want + np.random.default_rng(1).normal(0, 0.5, want.shape).astype(np.float32)
    blas = np.linalg.norm((got - want).astype(np.float64)) / np.linalg.norm(want.astype(np.float64))
    assert relative_l2(got, want) == pytest.approx(blas, rel=1e-12)
    assert relative_l2(want, want) == 0.0
    got[0, 0, 0] = np.nan
    assert math.isnan(relative_l2(got, want))
    assert relative_l2(np.ones(4), np.zeros(4)) == pytest.approx(2.0 / 1e-12)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_l2(np.ones((2, 3)), np.ones((3, 2)))


def test_training_uses_the_same_psnr():
    from atbsn_edge import training

    assert training.psnr is metrics.psnr


# ------------------------------------------------------------------------------------- SSIM

@pytest.mark.parametrize("case", ["rgb-noise", "rgb-blur-shift", "gray-noise"])
def test_ssim_matches_scikit_image(case):
    """Agreement within 1e-6 (the brief asks 1e-3; both compute in float64 with the same
    11-tap Gaussian and the same cropped border, measured difference ~1e-15)."""
    rng = np.random.default_rng(1)
    clean = astronaut_crop()
    if case == "rgb-noise":
        other = np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255)
    elif case == "rgb-blur-shift":
        other = 0.5 * clean + 0.25 * np.roll(clean, 1, axis=1) + 0.25 * np.roll(clean, -1, axis=0)
        other = np.clip(other * 0.9 + 12, 0, 255)
    else:
        clean = clean.mean(axis=2)
        other = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255)
    expected = skimage_ssim(other, clean)
    assert 0.1 < expected < 0.99  # a case where the window and constants matter
    assert ssim(other, clean) == pytest.approx(expected, abs=1e-6)


def test_ssim_is_one_for_identical_images_and_less_for_noise():
    clean = astronaut_crop()
    assert ssim(clean, clean) == pytest.approx(1.0, abs=1e-12)
    noisy = clean + np.random.default_rng(2).normal(0, 10, clean.shape)
    assert ssim(np.clip(noisy, 0, 255), clean) < 0.95


def test_ssim_clips_the_estimate_like_psnr():
    clean = astronaut_crop()
    est = clean + np.random.default_rng(3).normal(0, 30, clean.shape)
    assert (est > 255).any() and (est < 0).any()
    assert ssim(est, clean) == pytest.approx(skimage_ssim(np.clip(est, 0, 255), clean), abs=1e-6)


def test_ssim_refuses_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 11 x 11"):
        ssim(np.zeros((10, 40, 3)), np.zeros((10, 40, 3)))


# --------------------------------------------------------------------------- residual stats

def box3(plane: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """3-tap box filter along ``axes`` with wrap-around (no border effects)."""
    for axis in axes:
        plane = (np.roll(plane, -1, axis) + plane + np.roll(plane, 1, axis)) / 3
    return plane


def test_white_noise_residual_is_uncorrelated():
    """256 x 256 x 3 white noise: each autocorrelation estimate has std ~1/sqrt(3 * 65536)
    = 0.002, so |rho| < 0.02 at every non-zero lag; std within 2 % and mean within 0.2 of
    the truth (their estimator stds are 0.03 and 0.02)."""
    rng = np.random.default_rng(4)
    denoised = astronaut_crop(256)
    noise = rng.normal(0.5, 10.0, denoised.shape)
    stats = residual_stats(denoised + noise, denoised)
    assert stats.mean == pytest.approx([0.5] * 3, abs=0.2)
    assert stats.std == pytest.approx([10.0] * 3, rel=0.02)
    assert set(stats.autocorr) == {"0,1", "1,0", "1,1", "0,2", "2,0"}
    for lag, rho in stats.autocorr.items():
        assert abs(rho) < 0.02, (lag, rho)


def test_box_filtered_residual_has_the_known_autocorrelation():
    """White noise through a 3 x 3 box filter: rho = (3 - |dy|)/3 * (3 - |dx|)/3, i.e. 2/3 at
    lag 1, 4/9 diagonally, 1/3 at lag 2 (within 0.05)."""
    rng = np.random.default_rng(5)
    noise = box3(rng.normal(0, 10, (256, 256, 3)), axes=(0, 1))
    stats = residual_stats(noise, np.zeros_like(noise))
    expected = {"0,1": 2 / 3, "1,0": 2 / 3, "1,1": 4 / 9, "0,2": 1 / 3, "2,0": 1 / 3}
    for lag, value in expected.items():
        assert stats.autocorr[lag] == pytest.approx(value, abs=0.05), lag
    assert stats.std == pytest.approx([10 / 3] * 3, rel=0.03)  # sigma / sqrt(9)


def test_lags_are_rows_then_columns():
    """A horizontal 3-tap filter correlates lag (0, 1) (2/3) and (0, 2) (1/3), not (1, 0)."""
    rng = np.random.default_rng(6)
    noise = box3(rng.normal(0, 10, (256, 256)), axes=(1,))
    assert autocorrelation(noise, (0, 1)) == pytest.approx(2 / 3, abs=0.05)
    assert autocorrelation(noise, (0, 2)) == pytest.approx(1 / 3, abs=0.05)
    assert abs(autocorrelation(noise, (1, 0))) < 0.02
    assert autocorrelation(noise, (0, 0)) == pytest.approx(1.0, abs=1e-12)


def test_constant_residual_gives_zero_std_and_autocorrelation():
    image = astronaut_crop(32)
    stats = residual_stats(image + 3.0, image)
    assert stats.mean == pytest.approx([3.0] * 3, abs=1e-12)
    assert stats.std == pytest.approx([0.0] * 3, abs=1e-12)
    assert all(v == 0.0 for v in stats.autocorr.values())


def test_constant_channels_do_not_dilute_the_average():
    """Only channels with a varying residual enter the channel average."""
    rng = np.random.default_rng(7)
    residual = np.zeros((128, 128, 3))
    residual[:, :, 1] = box3(rng.normal(0, 5, (128, 128)), axes=(0, 1))
    stats = residual_stats(residual, np.zeros_like(residual))
    assert stats.autocorr["0,1"] == pytest.approx(autocorrelation(residual[:, :, 1], (0, 1)),
                                                  abs=1e-12)
    assert stats.autocorr["0,1"] > 0.5


def test_autocorrelation_refuses_bad_lags():
    with pytest.raises(ValueError, match="non-negative"):
        autocorrelation(np.zeros((8, 8)), (-1, 0))
    with pytest.raises(ValueError, match="does not fit"):
        autocorrelation(np.zeros((8, 8)), (0, 8))
