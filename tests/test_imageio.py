"""Image reading/writing (atbsn_edge.imageio), atomic writes (atomic) and input expansion (inputs).

Every image is generated here with numpy and written with OpenCV or Pillow into tmp_path.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from atbsn_edge import imageio
from atbsn_edge.atomic import atomic_path
from atbsn_edge.errors import AtbsnError, ImageError
from atbsn_edge.imageio import Picture, apply_orientation, read_image, to_storage, write_image
from atbsn_edge.inputs import expand_inputs
from conftest import textured_image

H, W = 40, 50


def rgb_u8(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """An H x W x 3 uint8 RGB image with edges, gradients and noise."""
    return np.rint(textured_image(h, w, seed)).astype(np.uint8)


def rgb_u16(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """An H x W x 3 uint16 RGB image using the whole 16-bit range, odd values included."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)
    img[0, 0] = [0, 65535, 1]
    img[0, 1] = [257, 32767, 65534]
    return img


def cv2_write(path: Path, array: np.ndarray) -> Path:
    """Write with OpenCV (array already in OpenCV's BGR(A) order) and check it worked."""
    assert cv2.imwrite(str(path), array), f"cv2 could not write {path}"
    return path


def cv2_read(path: Path) -> np.ndarray:
    out = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert out is not None, f"cv2 could not read {path}"
    return out


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------

def test_png_8bit_rgb_round_trip_is_exact(tmp_path):
    rgb = rgb_u8()
    src = cv2_write(tmp_path / "in.png", rgb[:, :, ::-1])
    pic = read_image(src)
    assert (pic.height, pic.width) == (H, W)
    assert pic.rgb.shape == (H, W, 3) and pic.rgb.dtype == np.float32
    assert pic.bit_depth == 8 and not pic.grayscale and pic.alpha is None
    assert pic.source == str(src)
    # RGB order (OpenCV stores BGR): exact, channel by channel.
    np.testing.assert_array_equal(pic.rgb, rgb.astype(np.float32))

    out = write_image(tmp_path / "out.png", pic, pic.rgb)
    assert out == tmp_path / "out.png"
    back = cv2_read(out)
    assert back.dtype == np.uint8 and back.shape == (H, W, 3)
    np.testing.assert_array_equal(back, rgb[:, :, ::-1])


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_round_trip_keeps_bit_depth(tmp_path, suffix):
    deep = rgb_u16()
    src = cv2_write(tmp_path / f"in{suffix}", deep[:, :, ::-1])
    pic = read_image(src)
    assert pic.bit_depth == 16 and not pic.grayscale and pic.alpha is None
    # 16-bit values are scaled to 0..255 by 255/65535 (float32 precision).
    np.testing.assert_allclose(pic.rgb, deep.astype(np.float64) * 255.0 / 65535.0,
                               rtol=0, atol=1e-4)
    assert pic.rgb.max() == pytest.approx(255.0, abs=1e-4)

    out = write_image(tmp_path / f"out{suffix}", pic, pic.rgb)
    back = cv2_read(out)
    assert back.dtype == np.uint16 and back.shape == (H, W, 3)
    diff = np.abs(back[:, :, ::-1].astype(np.int64) - deep.astype(np.int64))
    assert diff.max() <= 1  # within 1 LSB of the 16-bit scale


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grayscale_reads_as_three_equal_channels_and_writes_one(tmp_path, dtype):
    gray = rgb_u8()[:, :, 1].astype(dtype)
    if dtype == np.uint16:
        gray = gray * 257  # 0..255 -> 0..65535 exactly
    src = cv2_write(tmp_path / "gray.png", gray)
    pic = read_image(src)
    assert pic.grayscale and pic.alpha is None
    assert pic.bit_depth == (16 if dtype == np.uint16 else 8)
    assert pic.rgb.shape == (H, W, 3)
    np.testing.assert_array_equal(pic.rgb[:, :, 0], pic.rgb[:, :, 1])
    np.testing.assert_array_equal(pic.rgb[:, :, 0], pic.rgb[:, :, 2])
    np.testing.assert_allclose(pic.rgb[:, :, 0], rgb_u8()[:, :, 1], rtol=0, atol=1e-3)

    back = cv2_read(write_image(tmp_path / "out.png", pic, pic.rgb))
    assert back.ndim == 2 and back.shape == (H, W) and back.dtype == dtype
    np.testing.assert_array_equal(back, gray)


def test_grayscale_picture_stores_the_channel_mean():
    pic = Picture(rgb=np.zeros((2, 2, 3), np.float32), grayscale=True)
    rgb = np.array([[[0, 30, 90], [10, 10, 10]], [[255, 255, 0], [100, 101, 103]]], np.float32)
    stored = to_storage(pic, rgb)
    assert stored.shape == (2, 2) and stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, [[40, 10], [170, 101]])  # 101.33 -> 101


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_pixels_of_another_depth_are_one_image_error(tmp_path, dtype, channels):
    """A TIFF of float or signed pixels: an ImageError naming the type, not OpenCV's error."""
    array = np.full((H, W, channels) if channels > 1 else (H, W), 7, dtype)
    path = tmp_path / "odd.tif"
    try:
        written = cv2.imwrite(str(path), array)
    except cv2.error:
        written = False
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if written else None
    if decoded is None or decoded.dtype != dtype:
        pytest.skip(f"OpenCV does not round-trip {np.dtype(dtype).name} TIFFs here")
    with pytest.raises(ImageError, match=f"{np.dtype(dtype).name} pixels are not supported"):
        read_image(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgba_alpha_passes_through_byte_identical(tmp_path, dtype):
    rgb = rgb_u8()
    rng = np.random.default_rng(1)
    alpha = rng.integers(0, 256, (H, W), dtype=np.uint8)
    alpha[0, :2] = [0, 255]
    bgra = np.dstack([rgb[:, :, ::-1], alpha]).astype(dtype)
    if dtype == np.uint16:
        bgra = bgra * 256 + 3  # use low bits too: alpha must survive without rescaling
        bgra[0, 0, 3] = 65535
    src = cv2_write(tmp_path / "rgba.png", bgra)
    pic = read_image(src)
    assert pic.alpha is not None and pic.alpha.dtype == dtype
    np.testing.assert_array_equal(pic.alpha, bgra[:, :, 3])
    assert not pic.grayscale

    # Write a different picture content: colours change, alpha stays byte-identical.
    inverted = 255.0 - pic.rgb
    back = cv2_read(write_image(tmp_path / "out.png", pic, inverted))
    assert back.shape == (H, W, 4) and back.dtype == dtype
    np.testing.assert_array_equal(back[:, :, 3], bgra[:, :, 3])
    full = 65535 if dtype == np.uint16 else 255
    diff = np.abs(back[:, :, :3].astype(np.int64) - (full - bgra[:, :, :3].astype(np.int64)))
    assert diff.max() <= 1


def test_gray_with_alpha_png_keeps_its_alpha(tmp_path):
    """A Pillow 'LA' PNG: OpenCV expands it to BGRA; the alpha must still come back unchanged."""
    gray = rgb_u8()[:, :, 0]
    alpha = np.random.default_rng(2).integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(np.dstack([gray, alpha]), mode="LA").save(tmp_path / "la.png")
    pic = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(pic.alpha, alpha)
    for c in range(3):
        np.testing.assert_array_equal(pic.rgb[:, :, c], gray.astype(np.float32))
    back = cv2_read(write_image(tmp_path / "out.png", pic, pic.rgb))
    np.testing.assert_array_equal(back[:, :, 3], alpha)


def test_jpeg_written_and_read_back_within_jpeg_tolerance(tmp_path):
    # A smooth image: OpenCV's JPEG subsamples chroma, which per-pixel colour noise would not survive.
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    rgb = np.rint(np.stack([128 + 60 * np.sin(xx / 9) * np.cos(yy / 11), 60 + 2 * xx,
                            200 - 2 * yy], axis=2)).astype(np.float32)
    pic = Picture(rgb=rgb, source="mem")
    hi = write_image(tmp_path / "q95.jpg", pic, pic.rgb)
    lo = write_image(tmp_path / "q30.jpeg", pic, pic.rgb, jpeg_quality=30)
    back = read_image(hi)
    assert back.bit_depth == 8 and back.rgb.shape == (48, 64, 3)
    err = np.abs(back.rgb - rgb)
    # Quality 95 (measured: mean 0.7, max 6 with OpenCV 5.0).
    assert err.mean() < 1.5, err.mean()
    assert err.max() <= 12.0, err.max()
    # The quality setting is honoured: quality 30 is smaller and less faithful.
    assert lo.stat().st_size < hi.stat().st_size
    assert np.abs(read_image(lo).rgb - rgb).mean() > err.mean()


def test_jpeg_output_of_16bit_rgba_is_8bit_rgb(tmp_path):
    deep = rgb_u16()
    alpha = np.full((H, W), 1234, np.uint16)
    src = cv2_write(tmp_path / "deep.png", np.dstack([deep[:, :, ::-1], alpha]))
    pic = read_image(src)
    assert pic.bit_depth == 16 and pic.alpha is not None
    smooth = np.full((H, W, 3), 100.0, np.float32)
    smooth[:, W // 2:] = 200.0
    back = cv2_read(write_image(tmp_path / "out.jpg", pic, smooth))
    assert back.dtype == np.uint8 and back.shape == (H, W, 3)  # 8 bits, alpha dropped
    assert np.abs(back[:, :, ::-1].astype(np.float32) - smooth).mean() < 2.0


# --------------------------------------------------------------------------------------------
# EXIF orientation
# --------------------------------------------------------------------------------------------

def _with_orientation(path: Path, array: np.ndarray, orientation: int, fmt: str) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(array).save(path, fmt, exif=exif, **kwargs)
    return path


def _marked_image() -> np.ndarray:
    """48 wide x 32 high, black, with a red 8x8 block at the stored top-left corner."""
    stored = np.zeros((32, 48, 3), np.uint8)
    stored[:8, :8] = [255, 0, 0]
    stored[-8:, -8:] = [0, 0, 255]  # blue block at the stored bottom-right
    return stored


@pytest.mark.parametrize("orientation, red_at, blue_at", [
    (6, (2, 29), (45, 2)),   # rotate 90 clockwise: stored top-left -> displayed top-right
    (8, (45, 2), (2, 29)),   # rotate 90 counter-clockwise: stored top-left -> bottom-left
], ids=["orientation-6", "orientation-8"])
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation, red_at, blue_at):
    path = _with_orientation(tmp_path / f"o{orientation}.jpg", _marked_image(), orientation, "JPEG")
    stored = cv2_read(path)
    assert stored.shape == (32, 48, 3)  # the file itself is stored landscape
    pic = read_image(path)
    assert pic.rgb.shape == (48, 32, 3)  # upright: portrait
    np.testing.assert_allclose(pic.rgb[red_at], [255, 0, 0], atol=12)
    np.testing.assert_allclose(pic.rgb[blue_at], [0, 0, 255], atol=12)
    np.testing.assert_allclose(pic.rgb[24, 16], [0, 0, 0], atol=12)
    # The whole picture matches Pillow's own exif_transpose (both decode the same JPEG).
    with Image.open(path) as im:
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32)
    assert np.abs(pic.rgb - ref).max() <= 2.0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow_exactly(tmp_path, orientation):
    """Lossless PNG with an eXIf chunk: read_image equals Pillow's exif_transpose bit for bit."""
    stored = rgb_u8(20, 30, seed=orientation)
    path = _with_orientation(tmp_path / "o.png", stored, orientation, "PNG")
    with Image.open(path) as im:
        assert im.getexif().get(0x0112) == orientation
        ref = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32)
    pic = read_image(path)
    expected_shape = (30, 20, 3) if orientation >= 5 else (20, 30, 3)
    assert pic.rgb.shape == expected_shape
    np.testing.assert_array_equal(pic.rgb, ref)


def test_png_exif_after_the_image_data_is_read_from_the_header(tmp_path):
    """An eXIf chunk after IDAT (allowed, and found by Pillow only after decoding) is found by
    walking the chunks: the header says orientation 6, and read_image turns the picture."""
    import struct
    import zlib

    stored = rgb_u8(20, 30, seed=3)
    path = tmp_path / "late.png"
    Image.fromarray(stored).save(path, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    body = exif.tobytes()
    chunk = struct.pack(">I", len(body)) + b"eXIf" + body
    chunk += struct.pack(">I", zlib.crc32(chunk[4:]) & 0xFFFFFFFF)
    data = path.read_bytes()
    iend = data.rindex(b"IEND") - 4
    path.write_bytes(data[:iend] + chunk + data[iend:])
    with Image.open(path) as im:
        assert im.getexif().get(0x0112) == 6  # Pillow agrees, after loading the pixels
    assert imageio.probe_image(path).orientation == 6
    np.testing.assert_array_equal(read_image(path).rgb, apply_orientation(stored, 6))


def test_apply_orientation_leaves_unknown_values_alone():
    a = np.arange(6).reshape(2, 3)
    for value in (0, 1, 9):
        assert apply_orientation(a, value) is a


# --------------------------------------------------------------------------------------------
# Unreadable input
# --------------------------------------------------------------------------------------------

def _valid_png_bytes() -> bytes:
    ok, encoded = cv2.imencode(".png", rgb_u8()[:, :, ::-1])
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize("case, reason", [
    ("corrupt", "not a readable image"),
    ("truncated", "truncated PNG"),
    ("empty", "file is empty"),
    ("missing", "cannot read file"),
    ("folder", "cannot read file"),
], ids=["corrupt", "truncated", "empty", "missing", "folder"])
def test_unreadable_files_raise_image_error_naming_the_file(tmp_path, case, reason):
    path = tmp_path / f"{case}.png"
    if case == "corrupt":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    elif case == "truncated":
        data = _valid_png_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "folder":
        path.mkdir()
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("damage, reason", [
    ("cut in a chunk", "truncated PNG (its IDAT chunk"),
    ("cut between chunks", "truncated PNG (the file ends at byte"),
    ("no IEND", "truncated PNG (the file ends at byte"),
    ("flipped byte", "corrupt PNG (the CRC of its IDAT chunk"),
])
def test_broken_png_is_one_error_and_libpng_prints_nothing(tmp_path, capfd, damage, reason):
    """A damaged PNG is refused from its chunk structure before libpng reads it; libpng would
    write its own 'libpng error' line straight to the terminal (file descriptor 2)."""
    data = bytearray(_valid_png_bytes())
    idat = data.index(b"IDAT") - 4
    length = int.from_bytes(data[idat:idat + 4], "big")
    if damage == "cut in a chunk":
        data = data[:idat + 8 + length // 2]
    elif damage == "cut between chunks":
        data = data[:idat + 12 + length + 5]
    elif damage == "no IEND":
        data = data[:-12]
    else:
        data[idat + 8 + length // 2] ^= 0xFF
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=re.escape(reason)):
        read_image(path)
    out, err = capfd.readouterr()
    assert "libpng" not in out + err


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_gray_alpha_round_trip_keeps_gray_and_alpha(tmp_path, suffix):
    """Gray + alpha (Pillow 'LA'): OpenCV alone would expand PNGs to BGRA and drop TIFF alpha."""
    from PIL import Image

    gray, alpha = rgb_u8()[:, :, 0], rgb_u8()[:, :, 2]
    source = tmp_path / f"la{suffix}"
    Image.fromarray(np.dstack([gray, alpha]), mode="LA").save(source)
    picture = read_image(source)
    assert picture.grayscale and np.array_equal(picture.alpha, alpha)
    np.testing.assert_array_equal(picture.rgb[:, :, 1], gray.astype(np.float32))
    target = write_image(tmp_path / f"out{suffix}", picture, picture.rgb)
    with Image.open(target) as back:
        assert back.mode == "LA"
        np.testing.assert_array_equal(np.asarray(back), np.dstack([gray, alpha]))


def test_five_channel_image_is_refused(tmp_path):
    path = tmp_path / "five.tif"
    import tifffile

    tifffile.imwrite(path, np.dstack([rgb_u8()[:, :, 0]] * 5), photometric="minisblack",
                     planarconfig="contig", extrasamples=["unspecified"] * 4)
    with pytest.raises(ImageError, match=r"5 channels; supported 1 \(gray\)") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_float_tiff_is_refused(tmp_path):
    path = cv2_write(tmp_path / "float.tif", np.random.default_rng(0).random((H, W, 3),
                                                                               dtype=np.float32))
    assert cv2_read(path).dtype == np.float32  # the file really holds float32 samples
    with pytest.raises(ImageError, match="float32") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_image_over_the_pixel_limit_is_refused(tmp_path, monkeypatch):
    path = cv2_write(tmp_path / "big.png", rgb_u8())
    monkeypatch.setattr(imageio, "MAX_PIXELS", H * W - 1)
    with pytest.raises(ImageError, match="50x40 exceeds") as info:
        read_image(path)
    assert str(path) in str(info.value)
    monkeypatch.setattr(imageio, "MAX_PIXELS", H * W)
    assert read_image(path).rgb.shape == (H, W, 3)


# --------------------------------------------------------------------------------------------
# to_storage and write_image
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(tmp_path, bad):
    pic = Picture(rgb=np.zeros((4, 5, 3), np.float32), source="photo.png")
    rgb = np.full((4, 5, 3), 10.0, np.float32)
    rgb[2, 3, 1] = bad
    with pytest.raises(ImageError, match="NaN or infinite") as info:
        to_storage(pic, rgb)
    assert "photo.png" in str(info.value)
    with pytest.raises(ImageError):
        write_image(tmp_path / "out.png", pic, rgb)
    assert listing(tmp_path) == []


def test_to_storage_rounds_and_clips():
    rgb = np.array([[[-5.0, 0.4, 127.6], [254.5, 255.4, 300.0]]], np.float32)
    eight = to_storage(Picture(rgb=rgb), rgb)
    assert eight.dtype == np.uint8
    np.testing.assert_array_equal(eight[0, 0], [128, 0, 0])       # stored as BGR
    np.testing.assert_array_equal(eight[0, 1], [255, 255, 254])   # 254.5 -> 254 (half to even)
    deep = to_storage(Picture(rgb=rgb, bit_depth=16), rgb)
    assert deep.dtype == np.uint16
    np.testing.assert_array_equal(deep[0, 0], [32793, 103, 0])   # 127.6*257, 0.4*257, clip
    np.testing.assert_array_equal(deep[0, 1], [65535, 65535, 65406])  # 65406.5 -> even


def test_write_image_refuses_existing_target_without_overwrite(tmp_path):
    pic = Picture(rgb=rgb_u8().astype(np.float32))
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(ImageError, match="--overwrite") as info:
        write_image(target, pic, pic.rgb)
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"precious"
    assert listing(tmp_path) == ["out.png"]  # no temporary left behind

    write_image(target, pic, pic.rgb, overwrite=True)
    np.testing.assert_array_equal(cv2_read(target), rgb_u8()[:, :, ::-1])
    assert listing(tmp_path) == ["out.png"]


def test_write_image_refuses_unwritable_suffix_and_creates_parents(tmp_path):
    pic = Picture(rgb=rgb_u8().astype(np.float32))
    with pytest.raises(ImageError, match="cannot write '.bmp'"):
        write_image(tmp_path / "out.bmp", pic, pic.rgb)
    assert listing(tmp_path) == []
    target = write_image(tmp_path / "a" / "b" / "out.tiff", pic, pic.rgb)
    np.testing.assert_array_equal(cv2_read(target), rgb_u8()[:, :, ::-1])


# --------------------------------------------------------------------------------------------
# atomic_path
# --------------------------------------------------------------------------------------------

def test_atomic_path_failure_keeps_old_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.bin"
    target.write_bytes(b"old")
    seen = []
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            seen.append(tmp)
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_bytes(b"half-written")
            1 / 0
    assert target.read_bytes() == b"old"
    assert not seen[0].exists()
    assert listing(tmp_path) == ["result.bin"]


def test_atomic_path_failure_on_new_target_creates_nothing(tmp_path):
    target = tmp_path / "sub" / "new.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert not target.exists()
    assert listing(target.parent) == []


def test_atomic_path_success_and_refusals(tmp_path):
    target = tmp_path / "result.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with atomic_path(target, overwrite=True) as tmp:
        tmp.write_bytes(b"second")
    assert target.read_bytes() == b"second"

    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_bytes(b"third")
    assert target.read_bytes() == b"second"

    with pytest.raises(RuntimeError, match="nothing was written"):
        with atomic_path(target):
            pass
    assert target.read_bytes() == b"second"
    assert listing(tmp_path) == ["result.bin"]


def test_atomic_path_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "bundle"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert listing(target) == ["new.txt"]
    assert listing(tmp_path) == ["bundle"]  # no backup or temporary left

    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "partial.txt").write_text("partial")
            raise ValueError("boom")
    assert listing(target) == ["new.txt"]
    assert listing(tmp_path) == ["bundle"]


# --------------------------------------------------------------------------------------------
# inputs.expand_inputs
# --------------------------------------------------------------------------------------------

@pytest.fixture
def image_tree(tmp_path):
    """imgs/ with three images, a text file, a checkpoint, a sub-folder image; other/c.png."""
    imgs = tmp_path / "imgs"
    (imgs / "sub").mkdir(parents=True)
    for name in ("b.png", "A.JPG", "c.tif", "sub/d.png"):
        (imgs / name).write_bytes(b"x")
    (imgs / "notes.txt").write_text("not an image")
    (imgs / "model.pt").write_bytes(b"x")
    (imgs / "folder.png").mkdir()  # a folder with an image suffix is not a file
    other = tmp_path / "other"
    other.mkdir()
    (other / "c.png").write_bytes(b"x")
    return tmp_path


def test_expand_inputs_folder_takes_only_image_files_sorted_not_recursive(image_tree):
    imgs = image_tree / "imgs"
    assert expand_inputs([str(imgs)]) == [imgs / "A.JPG", imgs / "b.png", imgs / "c.tif"]


def test_expand_inputs_files_are_taken_as_given(image_tree):
    notes = image_tree / "imgs" / "notes.txt"
    c = image_tree / "other" / "c.png"
    assert expand_inputs([str(c), str(notes)]) == [c, notes]


def test_expand_inputs_globs_match_files_only(image_tree):
    imgs = image_tree / "imgs"
    assert expand_inputs([str(imgs / "*.png")]) == [imgs / "b.png"]  # folder.png skipped
    assert expand_inputs([str(image_tree / "*" / "c.*")]) == [imgs / "c.tif",
                                                              image_tree / "other" / "c.png"]
    # '**' is not recursive here: like '*', it spans exactly one folder level.
    assert expand_inputs([str(imgs / "**" / "*.png")]) == [imgs / "sub" / "d.png"]


def test_expand_inputs_removes_duplicates_keeping_first_order(image_tree):
    imgs = image_tree / "imgs"
    result = expand_inputs([str(imgs / "c.tif"), str(imgs), str(imgs / "*.png"),
                            str(imgs / "c.tif")])
    assert result == [imgs / "c.tif", imgs / "A.JPG", imgs / "b.png"]


def test_expand_inputs_names_every_missing_item(image_tree):
    missing = str(image_tree / "nope.png")
    empty_glob = str(image_tree / "imgs" / "*.webp")
    empty_dir = image_tree / "empty"
    empty_dir.mkdir()
    with pytest.raises(AtbsnError) as info:
        expand_inputs([missing, str(image_tree / "imgs"), empty_glob, str(empty_dir)])
    message = str(info.value)
    assert message.startswith("no image files found for: ")
    named = message[len("no image files found for: "):].split(" (give image files")[0]
    assert named.split(", ") == [missing, empty_glob, str(empty_dir)]  # the good folder is not


def test_expand_inputs_honours_custom_suffixes(image_tree):
    imgs = image_tree / "imgs"
    assert expand_inputs([str(imgs)], suffixes=(".txt",)) == [imgs / "notes.txt"]
    assert expand_inputs([str(imgs)], suffixes=(".tif", ".jpg")) == [imgs / "A.JPG", imgs / "c.tif"]
