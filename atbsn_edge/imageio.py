"""Image reading and writing: PNG, JPEG, TIFF; 8 and 16 bit; gray, RGB, RGBA; EXIF orientation.

Images travel through the toolkit as :class:`Picture`: an H x W x 3 float32 RGB array on
the 0..255 scale (16-bit images are scaled by 255/65535), plus what is needed to write the
result back the way it came (bit depth, grayscale, an untouched alpha channel).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ImageError

log = logging.getLogger(__name__)

READ_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_PIXELS = 200_000_000  # 200 MP: beyond this the float32 buffers alone exceed ~5 GB
_ORIENTATION_TAG = 0x0112


def _cv2():
    """OpenCV (a core dependency), imported on first use with its own logging silenced:
    decoding failures are reported by this module, in one line."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # older OpenCV builds without the logging module
        pass
    return cv2


@dataclass
class Picture:
    """An RGB float32 image on 0..255 plus how to write it back."""

    rgb: np.ndarray
    bit_depth: int = 8
    grayscale: bool = False
    alpha: np.ndarray | None = None
    source: str = ""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _pillow_header(data: bytes) -> tuple[int, str]:
    """EXIF orientation (1..8; 1 when absent) and Pillow's mode, from the header only."""
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return int(im.getexif().get(_ORIENTATION_TAG, 1) or 1), im.mode
    except Exception:  # Pillow cannot parse this header: keep the image as stored
        return 1, ""


def _decode_gray_alpha(data: bytes) -> np.ndarray:
    """Gray + alpha (Pillow mode LA), which OpenCV decodes as plain gray, as H x W x 2."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("LA"))


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Turn a stored image upright according to its EXIF orientation value."""
    ops = {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(array)) if op else array


def _to_float(array: np.ndarray, path: str) -> tuple[np.ndarray, int]:
    """Integer pixels as float32 on 0..255 (one allocation) and their bit depth."""
    if array.dtype == np.uint8:
        return array.astype(np.float32), 8
    if array.dtype == np.uint16:
        values = array.astype(np.float32)
        values *= np.float32(255.0 / 65535.0)
        return values, 16
    raise ImageError(f"{path}: {array.dtype} pixels are not supported; give an 8- or 16-bit "
                     "integer image")


def read_image(path: str | os.PathLike) -> Picture:
    """Read an image file as a :class:`Picture`, or raise :class:`ImageError` saying why not."""
    path = str(path)
    cv2 = _cv2()
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{path}: file is empty")
    buffer = np.frombuffer(data, np.uint8)
    array = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unsupported "
                         f"format; supported: {', '.join(READ_SUFFIXES)})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    orientation, mode = _pillow_header(data)
    if mode in ("LA", "La"):  # OpenCV expands gray + alpha to BGRA (PNG) or drops alpha (TIFF)
        array = array[:, :, [0, 3]] if array.ndim == 3 else _decode_gray_alpha(data)
    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageError(f"{path}: {channels} channels; supported are 1 (gray), 2 (gray + "
                         "alpha), 3 (RGB) and 4 (RGBA)")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageError(f"{path}: {array.shape[1]}x{array.shape[0]} exceeds the "
                         f"{MAX_PIXELS // 1_000_000} MP limit; split the image first")
    array = apply_orientation(array, orientation)
    alpha = None
    if channels <= 2:
        gray = array if channels == 1 else array[:, :, 0]
        if channels == 2:
            alpha = array[:, :, 1].copy()
        values, depth = _to_float(gray, path)
        rgb = np.repeat(values[:, :, None], 3, axis=2)
    else:
        if channels == 4:
            alpha = array[:, :, 3].copy()
        # BGR(A) -> RGB on the integer array, so that only one float array is ever allocated
        rgb, depth = _to_float(np.ascontiguousarray(array[:, :, 2::-1]), path)
    return Picture(rgb=rgb, bit_depth=depth, grayscale=channels <= 2, alpha=alpha, source=path)


def to_storage(picture: Picture, rgb: np.ndarray, rows_per_chunk: int = 256) -> np.ndarray:
    """Denoised RGB (float 0..255) as the integer array to store, in the picture's own form.

    Converted in bands of rows, so no full-size float temporary is allocated.
    """
    height, width = rgb.shape[:2]
    dtype, top = (np.uint16, 65535.0) if picture.bit_depth == 16 else (np.uint8, 255.0)
    channels = (1 if picture.grayscale else 3) + (picture.alpha is not None)
    out = np.empty((height, width, channels), dtype=dtype)
    for y in range(0, height, rows_per_chunk):
        band = rgb[y:y + rows_per_chunk]
        if not np.isfinite(band).all():
            raise ImageError(f"{picture.source or 'image'}: the network produced NaN or "
                             "infinite values; the checkpoint may be damaged")
        band = band.mean(axis=2, keepdims=True) if picture.grayscale else band[:, :, ::-1]
        scaled = np.rint(band * np.float32(top / 255.0))
        color = 1 if picture.grayscale else 3
        out[y:y + rows_per_chunk, :, :color] = np.clip(scaled, 0, top)
    if picture.alpha is not None:
        out[:, :, -1] = picture.alpha
    return out[:, :, 0] if channels == 1 else out


def _encode_gray_alpha(stored: np.ndarray, suffix: str, path: Path) -> bytes:
    """Gray + alpha through Pillow (OpenCV writes no 2-channel images); 16 bit becomes RGBA."""
    import io

    from PIL import Image

    if stored.dtype != np.uint8:
        log.warning("%s: 16-bit gray + alpha is written as 16-bit RGBA", path)
        ok, array = _cv2().imencode(suffix, stored[:, :, [0, 0, 0, 1]])
        if not ok:
            raise ImageError(f"{path}: encoding as {suffix} failed")
        return array.tobytes()
    buffer = io.BytesIO()
    Image.fromarray(stored, "LA").save(buffer, format="PNG" if suffix == ".png" else "TIFF")
    return buffer.getvalue()


def write_image(path: str | os.PathLike, picture: Picture, rgb: np.ndarray, *,
                overwrite: bool = False, jpeg_quality: int = 95) -> Path:
    """Encode ``rgb`` like ``picture`` (depth, gray, alpha) and write it atomically to ``path``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise ImageError(f"{path}: cannot write '{suffix}'; use one of {', '.join(WRITE_SUFFIXES)}")
    stored = to_storage(picture, rgb)
    cv2 = _cv2()
    if suffix in (".jpg", ".jpeg"):
        if stored.dtype != np.uint8:
            log.warning("%s: JPEG holds 8 bits; writing the 16-bit result as 8 bits", path)
            stored = (stored.astype(np.float32) * (255.0 / 65535.0)).round().astype(np.uint8)
        if stored.ndim == 3 and stored.shape[2] == 4:
            log.warning("%s: JPEG has no alpha channel; alpha dropped", path)
            stored = stored[:, :, :3]
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    else:
        params = []
    if stored.ndim == 3 and stored.shape[2] == 2:
        encoded = _encode_gray_alpha(stored, suffix, path)
    else:
        ok, array = cv2.imencode(suffix, stored, params)
        if not ok:
            raise ImageError(f"{path}: encoding as {suffix} failed")
        encoded = array.tobytes()
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_bytes(encoded)
    except FileExistsError as exc:
        raise ImageError(str(exc)) from None
    return path
