"""``denoise --compare``: the same zoomed crop of noisy | denoised | clean, pixel for pixel."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from atbsn_edge.compare import LABEL_HEIGHT, Crop, comparison_picture, detailed_crop
from conftest import textured_image


def test_panels_are_the_zoomed_crop_of_each_image():
    a = textured_image(60, 80, seed=1)
    b = np.zeros_like(a)
    picture = comparison_picture([("a", a), ("b", b)], Crop(10, 5, 20, 16), zoom=2)
    assert picture.shape == (LABEL_HEIGHT + 32, 2 * 40 + 4, 3)
    panel = picture[LABEL_HEIGHT:, :40].astype(int)
    want = np.repeat(np.repeat(np.rint(a[5:21, 10:30]), 2, 0), 2, 1).astype(int)
    assert np.array_equal(panel, want)                       # nearest neighbour, no blur
    assert (picture[LABEL_HEIGHT:, 44:] == 0).all()
    assert (picture[:LABEL_HEIGHT] < 255).any()              # the label was drawn


def test_detailed_crop_finds_the_textured_region():
    flat = np.full((256, 256, 3), 128, np.float32)
    flat[128:, 128:] = textured_image(128, 128)
    assert detailed_crop(flat, 128) == Crop(128, 128, 128, 128)
    assert Crop(200, 200, 128, 128).fitted(100, 150) == Crop(22, 0, 128, 100)
    with pytest.raises(ValueError, match="X,Y,WIDTH,HEIGHT"):
        Crop.parse("1,2,3")


def test_denoise_writes_the_comparison(make_checkpoint, tmp_path, capsys):
    pytest.importorskip("torch")
    from atbsn_edge.denoise import main as denoise

    clean = textured_image(100, 150, seed=2)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 12, clean.shape), 0, 255)
    cv2.imwrite(str(tmp_path / "n.png"), noisy.astype(np.uint8)[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "c.png"), clean.astype(np.uint8)[:, :, ::-1])
    args = [str(tmp_path / "n.png"), "-o", str(tmp_path / "out"), "--checkpoint",
            str(make_checkpoint("student_a")), "--tile", "0"]
    assert denoise(args + ["--compare", "--clean", str(tmp_path / "c.png"),
                           "--compare-crop", "0,0,64,50", "--compare-zoom", "2"]) == 0
    picture = cv2.imread(str(tmp_path / "out" / "n_compare.png"))[:, :, ::-1]
    assert picture.shape == (LABEL_HEIGHT + 100, 3 * 128 + 8, 3)
    noisy_panel = picture[LABEL_HEIGHT:, :128].astype(int)
    stored = cv2.imread(str(tmp_path / "n.png"))[:, :, ::-1][:50, :64].astype(int)
    assert np.array_equal(noisy_panel, np.repeat(np.repeat(stored, 2, 0), 2, 1))
    clean_panel = picture[LABEL_HEIGHT:, 2 * 132:].astype(int)
    assert np.array_equal(clean_panel[::2, ::2], clean.astype(np.uint8)[:50, :64].astype(int))
    # an existing comparison needs --overwrite like any output; --clean needs --compare
    assert denoise(args + ["--clean", str(tmp_path / "c.png")]) == 2
    assert "give --compare too" in capsys.readouterr().err


def test_comparison_never_overwrites_an_input(make_checkpoint, tmp_path, capsys):
    pytest.importorskip("torch")
    from atbsn_edge.denoise import main as denoise

    out = tmp_path / "out"
    out.mkdir()
    cv2.imwrite(str(out / "a_compare.png"), textured_image(40, 40).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "a.png"), textured_image(40, 40).astype(np.uint8))
    before = (out / "a_compare.png").read_bytes()
    code = denoise([str(tmp_path / "a.png"), str(out / "a_compare.png"), "-o", str(out),
                    "--checkpoint", str(make_checkpoint("student_a")), "--tile", "0",
                    "--compare", "--overwrite"])
    assert code == 1 and "is an input" in capsys.readouterr().err
    assert (out / "a_compare.png").read_bytes() == before
