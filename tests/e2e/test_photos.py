"""Photos as an attacker and a phone send them, on the embedded system: each hostile file is refused
with the right status and nothing stored; a real photo is stored without its GPS position, turned
upright, and served only to callers who may see the case."""
from __future__ import annotations

import io
import random
import struct
import threading
import zlib

import pytest
import requests
from PIL import Image

from tests.support.images import blank_png, metadata_in
from tests.support.images import jpeg as jpeg_with
from tests.support.system import a_point_in_grid, auth, embedded_system, token


def jpeg(width=64, height=48, exif=None) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (200, 30, 30))
    image.putpixel((0, 0), (0, 0, 255))  # a marker in the top-left corner, to see the orientation applied
    image.save(out, "JPEG", exif=exif) if exif is not None else image.save(out, "JPEG")
    return out.getvalue()


def gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010F] = "PhoneMaker"
    gps = {1: "N", 2: (27.0, 53.0, 38.0), 3: "E", 4: (102.0, 15.0, 50.0)}
    exif.get_ifd(0x8825).update(gps)
    return exif.tobytes()


def png_bomb(side=20_000) -> bytes:
    """A valid PNG header announcing side × side pixels, with one tiny compressed row: a few hundred bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (side + 1))) + \
        chunk(b"IEND", b"")


PHOTO_RATE = 6  # per minute and person, for this module's system


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    data = tmp_path_factory.mktemp("photos")
    with embedded_system(data, env={"GRIDCASE_PHOTO_RATE_LIMIT": f"{PHOTO_RATE}/minute"}) as base:
        admin = token(data, "admin")
        grid, lon, lat = a_point_in_grid(base, admin, index=2)
        other_grid, *_ = a_point_in_grid(base, admin, index=150)
        worker = token(data, "grid_worker", area=grid, user="he")
        stranger = token(data, "grid_worker", area=other_grid, user="lu")
        response = requests.post(f"{base}/intake/v1/reports", headers=auth(worker), timeout=10, json={
            "category": "street_light", "description": "photo", "location": {"lon": lon, "lat": lat}})
        assert response.status_code == 201, response.text
        yield base, data, worker, stranger, admin, response.json()["id"]


def upload(base, who, report_id, content: bytes, name="photo.jpg", content_type="image/jpeg"):
    return requests.post(f"{base}/intake/v1/reports/{report_id}/photos", headers=auth(who), timeout=60,
                         files={"file": (name, content, content_type)})


def stored_files(data):
    return sorted(p.name for p in (data / "photos").glob("*")) if (data / "photos").exists() else []


HOSTILE = [
    ("a script disguised as a JPEG", b"#!/bin/sh\nrm -rf /\n" + b"\xff\xd8\xff" * 10, "photo.jpg", 415),
    ("an SVG with a script", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "photo.svg", 415),
    ("HTML named as a PNG", b"<html><script>alert(document.cookie)</script></html>", "x.png", 415),
    ("a GIF", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "x.gif", 415),
    ("a 30 MB file", b"\xff\xd8\xff\xe0" + b"\0" * (30 * 1024 * 1024), "big.jpg", 413),
    ("a 20,000 x 20,000 PNG bomb", None, "bomb.png", 422),
    ("a truncated JPEG", None, "broken.jpg", 422),
    ("a JPEG header followed by garbage", b"\xff\xd8\xff\xe0" + random.Random(7).randbytes(5000), "x.jpg", 422),
    ("a 120 kB PNG of 12,000 x 3,333 pixels", None, "wide.png", 422),
]


@pytest.mark.parametrize("what, content, name, status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_file_is_refused_with_its_status_and_nothing_is_stored(system, what, content, name, status):
    base, data, worker, stranger, admin, report_id = system
    if what.startswith("a 20,000"):
        content = png_bomb()
        assert len(content) < 100_000
    if what.startswith("a truncated"):
        content = jpeg(2000, 2000)[:3000]
    if what.startswith("a 120 kB"):
        content = blank_png(12_000, 3_333)
        assert len(content) < 200_000
    before = stored_files(data)
    response = upload(base, worker, report_id, content, name=name, content_type="image/jpeg")
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert stored_files(data) == before


def test_a_photo_is_stored_upright_without_gps_under_a_generated_name_and_served_to_its_area(system):
    base, data, worker, stranger, admin, report_id = system
    original = jpeg(64, 48, exif=gps_exif())
    assert b"PhoneMaker" in original
    response = upload(base, worker, report_id, original, name="../../etc/passwd.jpg")
    assert response.status_code == 201, response.text
    photo = response.json()
    assert (photo["width"], photo["height"]) == (48, 64), "the EXIF orientation is applied to the pixels"
    names = stored_files(data)
    assert names and all("passwd" not in n for n in names)

    served = requests.get(base + photo["url"], headers=auth(worker), timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"] == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    image = Image.open(io.BytesIO(served.content))
    assert not image.getexif() and b"PhoneMaker" not in served.content and "exif" not in image.info
    assert image.size == (48, 64)
    thumb = requests.get(base + photo["thumbnail_url"], headers=auth(admin), timeout=10)
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) <= 320

    for path in (photo["url"], photo["thumbnail_url"], f"/intake/v1/reports/{report_id}/photos"):
        assert requests.get(base + path, headers=auth(stranger), timeout=10).status_code == 404
        assert requests.get(base + path, timeout=10).status_code == 401
    assert upload(base, stranger, report_id, jpeg()).status_code == 404
    listed = requests.get(f"{base}/intake/v1/reports/{report_id}/photos", headers=auth(worker), timeout=10).json()
    assert [p["id"] for p in listed] == [photo["id"]]


def test_a_png_keeps_its_format_and_loses_its_text_chunks(system):
    base, data, worker, stranger, admin, report_id = system
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location 27.89,102.26")
    out = io.BytesIO()
    Image.new("RGBA", (30, 20), (0, 128, 0, 255)).save(out, "PNG", pnginfo=info)
    response = upload(base, worker, report_id, out.getvalue(), name="x.png", content_type="image/png")
    assert response.status_code == 201, response.text
    served = requests.get(base + response.json()["url"], headers=auth(worker), timeout=10)
    assert served.headers["Content-Type"] == "image/png" and b"secret location" not in served.content


def reporter(system, user: str) -> tuple[str, str]:
    """A grid worker of the module's grid, ``user``, with a report of their own: (token, report id)."""
    base, data, *_ = system
    admin = token(data, "admin")
    grid, lon, lat = a_point_in_grid(base, admin, index=2)
    worker = token(data, "grid_worker", area=grid, user=user)
    response = requests.post(f"{base}/intake/v1/reports", headers=auth(worker), timeout=10, json={
        "category": "street_light", "description": f"photos of {user}", "location": {"lon": lon, "lat": lat}})
    assert response.status_code == 201, response.text
    return worker, response.json()["id"]


def upload_keyed(base, who, report_id, content: bytes, key: str):
    return requests.post(f"{base}/intake/v1/reports/{report_id}/photos", timeout=60, headers=auth(
        who, **{"Idempotency-Key": key}), files={"file": ("p.jpg", content, "image/jpeg")})


def test_no_served_rendition_keeps_exif_a_comment_or_xmp(system):
    base, data, *_ = system
    worker, report_id = reporter(system, "metadata")
    original = jpeg_with(640, 480, metadata=True)
    assert {"APP1 Exif", "APP1 XMP", "COM"} <= set(metadata_in(original))
    photo = upload(base, worker, report_id, original).json()
    for url in (photo["url"], photo["thumbnail_url"]):
        served = requests.get(base + url, headers=auth(worker), timeout=10)
        assert served.status_code == 200 and metadata_in(served.content) == [], url
        assert b"secret location" not in served.content


def test_the_same_photo_sent_twice_with_one_key_is_stored_once_and_answered_with_the_first(system):
    base, data, *_ = system
    worker, report_id = reporter(system, "retrying")
    content = jpeg_with(320, 240)
    before = stored_files(data)
    first = upload_keyed(base, worker, report_id, content, "photo-key-1")
    again = upload_keyed(base, worker, report_id, content, "photo-key-1")
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json()
    assert len(stored_files(data)) == len(before) + 2  # one photo and its thumbnail
    listed = requests.get(f"{base}/intake/v1/reports/{report_id}/photos", headers=auth(worker), timeout=10).json()
    assert [p["id"] for p in listed] == [first.json()["id"]]

    other = upload_keyed(base, worker, report_id, jpeg_with(321, 240), "photo-key-1")
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert len(stored_files(data)) == len(before) + 2


def test_two_uploads_at_once_with_one_key_store_one_photo(system):
    base, data, *_ = system
    worker, report_id = reporter(system, "two-tabs")
    content, answers = jpeg_with(1600, 1200), []
    before = stored_files(data)
    threads = [threading.Thread(target=lambda: answers.append(upload_keyed(base, worker, report_id, content, "tabs")))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(stored_files(data)) == len(before) + 2
    assert len(requests.get(f"{base}/intake/v1/reports/{report_id}/photos", headers=auth(worker),
                            timeout=10).json()) == 1


def test_a_person_over_the_photo_rate_gets_429_with_retry_after_but_a_retry_of_a_stored_photo_its_answer(system):
    base, data, *_ = system
    worker, report_id = reporter(system, "rapid")
    answers = [upload_keyed(base, worker, report_id, jpeg_with(100 + i, 80), f"rapid-{i}") for i in range(PHOTO_RATE)]
    assert [a.status_code for a in answers] == [201] * PHOTO_RATE
    before = stored_files(data)
    over = upload_keyed(base, worker, report_id, jpeg_with(99, 80), "rapid-over")
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    assert "photos per person" in over.json()["detail"] and stored_files(data) == before
    retry = upload_keyed(base, worker, report_id, jpeg_with(100, 80), "rapid-0")
    assert retry.status_code == 201 and retry.json()["id"] == answers[0].json()["id"]
    other_worker, other_report = reporter(system, "rapid-neighbour")
    assert upload_keyed(base, other_worker, other_report, jpeg_with(), "n-1").status_code == 201
