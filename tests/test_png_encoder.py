"""The parallel PNG encoder: any decoder reads back the exact pixels, the Adler-32 combination
is zlib's, the chunks are sound, and the file is as small as OpenCV's."""
from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from atbsn_edge.imageio import check_png_chunks
from atbsn_edge import png_encoder
from atbsn_edge.png_encoder import adler32_combine, encode_png

from conftest import textured_image


def test_adler32_combine_equals_the_checksum_of_the_concatenation():
    rng = np.random.default_rng(0)
    for first_length, second_length in [(0, 0), (0, 10), (10, 0), (1, 1), (65521, 3),
                                        (3, 65521), (70000, 140000), (12345, 99999)]:
        a, b = rng.bytes(first_length), rng.bytes(second_length)
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)
    ones = b"\xff" * 200000  # the sums' largest values
    assert adler32_combine(zlib.adler32(ones), zlib.adler32(ones), len(ones)) == \
        zlib.adler32(ones + ones)


@pytest.mark.parametrize("shape", [(37, 41), (37, 41, 1), (37, 41, 3), (37, 41, 4), (1, 1, 3),
                                   (601, 9, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_opencv_and_pillow_read_back_the_exact_pixels(shape, dtype, parts):
    stored = np.random.default_rng(1).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    encoded = encode_png(stored, parts)
    check_png_chunks(encoded, "encoded.png")      # every chunk's CRC, IEND at the end
    back = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, stored.reshape(back.shape))
    with Image.open(io.BytesIO(encoded)) as image:
        image.load()
        if dtype == np.uint8 or stored.ndim == 2 or stored.shape[2] == 1:
            pixels = np.asarray(image)
            bgr = stored if stored.ndim == 2 or stored.shape[2] == 1 else \
                stored[:, :, [2, 1, 0, 3][:stored.shape[2]]]
            np.testing.assert_array_equal(pixels.reshape(bgr.shape), bgr)


def test_the_file_is_as_small_as_opencvs():
    stored = np.rint(textured_image(480, 640)[:, :, ::-1]).astype(np.uint8)
    ours = len(encode_png(stored))
    ok, theirs = cv2.imencode(".png", stored)
    assert ok and ours <= 1.02 * len(theirs)


@pytest.mark.parametrize("stored", [np.zeros((4, 5, 2), np.uint8),
                                    np.zeros((4, 5, 3), np.float32),
                                    np.zeros((0, 5, 3), np.uint8),
                                    np.zeros((4, 5, 3, 1), np.uint8),
                                    np.zeros((5,), np.uint8)])
def test_what_it_cannot_encode_is_a_value_error(stored):
    with pytest.raises(ValueError, match="encode_png"):
        encode_png(stored)


def test_memory_stays_near_the_output_size():
    """Each part is filtered and compressed 256 rows at a time: beside the image the encoder
    holds its compressed pieces and the joined file (about twice the output), not copies of
    the whole image (3.8x the raw size before)."""
    import tracemalloc

    stored = np.random.default_rng(2).integers(0, 256, (2048, 1024, 3), dtype=np.uint8)
    tracemalloc.start()
    try:
        encoded = encode_png(stored, parts=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(encoded) + 8 * 2**20, (peak, len(encoded))


def test_a_stream_over_the_chunk_limit_is_split_into_idat_chunks(monkeypatch):
    """A PNG chunk holds under 2 GiB; the stream is framed into chunks of at most the limit
    (here 1000 bytes, so that a small image shows it), which decoders join."""
    monkeypatch.setattr(png_encoder, "_MAX_CHUNK", 1000)
    monkeypatch.setattr(png_encoder._idat_chunks, "__defaults__", (1000,))
    stored = np.random.default_rng(3).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    encoded = encode_png(stored, parts=2)
    assert encoded.count(b"IDAT") > 5
    check_png_chunks(encoded, "split.png")
    back = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, stored)
    with Image.open(io.BytesIO(encoded)) as image:
        np.testing.assert_array_equal(np.asarray(image), stored[:, :, ::-1])
