"""The denoising strength: a number blends globally, ``auto`` per pixel from the residual."""
from __future__ import annotations

import numpy as np
import pytest

from atbsn_edge.errors import AtbsnError
from atbsn_edge.metrics import psnr
from atbsn_edge.strength import (AUTO, AUTO_LOW_SIGMA, LowPass, auto_gain, blend_with_input,
                                 describe_strength, model_strength, parse_strength)

SIGMA = 5.0


def flat_with_texture_stripe(h: int = 96, w: int = 128, columns: int = 16,
                             amplitude: float = 40.0) -> tuple[np.ndarray, slice]:
    """A flat grey image with a fine vertical-stripe texture over its right ``columns`` columns,
    and the texture's columns."""
    clean = np.full((h, w, 3), 128.0, np.float32)
    stripe = slice(w - columns, w)
    clean[:, stripe] += (amplitude * np.sin(np.arange(columns) * np.pi / 2 + 0.7))[None, :, None]
    return clean, stripe


def test_auto_keeps_texture_a_denoiser_took_for_noise():
    """A 'denoiser' that returns flat grey removes the noise and the texture (12.5 % of the
    image, mean square 800): at strength 1 the texture is lost, at 0 the noise stays; auto's
    gain is ~1 on the flat part and low on the texture (about 4.3 sigma^2 / 825 there), so it
    beats both."""
    clean, stripe = flat_with_texture_stripe()
    noisy = clean + np.random.default_rng(0).normal(0, SIGMA, clean.shape).astype(np.float32)
    denoised = np.full_like(clean, 128.0)
    gain = auto_gain(denoised - noisy)
    assert gain.shape == clean.shape[:2] and 0 <= gain.min() and gain.max() <= 1
    assert gain[:, :100].mean() > 0.95            # flat, 12 columns clear of the stripe
    assert gain[:, stripe][:, 6:].mean() < 0.25   # inside the texture
    auto = blend_with_input(noisy, denoised, AUTO)
    correction = gain[:, :, None] * (denoised - noisy)
    expected = noisy + correction - LowPass(correction).rows(0, clean.shape[0])  # no clipping
    np.testing.assert_allclose(auto, expected, atol=1e-4)
    assert psnr(auto, clean) > max(psnr(noisy, clean), psnr(denoised, clean)) + 5.0


def test_auto_keeps_texture_that_covers_most_of_the_image():
    """The same with the texture over 3/4 of the image: the level comes from the quietest
    blocks, not from the removed texture (a 0.8 quantile would read the texture as the noise
    level and keep the denoiser's output there, gain 1, 14 dB below the input). Within 1 dB of
    the input: the gain left in the texture (about 0.13) costs a little there."""
    clean, stripe = flat_with_texture_stripe(columns=96)
    noisy = clean + np.random.default_rng(3).normal(0, SIGMA, clean.shape).astype(np.float32)
    denoised = np.full_like(clean, 128.0)
    gain = auto_gain(denoised - noisy, noisy)
    assert gain[:, :24].mean() > 0.95
    assert gain[:, stripe][:, 6:].mean() < 0.25
    auto = blend_with_input(noisy, denoised, AUTO)
    assert psnr(auto, clean) > psnr(noisy, clean) - 1.0
    assert psnr(auto, clean) > psnr(denoised, clean) + 10.0


def test_auto_level_skips_clipped_blocks():
    """Half the picture clipped black: no noise there, so nothing removed; left in, those blocks
    would make the level 0 and auto would return the input. The level skips them and the noisy
    half is denoised as if the black half were not there."""
    clean = np.full((64, 128, 3), 100.0, np.float32)
    noisy = clean + np.random.default_rng(4).normal(0, SIGMA, clean.shape).astype(np.float32)
    clean[:, :64] = noisy[:, :64] = 0.0
    residual = clean - noisy
    assert auto_gain(residual)[:, 72:].max() < 0.01            # without the image: off
    gain = auto_gain(residual, noisy)
    assert gain[:, 72:].mean() > 0.95
    auto = blend_with_input(noisy, clean.copy(), AUTO)
    assert psnr(auto[:, 64:], clean[:, 64:]) > psnr(noisy[:, 64:], clean[:, 64:]) + 12.0
    np.testing.assert_allclose(auto[:, :56], 0.0, atol=0.5)   # stored as 0 (auto's low pass
    # carries a trace of the other half's correction across the edge)


def test_auto_level_uses_every_block_when_nearly_all_are_clipped():
    """Under a tenth of the blocks unclipped: the level falls back to all blocks (no empty
    quantile), the same gain as without the image."""
    rng = np.random.default_rng(5)
    noisy = np.full((64, 64, 3), 255.0, np.float32)
    noisy[:8, :8] = 100.0 + rng.normal(0, SIGMA, (8, 8, 3)).astype(np.float32)  # 1 of 64 blocks
    residual = rng.normal(0, SIGMA, noisy.shape).astype(np.float32)
    np.testing.assert_array_equal(auto_gain(residual, noisy), auto_gain(residual))


def test_auto_is_the_network_output_where_only_noise_was_removed():
    clean = np.full((64, 64, 3), 100.0, np.float32)
    noisy = clean + np.random.default_rng(1).normal(0, SIGMA, clean.shape).astype(np.float32)
    auto = blend_with_input(noisy, clean.copy(), AUTO)
    assert psnr(auto, clean) > psnr(noisy, clean) + 12.0   # most of the noise goes


def test_auto_keeps_the_inputs_low_frequencies_a_denoiser_shifted():
    """A denoiser that removes the noise but tints the picture (+4, -3, +2 grey levels, and a
    slow ramp of 6 across it): at strength 1 the tint stays; auto removes it (the mean of each
    channel within 0.1 of the clean one) and keeps the denoising (more than 12 dB over the
    input)."""
    h, w = 96, 160
    clean = np.full((h, w, 3), 120.0, np.float32)
    noisy = clean + np.random.default_rng(6).normal(0, SIGMA, clean.shape).astype(np.float32)
    tint = np.array([4.0, -3.0, 2.0], np.float32) + np.linspace(0, 6, w, dtype=np.float32)[None, :, None]
    auto = blend_with_input(noisy, clean + tint, AUTO)
    assert psnr(clean + tint, clean) < psnr(noisy, clean)          # the tint costs more than noise
    np.testing.assert_allclose(auto.mean(axis=(0, 1)), clean.mean(axis=(0, 1)), atol=0.1)
    assert psnr(auto, clean) > psnr(noisy, clean) + 12.0


def test_auto_keeps_the_networks_low_frequencies_where_the_input_is_clipped():
    """Where the input is clipped its noise is not zero-mean (a bright area clipped at 255
    reads darker than it is), so the network's change of its low frequencies is right there
    and stays: a flat area at 250 with noise of sigma 8, clipped, 'denoised' to its true 250,
    keeps the network's output (within 0.3 grey levels of the truth on average), where taking
    its low frequencies back from the input would leave it about 1.3 too dark."""
    truth = np.full((64, 96, 3), 250.0, np.float32)
    noisy = np.clip(truth + np.random.default_rng(7).normal(0, 8.0, truth.shape), 0, 255)
    noisy = noisy.astype(np.float32)
    assert truth.mean() - noisy.mean() > 1.0                       # the clipping's bias
    auto = blend_with_input(noisy, truth.copy(), AUTO)
    assert abs(auto.mean() - 250.0) < 0.3


@pytest.mark.parametrize("shape", [(200, 330, 3), (37, 50, 1), (3, 5, 3), (1, 1, 3), (7, 200, 1)])
def test_low_pass_keeps_a_constant_and_removes_detail_finer_than_its_sigma(shape):
    """The low pass of a constant is that constant; of stripes of period 24 (three blocks: their
    block means are not 0, the Gaussian removes them), under 0.05 of their amplitude away from
    the borders; any band of rows is the whole image's rows to the bit, and subtracting in
    place gives the same numbers; images smaller than its step work."""
    constant = np.full(shape, 7.5, np.float32)
    np.testing.assert_allclose(LowPass(constant).rows(0, shape[0]), constant, atol=1e-4)
    h, w = shape[:2]
    stripes = np.sin(2 * np.pi * np.arange(w) / 24.0).astype(np.float32)
    image = np.ascontiguousarray(np.broadcast_to(stripes[None, :, None], shape))
    low = LowPass(image)
    whole = low.rows(0, h)
    if min(h, w) > 4 * AUTO_LOW_SIGMA:
        inner = slice(2 * int(AUTO_LOW_SIGMA), -2 * int(AUTO_LOW_SIGMA))
        assert np.abs(whole[inner, inner]).max() < 0.05
        assert np.abs(LowPass(image, sigma=1.0).rows(0, h)[inner, inner]).max() > 0.5
    np.testing.assert_array_equal(np.concatenate([low.rows(0, h // 3), low.rows(h // 3, h)]), whole)
    subtracted = image.copy()
    low.subtract_from(subtracted[: h // 3], 0)
    low.subtract_from(subtracted[h // 3:], h // 3)
    np.testing.assert_array_equal(subtracted, image - whole)


@pytest.mark.parametrize("strength", [AUTO, 0.3])
def test_blend_in_place_writes_into_the_output(strength):
    rng = np.random.default_rng(2)
    rgb = rng.uniform(0, 255, (20, 30, 3)).astype(np.float32)
    denoised = rng.uniform(0, 255, (20, 30, 3)).astype(np.float32)
    expected = blend_with_input(rgb, denoised, strength)
    copy = denoised.copy()
    assert blend_with_input(rgb, copy, strength, in_place=True) is copy
    np.testing.assert_allclose(copy, expected, atol=1e-4)
    assert blend_with_input(rgb, denoised, 1.0) is denoised


def test_auto_on_images_smaller_than_its_block_and_window():
    rgb = np.full((3, 5, 3), 50.0, np.float32)
    out = blend_with_input(rgb, rgb + 1.0, AUTO)
    assert out.shape == rgb.shape and np.isfinite(out).all()
    zero = blend_with_input(rgb, rgb.copy(), AUTO)      # nothing removed: the input
    np.testing.assert_array_equal(zero, rgb)


@pytest.mark.parametrize("text, expected", [("auto", AUTO), (" AUTO ", AUTO), ("0.65", 0.65),
                                            (0.5, 0.5), ("2", 2.0), ("0", 0.0)])
def test_parse_strength(text, expected):
    assert parse_strength(text, "test") == expected


@pytest.mark.parametrize("text", ["strong", "2.5", "-0.1", "nan", None, ""])
def test_bad_strength_says_what_is_valid(text):
    with pytest.raises(AtbsnError, match="auto"):
        parse_strength(text, "test")


def test_model_strength_from_metadata():
    assert model_strength({}) == 1.0
    assert model_strength({"strength": "auto"}) == AUTO
    assert model_strength({"strength": "0.4"}) == 0.4
    assert (describe_strength(AUTO), describe_strength(0.4)) == ("auto", "0.4")
    with pytest.raises(AtbsnError, match="re-export it, or give --strength"):
        model_strength({"strength": "strong"}, "m.pt")
