"""Intake's HTTP interface for photos of a report (the rules are in ``services.intake.photos``)."""
from __future__ import annotations

import functools

from flask import request, send_file
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import RAISE, Schema, fields, validate

from services.intake import handlers
from services.intake.api import KEY, blp
from services.intake.domain.reports import PHOTO_KINDS
from services.intake.limits import precheck
from services.intake.photos import MAX_BYTES, MAX_PIXELS, MAX_SOURCE_PIXELS
from shared.clock import isoformat
from shared.web import access, current_service, deny, identity, lookup
from shared.words import Problem, Said

#: A served photo is an image and nothing else: no script, no plugin, no frame, whatever a browser guesses.
PHOTO_HEADERS = {"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
                 "X-Content-Type-Options": "nosniff", "Cross-Origin-Resource-Policy": "same-origin"}


class PhotoIn(Schema):
    class Meta:
        unknown = RAISE

    file = fields.Raw(required=True, metadata={
        "type": "string", "format": "binary", "x-max-bytes": MAX_BYTES, "x-max-pixels": MAX_PIXELS,
        "description": f"a JPEG or PNG of at most {MAX_BYTES // 2**20} MiB; a PNG of at most {MAX_PIXELS:,} "
                       f"pixels, a JPEG of at most {MAX_SOURCE_PIXELS:,} (stored reduced to {MAX_PIXELS:,})"})
    kind = fields.String(load_default="before", validate=validate.OneOf(PHOTO_KINDS), metadata={
        "description": "what it shows: before (the incident, with the report; the default), after (the fix, "
                       "with a resolution or a department's feedback) or verification (the on-site check)"})


class PhotoOut(Schema):
    id = fields.String()
    report_id = fields.String()
    uploader = fields.String(metadata={"description": "who took it: the reporter, the handler or the verifier"})
    kind = fields.String(metadata={"description": "before, after or verification"})
    content_type = fields.String()
    width = fields.Integer()
    height = fields.Integer()
    bytes = fields.Integer()
    created_at = fields.String()
    url = fields.String()
    thumbnail_url = fields.String()


def photo_view(row: dict) -> dict:
    url = f"{blp.url_prefix}/reports/{row['report_id']}/photos/{row['id']}"
    return {"id": row["id"], "report_id": row["report_id"], "uploader": row["uploader"], "kind": row["kind"],
            "content_type": row["content_type"],
            "width": row["width"], "height": row["height"], "bytes": row["bytes"],
            "created_at": isoformat(row["created_at"]), "url": url, "thumbnail_url": f"{url}/thumbnail"}


def photo_rate_limited(view):
    """Refuse an uploader over their photo limits (``services.intake.limits``) before the body is read,
    but not the retry of a photo they stored (its ``Idempotency-Key``): that is answered with the photo."""
    @functools.wraps(view)
    def limited(*args, **kwargs):
        caller, key = identity(), request.headers.get("Idempotency-Key")
        service = current_service()
        precheck(service.limits, lambda limits: limits.photo, caller,
                 lambda: key is not None and KEY.match(key) is not None
                 and service.run(handlers.stored_photo, caller, key) is not None)
        return view(*args, **kwargs)
    return limited


@blp.route("/reports/<report_id>/photos")
class Photos(MethodView):
    @access("photo.add")
    @photo_rate_limited
    @blp.arguments(PhotoIn, location="files")
    @blp.response(201, PhotoOut)
    @blp.alt_response(413, description="over 10 MiB")
    @blp.alt_response(415, description="not a JPEG or PNG by its content")
    @blp.alt_response(422, description="too many pixels, a damaged image, too many photos, or an "
                                        "Idempotency-Key used before for another photo")
    @blp.alt_response(429, description="over the uploader's photo limit (Retry-After)")
    @lookup("photo.add", "report.not_found")
    def post(self, body, report_id):
        """Add a photo to a report the caller may see (multipart ``file``, and ``kind``: ``before`` with the
        report, the default; ``after`` with a resolution or a department's feedback, whose ``photos``
        name its id; ``verification`` with the on-site check). The case id is the report id. Send an
        ``Idempotency-Key`` and retry freely: the same photo again with the same key is answered with
        the photo stored the first time (``201``, nothing stored twice); another photo with that key is
        ``422``. An unknown ``kind``: 422.

        ``curl -F file=@lamp.jpg -F kind=after -H 'Idempotency-Key: 7d1f…' …/intake/v1/reports/6f1c…/photos``
        → ``201 {"id", "kind", "width", "height", "url", "thumbnail_url", …}``. The stored image has its
        EXIF orientation applied and no metadata (no GPS position, comment or XMP); its name is generated.
        """
        caller = identity()
        key = request.headers.get("Idempotency-Key")
        if key is not None and not KEY.match(key):
            raise Problem("report.key_invalid", http_status=422, field="Idempotency-Key")
        extra = sorted((set(request.form) | set(request.files)) - {"file", "kind"})
        if extra or len(request.files.getlist("file")) != 1 or len(request.form.getlist("kind")) > 1:
            abort(422, errors={name: [Said("validation.unknown_field")] for name in extra} or (
                {"kind": [Said("photo.one_kind")]} if len(request.form.getlist("kind")) > 1
                else {"file": [Said("photo.one_file")]}))
        kind = request.form.get("kind", "before")
        if kind not in PHOTO_KINDS:
            abort(422, errors={"kind": [Said("validation.one_of", choices=", ".join(PHOTO_KINDS))]})
        data = body["file"].read(MAX_BYTES + 1)
        row, created = current_service().run(handlers.add_photo, handlers.AddPhoto(report_id, data, caller, key, kind))
        return photo_view(row)

    @access("photo.read")
    @blp.response(200, PhotoOut(many=True))
    @lookup("photo.read", "report.not_found")
    def get(self, report_id):
        """The photos of a report the caller may see, oldest first."""
        rows = current_service().run(handlers.report_photos, report_id, identity())
        return [photo_view(row) for row in rows]


def _send(report_id: str, photo_id: str, thumbnail: bool):
    try:
        row = current_service().run(handlers.photo_file, report_id, photo_id, identity())
    except LookupError:
        deny(identity(), "photo.read", code="photo.not_found")
    files = current_service().dependencies["photo_files"]
    response = send_file(files.path(row["stored_name"], thumbnail),
                         mimetype="image/jpeg" if thumbnail else row["content_type"], conditional=False,
                         etag=False, max_age=0)
    response.headers.extend(PHOTO_HEADERS)
    response.headers["Content-Disposition"] = "inline"
    return response


@blp.route("/reports/<report_id>/photos/<photo_id>")
class PhotoFile(MethodView):
    @access("photo.read")
    @blp.doc(responses={"200": {"description": "the image (JPEG or PNG)",
                                "content": {"image/jpeg": {}, "image/png": {}}}})
    def get(self, report_id, photo_id):
        """The photo itself, cleaned of metadata (``Content-Type`` image/jpeg or image/png, ``nosniff``)."""
        return _send(report_id, photo_id, thumbnail=False)


@blp.route("/reports/<report_id>/photos/<photo_id>/thumbnail")
class PhotoThumbnail(MethodView):
    @access("photo.read")
    @blp.doc(responses={"200": {"description": "a JPEG at most 320 px on its longer side",
                                "content": {"image/jpeg": {}}}})
    def get(self, report_id, photo_id):
        """A small JPEG of the photo, for lists."""
        return _send(report_id, photo_id, thumbnail=True)
