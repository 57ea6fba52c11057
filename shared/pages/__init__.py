"""The web pages, served by the services themselves: ``/app/`` (intake), ``/board/`` and ``/desk/``
(escalation). Each page is a folder beside its service's code:

    index.html       a Jinja template, rendered in the caller's language (labels carry ``data-i18n``)
    messages.json    the page's one message catalogue: ``{"zh": {key: text}, "en": {key: text}}``
    *.js, *.css      the page's own script and style, served from ``/<page>/``

What every page shares is served from ``/<page>/assets/`` (``shared/pages/static``): ``gridcase.js``
(language, sign-in, API calls), ``gridcase.css``, ``areas.js`` (the caller's areas on a Leaflet map),
``feed.js`` (the live feed), ``bell.js`` and ``bell.svg`` (the caller's notifications) and ``vendor/`` —
Leaflet, Chart.js and idb copied from npm at pinned versions by ``deploy/vendor-assets.sh``, with their
licences. Nothing is fetched from elsewhere at run time.

**Language**: Chinese unless ``Accept-Language`` prefers English; the user's choice (kept in the
browser's localStorage by ``gridcase.js``) wins over the header. The HTML is rendered in the header's
language, so a page reads right before any script runs.

**Content-Security-Policy** of every page (``PAGE_CSP``; the gateway's page locations send the same):
scripts, styles, fonts and connections only from the page's own origin, no inline script or style, no
``eval``; images also from ``data:`` and ``blob:`` URLs (photos fetched with a token) and from the base
map's tile host, when the city has one (``page_csp``) — and, as every answer, ``frame-ancestors 'none'``.

**Base map**: ``GET /<page>/map.json`` is the tile source the maps draw under the polygons
(``shared.basemap``: ``{"tiles": null}`` without one).
"""
from __future__ import annotations

import json
import mimetypes
from pathlib import Path

import jinja2
from flask import Blueprint, Response, abort, current_app, redirect, request, send_from_directory

from shared import basemap

STATIC = Path(__file__).with_name("static")
LANGUAGES = ("zh", "en")
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            "font-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
mimetypes.add_type("application/manifest+json", ".webmanifest")


def page_csp(tile_origins=()) -> str:
    """``PAGE_CSP`` with images also allowed from ``tile_origins`` (the base map's hosts, nothing else)."""
    return PAGE_CSP.replace("img-src 'self' data: blob:", " ".join(["img-src 'self' data: blob:", *tile_origins]))


def base_map() -> basemap.BaseMap:
    """The base map of the service serving this request (none outside a gridcase service)."""
    service = current_app.extensions.get("gridcase")
    return basemap.current(service.settings) if service is not None else basemap.BaseMap()
mimetypes.add_type("text/javascript", ".js")


def language(accept_language) -> str:
    """``zh`` or ``en`` from an ``Accept-Language`` header (werkzeug's ``request.accept_languages``):
    the first of the two the caller ranks higher; Chinese when it names neither."""
    ranked = sorted(((quality, -i, value.lower()) for i, (value, quality) in enumerate(accept_language)),
                    reverse=True)
    for _, _, value in ranked:
        primary = value.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return LANGUAGES[0]


def page_blueprint(name: str, folder: Path, *, title_key: str = "title") -> Blueprint:
    """A blueprint serving the page in ``folder`` at ``/<name>/``, its files at ``/<name>/<file>`` and
    the shared assets at ``/<name>/assets/<path>``. Not part of any service's OpenAPI."""
    folder = Path(folder)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    catalogue = json.loads((folder / "messages.json").read_text(encoding="utf-8"))
    missing = {lang: sorted(set(catalogue["zh"]) ^ set(catalogue[lang])) for lang in LANGUAGES}
    if any(missing.values()):
        raise RuntimeError(f"{folder}/messages.json: keys not in every language: {missing}")
    embedded = jinja2.utils.markupsafe.Markup(json.dumps(catalogue, ensure_ascii=False).replace("</", "<\\/"))
    bp = Blueprint(f"page_{name}", __name__)

    @bp.get(f"/{name}")
    def bare():
        return redirect(f"/{name}/", 308)

    @bp.get(f"/{name}/")
    def index():
        lang = language(request.accept_languages)
        html = env.get_template("index.html").render(lang=lang, t=catalogue[lang], messages=embedded,
                                                     base=f"/{name}/", assets=f"/{name}/assets/")
        return Response(html, mimetype="text/html", headers={"Vary": "Accept-Language"})

    @bp.get(f"/{name}/map.json")
    def map_settings():
        return base_map().json()

    @bp.get(f"/{name}/assets/<path:path>")
    def assets(path):
        return send_from_directory(STATIC, path, max_age=0)

    @bp.get(f"/{name}/<path:path>")
    def own(path):
        if path in ("index.html", "messages.json") or path.startswith("."):
            abort(404)
        response = send_from_directory(folder, path, max_age=0)
        if path == "sw.js":  # a service worker at /<name>/sw.js controls /<name>/ only
            response.headers["Service-Worker-Allowed"] = f"/{name}/"
        return response

    @bp.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = page_csp(base_map().origins)
        response.headers.setdefault("Cache-Control", "no-cache")  # revalidate: a new release shows at once
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        return response

    bp.title_key = title_key
    return bp
