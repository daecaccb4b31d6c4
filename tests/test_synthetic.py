"""atbsn_edge.synthetic: Bayer mosaic, Poisson-Gaussian sensor noise, bilinear demosaic, JPEG,
checked on flat patches (known variances) and on real photographs from scikit-image."""
from __future__ import annotations

import numpy as np
import pytest

from atbsn_edge.metrics import psnr, residual_stats
from atbsn_edge.synthetic import bayer_mosaic, camera_noise, demosaic

skimage_data = pytest.importorskip("skimage.data")


def photo(name: str, size: int = 128) -> np.ndarray:
    """A size x size crop from the middle of a scikit-image photograph, float32 0..255."""
    image = getattr(skimage_data, name)()
    y, x = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[y:y + size, x:x + size].astype(np.float32)


def flat(level: float, size: int = 128) -> np.ndarray:
    return np.full((size, size, 3), level, np.float32)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_mosaic_samples_rggb():
    rgb = np.zeros((4, 6, 3), np.float32)
    rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2] = 10, 20, 30
    mosaic = bayer_mosaic(rgb)
    assert mosaic.shape == (4, 6)
    np.testing.assert_array_equal(mosaic[0::2, 0::2], 10)  # R top-left
    np.testing.assert_array_equal(mosaic[0::2, 1::2], 20)  # G
    np.testing.assert_array_equal(mosaic[1::2, 0::2], 20)  # G
    np.testing.assert_array_equal(mosaic[1::2, 1::2], 30)  # B


def test_demosaic_restores_flat_colours_exactly_and_keeps_samples():
    """Bilinear interpolation of a constant colour is that colour everywhere, borders included
    (odd sizes too); at sampled sites the sample itself is kept."""
    colour = np.array([200.0, 100.0, 50.0], np.float32)
    out = demosaic(bayer_mosaic(np.broadcast_to(colour, (33, 47, 3)).copy()))
    assert out.shape == (33, 47, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.broadcast_to(colour, out.shape), atol=1e-4)
    clean = photo("astronaut", 32)
    out = demosaic(bayer_mosaic(clean))
    np.testing.assert_allclose(out[0::2, 0::2, 0], clean[0::2, 0::2, 0], atol=1e-4)
    np.testing.assert_allclose(out[1::2, 1::2, 2], clean[1::2, 1::2, 2], atol=1e-4)


def test_output_shape_dtype_range_and_whole_numbers():
    clean = photo("coffee")
    noisy = camera_noise(clean, gain=0.5, read_noise=2.0, rng=rng())
    assert noisy.shape == clean.shape and noisy.dtype == np.float32
    assert noisy.min() >= 0 and noisy.max() <= 255
    np.testing.assert_array_equal(noisy, np.rint(noisy))  # 8-bit camera output
    assert not np.array_equal(noisy, clean)


def test_noise_free_limit_is_the_demosaiced_image():
    """With a huge gain (shot noise std ~1e-3) and no read noise only demosaicing and the
    rounding to whole numbers (at most 0.5, plus the residual noise) remain."""
    clean = photo("chelsea")
    out = camera_noise(clean, gain=1e9, read_noise=0.0, rng=rng())
    assert np.abs(out - demosaic(bayer_mosaic(clean))).max() <= 0.5 + 0.01


def test_variance_grows_linearly_with_signal_without_read_noise():
    """Poisson: on the mosaic var = level / gain; demosaicing and rounding are the same for
    both levels, so the variance ratio of flat patches at 200 and 40 is 200 / 40 = 5
    (within 10 %; the estimates on 128 x 128 x 3 correlated pixels vary by ~3 %)."""
    low = camera_noise(flat(40), gain=1.0, read_noise=0.0, rng=rng(1))
    high = camera_noise(flat(200), gain=1.0, read_noise=0.0, rng=rng(2))
    assert high.var() / low.var() == pytest.approx(5.0, rel=0.10)
    # a larger gain (more photons per unit) means less noise: variance ~ 1 / gain
    high_gain = camera_noise(flat(200), gain=4.0, read_noise=0.0, rng=rng(3))
    assert high.var() / high_gain.var() == pytest.approx(4.0, rel=0.10)


def test_read_noise_sets_a_floor_on_dark_patches():
    """var = level / gain + read_noise^2 on the mosaic: at level 40 with gain 4 that is
    10 + 64 with read noise 8 against 10 without, a ratio of 7.4 (within 12 %: estimator
    spread ~4 %, and rounding adds 1/12 to both variances)."""
    with_read = camera_noise(flat(40), gain=4.0, read_noise=8.0, rng=rng(4))
    without = camera_noise(flat(40), gain=4.0, read_noise=0.0, rng=rng(4))
    ratio = with_read.var() / without.var()
    assert ratio == pytest.approx((10 + 64) / 10, rel=0.12)


def test_demosaiced_noise_is_spatially_correlated():
    """On the mosaic the noise is white; bilinear demosaicing averages noisy neighbours, so
    the noise of the output has a lag-1 autocorrelation clearly above 0.1 (about 0.5)."""
    clean = flat(120)
    noisy = camera_noise(clean, gain=1.0, read_noise=2.0, rng=rng(5))
    stats = residual_stats(noisy, clean)
    assert stats.autocorr["0,1"] > 0.1 and stats.autocorr["1,0"] > 0.1
    assert stats.autocorr["0,1"] > 0.3  # far from white noise (|rho| ~ 0.005 here)


def test_seeded_determinism():
    clean = photo("astronaut", 64)
    a = camera_noise(clean, gain=0.5, read_noise=3.0, rng=rng(7), jpeg_quality=80)
    b = camera_noise(clean, gain=0.5, read_noise=3.0, rng=rng(7), jpeg_quality=80)
    c = camera_noise(clean, gain=0.5, read_noise=3.0, rng=rng(8), jpeg_quality=80)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_jpeg_option_changes_the_output_mildly():
    clean = photo("coffee")
    plain = camera_noise(clean, gain=0.5, read_noise=3.0, rng=rng(9))
    jpeg = camera_noise(clean, gain=0.5, read_noise=3.0, rng=rng(9), jpeg_quality=60)
    assert jpeg.dtype == np.float32 and jpeg.shape == clean.shape
    assert not np.array_equal(plain, jpeg)
    assert 25 < psnr(jpeg, plain) < 60  # a compression of the same image, not another image
    # JPEG smooths part of the noise away: the compressed image is closer to clean
    assert psnr(jpeg, clean) > psnr(plain, clean)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_psnr_decreases_as_read_noise_increases(name):
    """Gain 20 keeps shot noise moderate (var ~ level / 20 < 13) and the same seed draws the
    same photons, so read noise 0, 2, 8, 20 (var 0, 4, 64, 400) lowers PSNR step by step;
    the demosaicing error (~28-32 dB alone on these crops) bounds the first steps, measured
    0.1-0.2 dB, then 1.2-2.5 dB and 3.6-5 dB."""
    clean = photo(name)
    scores = [psnr(camera_noise(clean, gain=20.0, read_noise=s, rng=rng(10)), clean)
              for s in (0.0, 2.0, 8.0, 20.0)]
    assert scores[0] > scores[1] + 0.05, scores
    assert scores[1] > scores[2] + 1.0, scores
    assert scores[2] > scores[3] + 3.0, scores


def test_bad_arguments():
    with pytest.raises(ValueError, match="H x W x 3"):
        camera_noise(np.zeros((8, 8)), gain=1.0, read_noise=1.0, rng=rng())
    with pytest.raises(ValueError, match="gain"):
        camera_noise(flat(10, 8), gain=0.0, read_noise=1.0, rng=rng())
    with pytest.raises(ValueError, match="read_noise"):
        camera_noise(flat(10, 8), gain=1.0, read_noise=-1.0, rng=rng())
    with pytest.raises(ValueError, match="quality"):
        camera_noise(flat(10, 8), gain=1.0, read_noise=1.0, rng=rng(), jpeg_quality=0)
