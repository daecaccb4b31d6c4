"""The denoising strength: a number blends globally, ``auto`` per pixel from the residual."""
from __future__ import annotations

import numpy as np
import pytest

from atbsn_edge.errors import AtbsnError
from atbsn_edge.metrics import psnr
from atbsn_edge.strength import (AUTO, auto_gain, blend_with_input, describe_strength,
                                 model_strength, parse_strength)

SIGMA = 5.0


def flat_with_texture_stripe(h: int = 96, w: int = 128) -> tuple[np.ndarray, slice]:
    """A flat grey image with a fine vertical-stripe texture (amplitude 20) over its right
    16 columns (12.5 % of the image), and the texture's columns."""
    clean = np.full((h, w, 3), 128.0, np.float32)
    stripe = slice(w - 16, w)
    clean[:, stripe] += (20.0 * np.sin(np.arange(16) * np.pi / 2 + 0.7))[None, :, None]
    return clean, stripe


def test_auto_keeps_texture_a_denoiser_took_for_noise():
    """A 'denoiser' that returns flat grey removes the noise and the texture: at strength 1 the
    texture is lost, at 0 the noise stays; auto's gain is ~1 on the flat part and low on the
    texture, so it beats both (expected MSE about 3 against 25 and 25)."""
    clean, stripe = flat_with_texture_stripe()
    noisy = clean + np.random.default_rng(0).normal(0, SIGMA, clean.shape).astype(np.float32)
    denoised = np.full_like(clean, 128.0)
    gain = auto_gain(denoised - noisy)
    assert gain.shape == clean.shape[:2] and 0 <= gain.min() and gain.max() <= 1
    assert gain[:, :100].mean() > 0.95            # flat, 12 columns clear of the stripe
    assert gain[:, stripe][:, 6:].mean() < 0.25   # inside the texture
    auto = blend_with_input(noisy, denoised, AUTO)
    np.testing.assert_allclose(auto, noisy + gain[:, :, None] * (denoised - noisy), atol=1e-4)
    assert psnr(auto, clean) > max(psnr(noisy, clean), psnr(denoised, clean)) + 5.0


def test_auto_is_the_network_output_where_only_noise_was_removed():
    clean = np.full((64, 64, 3), 100.0, np.float32)
    noisy = clean + np.random.default_rng(1).normal(0, SIGMA, clean.shape).astype(np.float32)
    auto = blend_with_input(noisy, clean.copy(), AUTO)
    assert psnr(auto, clean) > psnr(noisy, clean) + 12.0   # most of the noise goes


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
