"""Photos of a report: judged by their content, decoded at a bounded cost, cleaned, and stored outside any
web root.

- **Only JPEG and PNG**, recognised by Pillow from the bytes (``Image.open(..., formats=("JPEG", "PNG"))``),
  never by the file name or the declared content type: anything else (a script named ``.jpg``, an SVG, a
  GIF) is ``NotAnImage`` (415).
- **Decode cost bounded by pixels**: what a request may make this process decode is at most
  ``MAX_PIXELS`` (16 megapixels: a 12–16 MP phone photo at full size; 64 MB of RGBA). The size is read
  from the header and checked **before** anything is decoded:
  - a PNG over ``MAX_PIXELS`` (or ``MAX_SIDE`` per side) is ``BadImage`` (422). A PNG's cost is its
    pixels, whatever its file size: a PNG of 12,000 × 3,333 pixels fits in about 100 kB and decodes to
    120 MB (what it cost under the earlier 40 MP limit: benchmarks/RESULTS.md, ``photos.*``);
  - a JPEG of up to ``MAX_SOURCE_PIXELS`` (64 MP: a 50 MP phone's full-resolution mode) is decoded
    reduced by 2, 4 or 8 (libjpeg's DCT scaling, Pillow's ``draft``) to at most ``MAX_PIXELS``, and
    stored at that size; a larger one is ``BadImage``;
  - Pillow's own ``MAX_IMAGE_PIXELS`` guard is set to ``MAX_SOURCE_PIXELS`` and its warning raised as an
    error, as a second line.
  With the per-person upload rate (``services.intake.limits``, ``GRIDCASE_PHOTO_RATE_LIMIT``) this bounds
  the CPU one person's photos can take.
- **Broken files** (a JPEG header followed by garbage, a truncated PNG): whatever Pillow's decoders raise
  while reading them is ``BadImage`` (422), never an unhandled error.
- **Cleaned**: the EXIF orientation is applied to the pixels (``ImageOps.exif_transpose``) and every
  stored rendition — the image and its thumbnail (``THUMBNAIL`` px on the longer side, JPEG) — is encoded
  from a new image holding the pixels only (``_pixels_only``), so no metadata reaches a stored or served
  file: no EXIF (GPS position, camera serial), no JPEG comment, no XMP, no ICC profile, no PNG text chunks.
- **Stored** under generated names (``<uuid>.jpg``) in ``Settings.photo_dir`` (default
  ``<data dir>/photos``), written to a temporary name and renamed, never under a name a client chose.
"""
from __future__ import annotations

import io
import math
import os
import struct
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import structlog
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.words import Problem

MAX_BYTES = 10 * 1024 * 1024
#: The most pixels one photo may make this process decode (and the most a stored photo has).
MAX_PIXELS = 16_000_000
#: The largest JPEG accepted; it is decoded reduced to at most ``MAX_PIXELS``.
MAX_SOURCE_PIXELS = 64_000_000
MAX_SIDE = 12_000
THUMBNAIL = 320
FORMATS = ("JPEG", "PNG")
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png"}
#: JPEG's DCT scaling: the reductions a JPEG can be decoded at for the cost of the smaller image.
JPEG_REDUCTIONS = (1, 2, 4, 8)
#: What Pillow's decoders raise on a damaged file (its plugins are not uniform: truncated data is an OSError,
#: a bad chunk a SyntaxError or ValueError, a short header a struct.error, …).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
                 struct.error, Image.DecompressionBombError, Image.DecompressionBombWarning)
log = structlog.get_logger("gridcase.photos")
Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS  # Pillow's own bomb guard (this process only reads photos)


class NotAnImage(Problem, ValueError):
    """Not a JPEG or PNG by its content (415, about ``file``)."""

    status, code = 415, "photo.not_an_image"

    def __init__(self):
        super().__init__(field="file")


class TooLarge(Problem, ValueError):
    """Over ``MAX_BYTES`` (413)."""

    status, code = 413, "photo.too_large"

    def __init__(self, size: int):
        super().__init__(size=size, max=MAX_BYTES)


class BadImage(Problem, ValueError):
    """A JPEG or PNG that cannot be accepted (422, about ``file``): ``code`` says why —
    ``photo.too_many_pixels`` / ``photo.too_large_to_decode`` / ``photo.too_many_pixels_reduced`` (the
    pixel counts as parameters) or ``photo.damaged`` (the decoder's own words are logged for diagnosis, never
    sent: a caller reads gridcase's words in their language)."""

    status = 422

    def __init__(self, code: str, **params):
        super().__init__(code, field="file", **params)


@dataclass(frozen=True)
class CleanPhoto:
    format: str  # JPEG or PNG
    width: int
    height: int
    image: bytes  # re-encoded, no metadata
    thumbnail: bytes  # JPEG, no metadata

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def _damaged(exc: BaseException) -> BadImage:
    """``photo.damaged``, with what the decoder said in the log (for diagnosis), not in the answer."""
    log.info("photo refused as damaged", decoder=f"{type(exc).__name__}: {str(exc)[:200]}")
    return BadImage("photo.damaged")


def clean(data: bytes) -> CleanPhoto:
    """``data`` (an uploaded file's bytes) → the photo to store, or ``NotAnImage`` / ``TooLarge`` /
    ``BadImage`` (see the module docstring for each rule)."""
    if len(data) > MAX_BYTES:
        raise TooLarge(len(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise NotAnImage() from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadImage("photo.too_large_to_decode", max=MAX_SOURCE_PIXELS) from None
        except DECODE_ERRORS as exc:
            raise _damaged(exc) from None
        kind = image.format
        reduction = _reduction(kind, *image.size)
        try:
            if reduction > 1:
                image.draft(None, (image.width // reduction, image.height // reduction))
        except DECODE_ERRORS as exc:
            raise _damaged(exc) from None
        if image.width * image.height > MAX_PIXELS:  # draft's sizes round up: refuse rather than decode more
            raise BadImage("photo.too_many_pixels_reduced", width=image.width, height=image.height, max=MAX_PIXELS)
        try:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            bare = _pixels_only(image, kind)
        except DECODE_ERRORS as exc:
            raise _damaged(exc) from None
    del image
    return CleanPhoto(kind, bare.width, bare.height, _encode(bare, kind), _thumbnail(bare))


def _reduction(kind: str, width: int, height: int) -> int:
    """By how much a photo of ``width`` × ``height`` (from its header) is reduced while decoding: 1 for a
    photo within ``MAX_PIXELS``, 2, 4 or 8 for a larger JPEG; ``BadImage`` for one that may not be decoded."""
    limit = MAX_SOURCE_PIXELS if kind == "JPEG" else MAX_PIXELS
    if width * height > limit or max(width, height) > MAX_SIDE:
        raise BadImage("photo.too_many_pixels_of_kind", width=width, height=height, max=limit, side=MAX_SIDE,
                       kind="JPEG" if kind == "JPEG" else "PNG")
    for factor in JPEG_REDUCTIONS if kind == "JPEG" else (1,):
        if math.ceil(width / factor) * math.ceil(height / factor) <= MAX_PIXELS:
            return factor
    raise BadImage("photo.too_many_pixels", width=width, height=height, max=MAX_PIXELS)


def _pixels_only(image: Image.Image, kind: str) -> Image.Image:
    """A new image holding ``image``'s pixels and nothing else (``info`` is empty: no EXIF, comment, XMP,
    ICC profile or text), in a mode its format stores: RGB or L for a JPEG, RGB(A) or L(A) for a PNG."""
    keep = ("RGB", "L") if kind == "JPEG" else ("RGB", "RGBA", "L", "LA")
    if image.mode not in keep:
        transparent = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if kind == "PNG" and transparent else "RGB")
    bare = Image.new(image.mode, image.size)
    bare.paste(image)
    return bare


def _encode(bare: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "JPEG":
        bare.save(out, "JPEG", quality=88, optimize=True)
    else:
        bare.save(out, "PNG", optimize=False)
    return out.getvalue()


def _thumbnail(bare: Image.Image) -> bytes:
    """At most ``THUMBNAIL`` px on the longer side, JPEG; made from the bare pixels, so it carries nothing
    else either (resizing first: only the small image is converted)."""
    scale = min(1.0, THUMBNAIL / max(bare.size))
    size = (max(1, round(bare.width * scale)), max(1, round(bare.height * scale)))
    small = bare.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0) if scale < 1 else bare.copy()
    if small.mode != "RGB":
        small = small.convert("RGB")
    small.info.clear()
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()


class PhotoFiles:
    """The photo directory: files named by generated ids, never by anything a client sent."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def save(self, photo: CleanPhoto) -> str:
        """Write the photo and its thumbnail; → the stored name (``<uuid hex>.jpg`` or ``.png``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex + SUFFIXES[photo.format]
        self._write(name, photo.image)
        self._write(thumbnail_name(name), photo.thumbnail)
        return name

    def remove(self, name: str) -> None:
        """Remove a stored photo and its thumbnail (one that lost a race for its Idempotency-Key)."""
        for path in (self.path(name), self.path(name, thumbnail=True)):
            path.unlink(missing_ok=True)

    def path(self, name: str, thumbnail: bool = False) -> Path:
        return self.directory / (thumbnail_name(name) if thumbnail else name)

    def _write(self, name: str, data: bytes) -> None:
        temporary = self.directory / f".{name}.tmp"
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.directory / name)


def thumbnail_name(name: str) -> str:
    return name.rsplit(".", 1)[0] + ".thumb.jpg"
