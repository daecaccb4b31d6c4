"""Image reading and writing: PNG, JPEG, TIFF; 8 and 16 bit; gray, RGB, RGBA; EXIF orientation.

Images travel through the toolkit as :class:`Picture`: an H x W x 3 float32 RGB array on
the 0..255 scale (16-bit images are scaled by 255/65535), plus what is needed to write the
result back the way it came (bit depth, grayscale, an untouched alpha channel).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .atomic import atomic_path
from .bands import ROWS_PER_BAND, for_each_band
from .errors import ImageError
from .shared_setting import SharedOverride

log = logging.getLogger(__name__)

READ_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MAX_PIXELS = 200_000_000  # 200 MP: beyond this the float32 buffers alone exceed ~5 GB
_ORIENTATION_TAG = 0x0112


def _cv2():
    """OpenCV (a core dependency), imported on first use. Its calls here run inside
    :func:`quiet_opencv`."""
    import cv2

    return cv2


def _opencv_logging():
    """OpenCV's logging module (None in older builds without one)."""
    return getattr(_cv2().utils, "logging", None)


_OPENCV_SILENCE = SharedOverride(lambda: _opencv_logging().getLogLevel(),
                                 lambda level: _opencv_logging().setLogLevel(level),
                                 0)  # cv2.utils.logging.LOG_LEVEL_SILENT


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own log silenced for the ``with`` block: the failures of its decoders and
    video readers are reported by this toolkit, in one line. The level is OpenCV's
    process-wide setting: the application's is back afterwards, and a user who set
    ``OPENCV_LOG_LEVEL`` keeps seeing what it asks for."""
    if "OPENCV_LOG_LEVEL" in os.environ or _opencv_logging() is None:
        yield
        return
    with _OPENCV_SILENCE.applied():
        yield


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
        """The image's height in pixels."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """The image's width in pixels."""
        return int(self.rgb.shape[1])


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding the pixels (0 / None: unknown)."""

    width: int = 0
    height: int = 0
    pages: int = 1
    channels: int | None = None
    mode: str = ""
    orientation: int = 1
    format: str = ""

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) once the EXIF orientation is applied: 5-8 store the picture on its
        side."""
        turned = self.orientation in (5, 6, 7, 8)
        return (self.height, self.width) if turned else (self.width, self.height)

    @property
    def grayscale(self) -> bool | None:
        """Gray (with or without alpha) by the header's mode; None when the mode does not say."""
        if self.mode in _GRAY_MODES:
            return True
        if self.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            return False
        return None


_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_MAX_TIFF_PAGES = 100_000


def _set_pillow_limit(value: int | None) -> None:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = value


def _pillow_limit() -> int | None:
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


_PILLOW_UNLIMITED = SharedOverride(_pillow_limit, _set_pillow_limit, None)


@contextlib.contextmanager
def _pillow_without_pixel_limit():
    """Pillow with its decompression-bomb limit lifted (this module applies MAX_PIXELS
    itself, from the header). The limit is a module global of Pillow: threads reading at
    once share one lifting, and the last to finish puts the application's own value back."""
    from PIL import Image

    with _PILLOW_UNLIMITED.applied():
        yield Image


def _tiff_pages(data: bytes) -> tuple[int, int, int, int] | None:
    """(full-resolution pages, samples per pixel, width, height of page 1) of a TIFF or
    BigTIFF, from its IFD chain; reduced-resolution pages (thumbnails) are not counted.
    None when the structure cannot be followed."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\0", b"\0+")
    # entry size, count and next-offset formats, where an entry's value starts
    entry, count_fmt, value_fmt, value_at = (20, "Q", "Q", 12) if big else (12, "H", "I", 8)
    try:
        offset = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        pages, first, seen = 0, None, set()
        while offset and offset not in seen and len(seen) < _MAX_TIFF_PAGES:
            seen.add(offset)
            (count,) = struct.unpack_from(order + count_fmt, data, offset)
            tags: dict[int, int] = {}
            for i in range(count):
                base = offset + struct.calcsize(count_fmt) + i * entry
                tag, kind = struct.unpack_from(order + "HH", data, base)
                if kind in (3, 4, 16) and tag in (254, 256, 257, 277):
                    fmt = {3: "H", 4: "I", 16: "Q"}[kind]
                    tags[tag] = struct.unpack_from(order + fmt, data, base + value_at)[0]
            if not tags.get(254, 0) & 1:  # NewSubfileType bit 0: a reduced-resolution copy
                pages += 1
                if first is None:
                    first = (tags.get(277, 1), tags.get(256, 0), tags.get(257, 0))
            next_at = offset + struct.calcsize(count_fmt) + count * entry
            (offset,) = struct.unpack_from(order + value_fmt, data, next_at)
    except struct.error:
        return None
    return None if first is None else (pages, *first)


def _png_exif(data: bytes, Image) -> Mapping[int, Any]:
    """A PNG's eXIf chunk, found by walking the chunk headers: Pillow's own ``getexif`` on a
    PNG decodes every pixel first (the chunk may follow the image data), 0.24 s for 12 MP."""
    offset = 8  # the PNG signature
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"eXIf":
            exif = Image.Exif()
            exif.load(data[offset + 8:offset + 8 + length])
            return exif
        if kind == b"IEND":
            break
        offset += 12 + length  # length, type, data, CRC
    return {}


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def check_png_chunks(data: bytes, path: str) -> None:
    """Refuse a PNG whose chunk structure is broken (cut short, no IEND, a chunk whose CRC does
    not match) with :class:`ImageError`, before libpng sees it: libpng would print its own
    "libpng error" line to the terminal before OpenCV's decoder gives up. Not a PNG: nothing
    to check. About 20 ms for a 12 MP PNG (the CRCs)."""
    if not data.startswith(_PNG_SIGNATURE):
        return
    offset, view = len(_PNG_SIGNATURE), memoryview(data)
    while True:
        if offset + 12 > len(data):
            raise ImageError(f"{path}: truncated PNG (the file ends at byte {len(data)}, inside "
                             "the chunk headers, before its IEND chunk); copy it again")
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 12 + length
        if end > len(data):
            name = kind.decode("latin-1", "replace")
            raise ImageError(f"{path}: truncated PNG (its {name} chunk at byte {offset} needs "
                             f"{length} bytes, the file ends at byte {len(data)}); copy it again")
        crc = struct.unpack(">I", data[end - 4:end])[0]
        if zlib.crc32(view[offset + 4:end - 4]) != crc:
            name = kind.decode("latin-1", "replace")
            raise ImageError(f"{path}: corrupt PNG (the CRC of its {name} chunk at byte {offset} "
                             "does not match its data)")
        if kind == b"IEND":
            return
        offset = end


def read_header(data: bytes) -> ImageHeader:
    """The header of an encoded image: size, pages, channels (TIFF), Pillow's mode and the
    EXIF orientation. Never decodes pixels; fields stay unknown where neither Pillow nor the
    TIFF structure tells."""
    width = height = 0
    pages, channels, mode, orientation, kind = 1, None, "", 1, ""
    try:
        with _pillow_without_pixel_limit() as Image, Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            mode, kind = im.mode, im.format or ""
            exif = _png_exif(data, Image) if im.format == "PNG" else im.getexif()
            orientation = int(exif.get(_ORIENTATION_TAG, 1) or 1)
            if im.format in ("PNG", "WEBP"):  # animated; a JPEG's MPO previews are not pages
                pages = int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # Pillow cannot parse this header: keep what the TIFF structure says
        pass
    if data[:4] in _TIFF_MAGIC:
        tiff = _tiff_pages(data)
        if tiff is not None:
            pages, channels, kind = tiff[0], tiff[1], "TIFF"
            width, height = width or tiff[2], height or tiff[3]
    return ImageHeader(width, height, pages, channels, mode, orientation, kind)


def check_header(header: ImageHeader, path: str) -> None:
    """Refuse, before decoding, what :func:`read_image` cannot give back whole."""
    if header.width * header.height > MAX_PIXELS:
        raise ImageError(f"{path}: {header.width}x{header.height} exceeds the "
                         f"{MAX_PIXELS // 1_000_000} MP limit; split the image first")
    if header.pages > 1:
        unit = "pages" if header.format == "TIFF" else "frames"
        raise ImageError(f"{path}: has {header.pages} {unit}; only single-page images are "
                         f"denoised: split it into one file per page first (e.g. ImageMagick: "
                         f"magick {Path(path).name} page-%d{Path(path).suffix or '.tif'})")
    if header.channels is not None and header.channels not in (1, 2, 3, 4):
        raise ImageError(f"{path}: {header.channels} channels; supported 1 (gray), 2 (gray+alpha), "
                         "3 (RGB), 4 (RGBA)")


def probe_image(path: str | os.PathLike) -> ImageHeader:
    """The header of an image file, checked as :func:`read_image` checks it, without decoding."""
    path = str(path)
    header = read_header(_read_bytes(path))
    check_header(header, path)
    return header


def _read_bytes(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{path}: file is empty")
    return data


def _decode_gray_alpha(data: bytes) -> np.ndarray:
    """Gray + alpha (Pillow mode LA), which OpenCV decodes as plain gray, as H x W x 2."""
    with _pillow_without_pixel_limit() as Image, Image.open(io.BytesIO(data)) as im:
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


def _bit_depth(array: np.ndarray, path: str) -> int:
    """8 or 16 for unsigned integer pixels, else :class:`ImageError` saying what is valid."""
    if array.dtype == np.uint8:
        return 8
    if array.dtype == np.uint16:
        return 16
    raise ImageError(f"{path}: {array.dtype} pixels are not supported; give an 8- or 16-bit "
                     "integer image")


def _to_float_rgb(array: np.ndarray, path: str) -> tuple[np.ndarray, int]:
    """Gray (H x W) or BGR(A) integer pixels as RGB float32 on 0..255 and their bit depth: one
    pass in bands of rows on every core into the one float array (gray broadcast to the three
    channels; no converted integer copy), the same values as converting, then reordering."""
    depth = _bit_depth(array, path)
    source = array[:, :, None] if array.ndim == 2 else array[:, :, 2::-1]
    rgb = np.empty((*array.shape[:2], 3), np.float32)
    scale = np.float32(255.0 / 65535.0)

    def band(start: int, stop: int) -> None:
        rows = rgb[start:stop]
        rows[...] = source[start:stop]
        if depth == 16:
            rows *= scale

    for_each_band(rgb.shape[0], band)
    return rgb, depth


def _decode(data: bytes, path: str) -> np.ndarray:
    """OpenCV's decoding of ``data`` (any bit depth and channels), or :class:`ImageError`."""
    cv2 = _cv2()
    try:
        with quiet_opencv():
            array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # e.g. OpenCV's own pixel limit, an unsupported layout
        reason = next((line.strip("> ").strip() for line in str(exc).splitlines()
                       if line.strip("> ").strip() and "OpenCV(" not in line), "")
        raise ImageError(f"{path}: OpenCV cannot decode it ({reason or 'unsupported layout'})") \
            from None
    if array is None or array.size == 0:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unsupported "
                         f"format; supported: {', '.join(READ_SUFFIXES)})")
    return array


def read_image(path: str | os.PathLike) -> Picture:
    """Read an image file as a :class:`Picture`, or raise :class:`ImageError` saying why not.

    The header is checked first (size against ``MAX_PIXELS``, pages, channels), so an
    oversized or multi-page file is refused without decoding it.
    """
    path = str(path)
    data = _read_bytes(path)
    header = read_header(data)
    check_header(header, path)
    check_png_chunks(data, path)
    array = _decode(data, path)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    orientation, mode = header.orientation, header.mode
    if mode in ("LA", "La"):  # OpenCV expands gray + alpha to BGRA (PNG) or drops alpha (TIFF)
        array = array[:, :, [0, 3]] if array.ndim == 3 else _decode_gray_alpha(data)
    channels = 1 if array.ndim == 2 else array.shape[2]
    if channels not in (1, 2, 3, 4):
        raise ImageError(f"{path}: {channels} channels; supported 1 (gray), 2 (gray+alpha), "
                         "3 (RGB), 4 (RGBA)")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageError(f"{path}: {array.shape[1]}x{array.shape[0]} exceeds the "
                         f"{MAX_PIXELS // 1_000_000} MP limit; split the image first")
    array = apply_orientation(array, orientation)
    alpha = None
    if channels <= 2:
        gray = array if channels == 1 else array[:, :, 0]
        if channels == 2:
            alpha = array[:, :, 1].copy()
        rgb, depth = _to_float_rgb(gray, path)
    else:
        if channels == 4:
            alpha = array[:, :, 3].copy()
        rgb, depth = _to_float_rgb(array, path)
    return Picture(rgb=rgb, bit_depth=depth, grayscale=channels <= 2, alpha=alpha, source=path)


def to_storage(picture: Picture, rgb: np.ndarray,
               rows_per_chunk: int = ROWS_PER_BAND) -> np.ndarray:
    """Denoised RGB (float 0..255) as the integer array to store, in the picture's own form.

    Converted in bands of rows on every core (:mod:`atbsn_edge.bands`), so no full-size float
    temporary is allocated.
    """
    height, width = rgb.shape[:2]
    dtype, top = (np.uint16, 65535.0) if picture.bit_depth == 16 else (np.uint8, 255.0)
    channels = (1 if picture.grayscale else 3) + (picture.alpha is not None)
    out = np.empty((height, width, channels), dtype=dtype)
    color = 1 if picture.grayscale else 3

    def band(start: int, stop: int) -> None:
        rows = rgb[start:stop]
        if not np.isfinite(rows).all():
            raise ImageError(f"{picture.source or 'image'}: the network produced NaN or "
                             "infinite values; the checkpoint or artifact may be damaged "
                             "(python -m atbsn_edge.parity checks a bundle)")
        rows = rows.mean(axis=2, keepdims=True) if picture.grayscale else rows[:, :, ::-1]
        scaled = np.rint(rows * np.float32(top / 255.0))
        out[start:stop, :, :color] = np.clip(scaled, 0, top)
        if picture.alpha is not None:
            out[start:stop, :, -1] = picture.alpha[start:stop]

    for_each_band(height, band, rows_per_chunk)
    return out[:, :, 0] if channels == 1 else out


def _encode_gray_alpha(stored: np.ndarray, suffix: str, path: Path) -> bytes:
    """Gray + alpha through Pillow (OpenCV writes no 2-channel images); 16 bit becomes RGBA."""
    import io

    from PIL import Image

    if stored.dtype != np.uint8:
        log.warning("%s: 16-bit gray + alpha is written as 16-bit RGBA", path)
        return _encode(suffix, stored[:, :, [0, 0, 0, 1]], [], path)
    buffer = io.BytesIO()
    Image.fromarray(stored, "LA").save(buffer, format="PNG" if suffix == ".png" else "TIFF")
    return buffer.getvalue()


def _encode(suffix: str, stored: np.ndarray, params: list[int], path: Path) -> bytes:
    """``stored`` encoded as ``suffix`` (PNG on every core, :mod:`atbsn_edge.png_encoder`;
    other formats by OpenCV), or :class:`ImageError` saying why not."""
    if suffix == ".png" and (stored.ndim == 2 or stored.shape[2] in (1, 3, 4)):
        from .png_encoder import encode_png

        return encode_png(stored)
    cv2 = _cv2()
    try:
        with quiet_opencv():
            ok, array = cv2.imencode(suffix, stored, params)
    except cv2.error as exc:
        ok, array = False, str(exc).strip().splitlines()[-1][:200]
    if not ok:
        detail = f" ({array})" if isinstance(array, str) else ""
        raise ImageError(f"{path}: encoding {stored.shape[1]}x{stored.shape[0]} as {suffix} "
                         f"failed{detail}; try another format (PNG or TIFF)")
    return array.tobytes()


def write_image(path: str | os.PathLike, picture: Picture, rgb: np.ndarray, *,
                overwrite: bool = False, jpeg_quality: int = 95) -> Path:
    """Encode ``rgb`` like ``picture`` (depth, gray, alpha) and write it atomically to ``path``.
    ``rgb`` is the H x W x 3 image (float on 0..255, or uint8) of ``picture``'s size; anything
    else is a ValueError (a TypeError for a ``picture`` that is not a :class:`Picture`)."""
    path = Path(path)
    if not isinstance(picture, Picture):
        raise TypeError(f"{path}: picture must be the Picture read_image returned (its depth, "
                        f"gray and alpha say how to store), got {type(picture).__name__}")
    kind = getattr(rgb, "dtype", None)
    if (not isinstance(rgb, np.ndarray) or rgb.shape != (picture.height, picture.width, 3)
            or not (rgb.dtype == np.uint8 or rgb.dtype.kind == "f")):
        given = (f"a {rgb.shape} {kind} array" if isinstance(rgb, np.ndarray)
                 else f"a {type(rgb).__name__}")
        raise ValueError(f"{path}: expected the {picture.height} x {picture.width} x 3 image "
                         f"of the picture (float on 0..255, or uint8), got {given}; a uint16 "
                         "image on 0..65535 is image / 257")
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
        encoded = _encode(suffix, stored, params, path)
    write_encoded(path, encoded, overwrite=overwrite)
    return path


def write_encoded(path: Path, encoded: bytes, *, overwrite: bool = True) -> None:
    """Write an encoded image atomically; a failure is an :class:`ImageError` naming ``path``
    (the caller goes on with its next image)."""
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_bytes(encoded)
    except OSError as exc:  # an existing target; a parent that is a file, no permission, disk full
        if isinstance(exc, FileExistsError) and exc.errno is None:  # atomic_path's own refusal
            raise ImageError(str(exc)) from None
        raise ImageError(f"{path}: cannot write ({exc.strerror or exc}); choose a writable "
                         "output folder with space") from None
