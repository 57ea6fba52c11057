"""Images for photo tests, and what metadata a stored file still carries, read from its bytes (JPEG
segments, PNG chunks) rather than from Pillow, so a test sees what any other reader of the file would."""
from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, PngImagePlugin

#: XMP as a camera app writes it (Adobe's XMP specification, part 3: an APP1 segment with this namespace).
XMP = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
       b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="27,53.6N"/></rdf:RDF></x:xmpmeta>'
       b'<?xpacket end="w"?>')
SECRET = "secret location 27.89,102.26"


def gps_exif(orientation: int = 6) -> bytes:
    """EXIF with an orientation (6: rotate 90° clockwise to display), a camera maker and a GPS position."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825).update({1: "N", 2: (27.0, 53.0, 38.0), 3: "E", 4: (102.0, 15.0, 50.0)})
    return exif.tobytes()


def icc_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def jpeg(width: int = 64, height: int = 48, *, metadata: bool = False, quality: int = 90) -> bytes:
    """A JPEG with a blue 8 × 8 marker top left; ``metadata``: EXIF with GPS, a comment, XMP and an ICC profile."""
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.paste((0, 0, 255), (0, 0, 8, 8))
    extra = {"exif": gps_exif(), "comment": SECRET.encode(), "xmp": XMP, "icc_profile": icc_profile()} \
        if metadata else {}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, **extra)
    return out.getvalue()


def png(width: int = 30, height: int = 20, *, metadata: bool = False) -> bytes:
    """An RGBA PNG; ``metadata``: tEXt, iTXt (XMP), zTXt, eXIf and iCCP chunks."""
    info = PngImagePlugin.PngInfo()
    extra = {}
    if metadata:
        info.add_text("Comment", SECRET)
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        info.add_text("Location", SECRET, zip=True)
        extra = {"exif": gps_exif(1), "icc_profile": icc_profile()}
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 128, 0, 255)).save(out, "PNG", pnginfo=info, **extra)
    return out.getvalue()


def png_header_only(width: int, height: int, mode_bytes: bytes = b"\x08\x02", idat: bytes | None = None) -> bytes:
    """A valid PNG header announcing ``width`` × ``height`` (RGB by default), with one small compressed
    block of zeros (a few hundred bytes) or the ``idat`` given: what a decompression bomb looks like."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">II", width, height) + mode_bytes + b"\0\0\0"
    body = idat if idat is not None else zlib.compress(b"\0" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def blank_png(width: int, height: int) -> bytes:
    """A complete, decodable black RGB PNG of ``width`` × ``height``, compressed row by row without ever
    holding its pixels: 12,000 × 3,333 (40 MP) is about 120 kB, and decodes to 120 MB."""
    compressor, row = zlib.compressobj(9), b"\0" * (3 * width + 1)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return png_header_only(width, height, idat=idat)


def metadata_in(data: bytes) -> list[str]:
    """The metadata a JPEG or PNG file carries, by segment or chunk: ``APP1 Exif``, ``APP1 XMP``,
    ``APP2 ICC``, ``COM``, ``APPn`` (any other application segment but JFIF), ``tEXt``, ``iTXt``, ``zTXt``,
    ``eXIf``, ``iCCP``, ``tIME``. Empty for a file of pixels only."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        found, position = [], 8
        while position + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[position:position + 8])
            if kind in (b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"iCCP", b"tIME"):
                found.append(kind.decode())
            position += 12 + length
        return found
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("neither a JPEG nor a PNG")
    found, position = [], 2
    while position + 4 <= len(data):
        marker = data[position + 1]
        if marker == 0xDA:  # start of scan: entropy-coded data follows, no more metadata segments before it
            break
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        payload = data[position + 4:position + 2 + length]
        if marker == 0xFE:
            found.append("COM")
        elif marker == 0xE1:
            found.append("APP1 Exif" if payload.startswith(b"Exif") else "APP1 XMP" if b"adobe" in payload[:40]
                         else "APP1")
        elif marker == 0xE2:
            found.append("APP2 ICC" if payload.startswith(b"ICC_PROFILE") else "APP2")
        elif 0xE1 <= marker <= 0xEF or (marker == 0xE0 and not payload.startswith(b"JFIF")):
            found.append(f"APP{marker - 0xE0}")
        position += 2 + length
    return found
