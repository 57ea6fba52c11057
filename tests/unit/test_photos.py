"""services/intake/photos.py: what a photo may make intake decode, what a broken one is answered, and
that no stored rendition keeps any metadata (their answers over HTTP are in tests/e2e/test_photos.py)."""
from __future__ import annotations

import io
import os
import random

import pytest
from PIL import Image

from services.intake import photos
from services.intake.photos import MAX_PIXELS, BadImage, NotAnImage, clean
from tests.support.images import jpeg, metadata_in, png, png_header_only


def jpeg_then_garbage(seed: int, size: int = 4000) -> bytes:
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + random.Random(seed).randbytes(size)


BROKEN = [
    ("a JPEG start of image followed by garbage", b"\xff\xd8\xff\xe0" + random.Random(1).randbytes(5000)),
    ("a JFIF header followed by garbage", jpeg_then_garbage(2)),
    ("a quantisation table header followed by garbage", b"\xff\xd8\xff\xdb" + random.Random(3).randbytes(2000)),
    ("a JPEG cut after its headers", jpeg(2000, 1500)[:700]),
    ("a JPEG cut in its scan", jpeg(2000, 1500)[:3000]),
    ("a PNG whose IHDR is cut short", png()[:20]),
    ("a PNG whose pixel data is not zlib", png_header_only(64, 64, idat=b"not zlib at all" * 10)),
]


@pytest.mark.parametrize("what, data", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_image_is_a_bad_image_never_an_unhandled_error(what, data):
    with pytest.raises((BadImage, NotAnImage)) as refused:
        clean(data)
    assert "damaged" in str(refused.value) or isinstance(refused.value, NotAnImage)


def test_every_corruption_of_a_jpeg_and_a_png_is_stored_or_refused_as_a_bad_or_unknown_image():
    rng = random.Random(19)
    for original in (jpeg(200, 150), png(200, 150)):
        for _ in range(400):
            data = bytearray(original)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[:rng.randrange(len(data))]
            try:
                clean(bytes(data))
            except (BadImage, NotAnImage):
                pass


def test_a_png_of_12000_by_3333_pixels_is_refused_from_its_header_before_any_decoding():
    # its pixel data is not zlib: had it been decoded, the refusal would say "damaged"
    data = png_header_only(12_000, 3_333, idat=b"\x00" * 100)
    with pytest.raises(BadImage, match=f"at most {MAX_PIXELS} pixels"):
        clean(data)


def test_a_png_within_the_pixel_limit_is_decoded_and_one_pixel_row_more_is_not():
    side = 4000
    assert side * side <= MAX_PIXELS < side * (side + 1)
    with pytest.raises(BadImage, match="pixels"):
        clean(png_header_only(side, side + 1, idat=b"\x00"))
    with pytest.raises(BadImage, match="damaged"):  # within the limit, it is decoded (and found broken)
        clean(png_header_only(side, side, idat=b"\x00"))


def test_a_jpeg_larger_than_the_pixel_limit_is_decoded_reduced_and_stored_at_that_size(monkeypatch):
    data = jpeg(5000, 4000, quality=60)  # 20 MP
    decoded = []
    load = Image.Image.load

    def spy(image):
        decoded.append(image.size)
        return load(image)
    monkeypatch.setattr(photos.Image.Image, "load", spy)
    photo = clean(data)
    assert (photo.width, photo.height) == (2500, 2000)
    assert decoded and all(w * h <= MAX_PIXELS for w, h in decoded)


def test_a_jpeg_too_large_to_decode_even_reduced_is_refused():
    with pytest.raises(BadImage, match="pixels"):
        clean(jpeg(12_000, 6_000, quality=10))  # 72 MP: over the 64 MP a JPEG may have


@pytest.mark.parametrize("make", [jpeg, png], ids=["jpeg", "png"])
def test_no_stored_rendition_keeps_exif_a_comment_xmp_an_icc_profile_or_text(make):
    original = make(metadata=True)
    assert len(metadata_in(original)) >= 4
    photo = clean(original)
    assert metadata_in(photo.image) == [] and metadata_in(photo.thumbnail) == []
    for rendition in (photo.image, photo.thumbnail):
        assert b"secret location" not in rendition and b"PhoneMaker" not in rendition and b"adobe" not in rendition


def test_the_exif_orientation_is_applied_to_the_pixels_of_both_renditions():
    photo = clean(jpeg(64, 48, metadata=True))
    assert (photo.width, photo.height) == (48, 64)
    image, thumbnail = Image.open(io.BytesIO(photo.image)), Image.open(io.BytesIO(photo.thumbnail))
    assert image.size == thumbnail.size == (48, 64)
    assert image.getpixel((44, 3))[2] > 150 and image.getpixel((3, 3))[2] < 100, "the blue marker is top right"


def test_a_thumbnail_is_at_most_320_pixels_on_its_longer_side():
    photo = clean(png(1000, 400))
    assert Image.open(io.BytesIO(photo.thumbnail)).size == (320, 128)
    assert photo.format == "PNG" and Image.open(io.BytesIO(photo.image)).mode == "RGBA"


def test_random_bytes_are_not_an_image():
    with pytest.raises(NotAnImage):
        clean(os.urandom(1000))
