"""Photos of a report: judged by their content, cleaned, and stored outside any web root.

- **Only JPEG and PNG**, recognised by Pillow from the bytes (``Image.open(..., formats=("JPEG", "PNG"))``),
  never by the file name or the declared content type: anything else (a script named ``.jpg``, an SVG, a
  GIF) is ``NotAnImage`` (415).
- **Size limits**: at most ``MAX_BYTES`` of file (``TooLarge``, 413; the edge refuses a body over 12 MiB
  before it is read) and ``MAX_PIXELS`` pixels, ``MAX_SIDE`` per side (``BadImage``, 422). The pixel
  count is read from the header and checked **before** anything is decoded, so a decompression bomb (a
  20,000 × 20,000 PNG of a few kilobytes) costs no memory; Pillow's own ``MAX_IMAGE_PIXELS`` guard is
  set to the same limit and its warning raised as an error, as a second line.
- **Cleaned**: the EXIF orientation is applied to the pixels (``ImageOps.exif_transpose``) and the image
  is re-encoded from pixels only, so no metadata — GPS position, camera serial, comments — reaches the
  stored or served file. A thumbnail (``THUMBNAIL`` px on the longer side, JPEG) is made for lists.
- **Stored** under generated names (``<uuid>.jpg``) in ``Settings.photo_dir`` (default
  ``<data dir>/photos``), written to a temporary name and renamed, never under a name a client chose.
"""
from __future__ import annotations

import io
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48-megapixel phone's default output is 12 MP; 40 MP leaves room, 400 MP is a bomb
MAX_SIDE = 12_000
THUMBNAIL = 320
FORMATS = ("JPEG", "PNG")
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png"}
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb guard, at the same limit (this process only reads photos)


class NotAnImage(ValueError):
    """Not a JPEG or PNG by its content (415)."""


class TooLarge(ValueError):
    """Over ``MAX_BYTES`` (413)."""


class BadImage(ValueError):
    """A JPEG or PNG that cannot be accepted: too many pixels, or broken (422)."""


@dataclass(frozen=True)
class CleanPhoto:
    format: str  # JPEG or PNG
    width: int
    height: int
    image: bytes  # re-encoded, no metadata
    thumbnail: bytes  # JPEG

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def clean(data: bytes) -> CleanPhoto:
    """``data`` (an uploaded file's bytes) → the photo to store, or ``NotAnImage`` / ``TooLarge`` /
    ``BadImage`` (see the module docstring for each rule)."""
    if len(data) > MAX_BYTES:
        raise TooLarge(f"the photo is {len(data)} bytes; at most {MAX_BYTES} are accepted")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except UnidentifiedImageError:
            raise NotAnImage("not a JPEG or PNG image") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise BadImage(f"the image has more than {MAX_PIXELS} pixels") from None
        width, height = image.size
        if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
            raise BadImage(f"the image is {width} x {height} pixels; at most {MAX_PIXELS} pixels and "
                           f"{MAX_SIDE} per side are accepted")
        kind = image.format
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
                Image.DecompressionBombWarning) as exc:
            raise BadImage(f"the image is damaged: {str(exc)[:200]}") from None
    return CleanPhoto(kind, image.width, image.height, _encode(image, kind), _thumbnail(image))


def _encode(image: Image.Image, kind: str) -> bytes:
    """Pixels only: a new image with no EXIF, ICC, XMP or text chunks."""
    out = io.BytesIO()
    if kind == "JPEG":
        image = image.convert("RGB") if image.mode not in ("RGB", "L") else image
        bare = Image.new(image.mode, image.size)
        bare.paste(image)
        bare.save(out, "JPEG", quality=88, optimize=True)
    else:
        mode = image.mode if image.mode in ("RGB", "RGBA", "L", "LA") else "RGBA"
        bare = Image.new(mode, image.size)
        bare.paste(image.convert(mode))
        bare.save(out, "PNG", optimize=False)
    return out.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL, THUMBNAIL))
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
