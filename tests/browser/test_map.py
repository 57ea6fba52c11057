"""The base map: tiles from a tile server this test starts, under the city's polygons; a known point's pin
on the tile and pixel it should be on, for a WGS84 source and for a GCJ-02 source (whose tiles are drawn
in the offset coordinates: the pin is shifted onto them); the JavaScript GCJ-02 equal to shared/gcj02.py;
the page's policy naming the tile host; no tiles kept by the phone page's service worker; and the map
without tiles labelled "no base map"."""
from __future__ import annotations

import contextlib
import io
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from shared.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02
from tests.browser.conftest import PHONE, SCREENSHOTS, WALL, Site, open_page
from tests.support.system import embedded_system, wait_for_case

TILE = re.compile(r"/tiles/(\d+)/(\d+)/(\d+)\.png$")


class TileServer:
    """256×256 PNG tiles at /tiles/{z}/{x}/{y}.png, a checkerboard with each tile's z/x/y written on it;
    every path asked for is kept in ``asked``."""

    def __init__(self):
        self.asked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.asked.append(self.path)
                found = TILE.search(self.path)
                if not found:
                    self.send_error(404)
                    return
                z, x, y = map(int, found.groups())
                image = Image.new("RGB", (256, 256), (214, 226, 204) if (x + y) % 2 else (238, 232, 214))
                draw = ImageDraw.Draw(image)
                draw.rectangle((0, 0, 255, 255), outline=(150, 150, 150))
                draw.text((8, 8), f"{z}/{x}/{y}", fill=(90, 90, 90))
                out = io.BytesIO()
                image.save(out, "PNG")
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(out.tell()))
                self.end_headers()
                self.wfile.write(out.getvalue())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def template(self) -> str:
        return f"{self.origin}/tiles/{{z}}/{{x}}/{{y}}.png"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class TiledSite(Site):
    """The embedded system with a base map's settings in its environment."""

    def __init__(self, data, env: dict):
        super().__init__(data)
        self.env = env

    def start(self) -> TiledSite:
        self._stack = contextlib.ExitStack()
        self.gateway.switch(self._stack.enter_context(embedded_system(self.data, env=self.env)))
        return self


@pytest.fixture(scope="module")
def tiles():
    server = TileServer()
    yield server
    server.close()


@pytest.fixture(scope="module", params=["wgs84", "gcj02"])
def tiled(request, tmp_path_factory, tiles):
    site = TiledSite(tmp_path_factory.mktemp(f"tiles-{request.param}"), {
        "GRIDCASE_MAP_TILES": tiles.template, "GRIDCASE_MAP_CRS": request.param,
        "GRIDCASE_MAP_ATTRIBUTION": "© test tiles <b>not bold</b>"})
    try:
        yield request.param, site.start()
    finally:
        site.stop()
        site.gateway.close()


def world_pixel(lon: float, lat: float, z: int) -> tuple[float, float]:
    """Web Mercator pixel of a position at zoom ``z`` (256-pixel tiles)."""
    scale = 256 * 2 ** z
    siny = math.sin(math.radians(lat))
    return (lon + 180) / 360 * scale, (0.5 - math.log((1 + siny) / (1 - siny)) / (4 * math.pi)) * scale


def pin_on_tile(page, selector: str) -> dict:
    """The tile under the middle of the pin ``selector`` (the deepest zoom's, should a parent tile still be
    kept while its children load), and where in that tile the middle is, in the tile's own pixels."""
    return page.evaluate("""(selector) => {
        const box = document.querySelector(selector).getBoundingClientRect();
        const x = box.left + box.width / 2, y = box.top + box.height / 2;
        const under = Array.from(document.querySelectorAll('#map img.leaflet-tile-loaded')).map((tile) => {
            const r = tile.getBoundingClientRect();
            return {src: tile.src, z: Number(new URL(tile.src).pathname.split('/')[2]),
                    x: (x - r.left) * 256 / r.width, y: (y - r.top) * 256 / r.height,
                    inside: x >= r.left && x < r.right && y >= r.top && y < r.bottom};
        }).filter((t) => t.inside).sort((a, b) => b.z - a.z);
        return under.length ? under[0] : null;
    }""", selector)


def test_a_known_point_s_pin_sits_on_the_tile_and_pixel_it_should(browser, tiles, tiled):
    crs, site = tiled
    place = site.grid(0)
    worker = site.token("grid_worker", area=place["grid"], user="map-worker")
    case = site.report(worker, place, "map: a lamp out at a known point")
    wait_for_case(site.url, case["id"], worker)
    context, page, problems = open_page(browser, site, "/wall/", site.token("command", user="map-wall"), viewport=WALL)
    pin = f"path.wall-pin[data-case='{case['id']}']"
    expect(page.locator(pin)).to_be_attached(timeout=10000)
    expect(page.locator("#map")).to_have_attribute("data-basemap", crs)
    expect(page.locator("#map img.leaflet-tile-loaded").first).to_be_visible(timeout=10000)
    page.wait_for_timeout(500)  # the fitted zoom's tiles are in
    found = pin_on_tile(page, pin)
    assert found is not None, "no tile under the pin"
    z, x, y = map(int, TILE.search(found["src"]).groups())
    lon, lat = (wgs84_to_gcj02(place["lon"], place["lat"]) if crs == "gcj02" else (place["lon"], place["lat"]))
    px, py = world_pixel(lon, lat, z)
    assert (x, y) == (int(px // 256), int(py // 256)), f"the pin is on tile {z}/{x}/{y}"
    assert abs(found["x"] - px % 256) < 2 and abs(found["y"] - py % 256) < 2, (found, px % 256, py % 256)
    # a GCJ-02 source moves the pin by more than the tolerance: drawn unshifted, it would fail above
    other = world_pixel(*wgs84_to_gcj02(place["lon"], place["lat"]), z)
    plain = world_pixel(place["lon"], place["lat"], z)
    assert math.dist(other, plain) > 8, "the offset is too small at this zoom to tell the two apart"
    attribution = page.locator(".leaflet-control-attribution").inner_text()
    assert "© test tiles <b>not bold</b>" in attribution  # written as text, not as HTML
    assert any(TILE.search(p) for p in tiles.asked)
    page.screenshot(path=SCREENSHOTS / f"map-wall-{crs}-tiles.png")
    assert not problems, problems
    context.close()


def test_the_page_policy_names_the_tile_host_and_map_json_the_source(tiles, tiled):
    crs, site = tiled
    for page in ("app", "board", "desk", "wall"):
        answer = requests.get(f"{site.url}/{page}/", timeout=10)
        assert f"img-src 'self' data: blob: {tiles.origin};" in answer.headers["Content-Security-Policy"]
        settings = requests.get(f"{site.url}/{page}/map.json", timeout=10).json()
        assert settings["tiles"] == tiles.template and settings["crs"] == crs


def test_the_phone_page_draws_the_tiles_under_its_grid_and_its_service_worker_keeps_none(browser, tiles, tiled):
    crs, site = tiled
    place = site.grid(0)
    token_ = site.token("grid_worker", area=place["grid"], user="map-phone")
    where = {"latitude": place["lat"], "longitude": place["lon"], "accuracy": 10}
    context, page, problems = open_page(browser, site, "/app/", token_, viewport=PHONE, permissions=["geolocation"],
                                        geolocation=where)
    expect(page.locator("#map img.leaflet-tile-loaded").first).to_be_visible(timeout=10000)
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now under the service worker
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#map img.leaflet-tile-loaded").first).to_be_visible(timeout=10000)
    kept = page.evaluate("""async () => {
        const urls = [];
        for (const name of await caches.keys()) {
            const cache = await caches.open(name);
            (await cache.keys()).forEach((r) => urls.push(r.url));
        }
        return urls;
    }""")
    assert kept and not [u for u in kept if "/tiles/" in u], kept
    expect(page.locator("#map")).to_have_attribute("data-basemap", crs)
    page.screenshot(path=SCREENSHOTS / f"map-phone-{crs}-tiles.png", full_page=True)
    assert not problems, problems
    context.close()


def test_without_a_tile_source_the_map_says_it_has_no_base_map(browser, site, place):
    context, page, problems = open_page(browser, site, "/board/", site.token("station", area=place["station"],
                                                                           user="map-plain"), lang="en")
    expect(page.locator("#map")).to_have_attribute("data-basemap", "none")
    expect(page.locator("#map .gc-no-basemap")).to_have_text("no base map")
    assert page.locator("#map img.leaflet-tile").count() == 0
    page.locator("[data-lang-switch]").click()
    expect(page.locator("#map .gc-no-basemap")).to_have_text("无底图")
    assert not problems, problems
    context.close()


SAMPLES = [(102.264, 27.894), (116.397428, 39.90923), (121.4737, 31.2304), (113.2644, 23.1291),
           (87.6168, 43.8256), (126.6424, 45.7567), (109.5, 18.25), (13.4050, 52.5200), (-0.1276, 51.5072)]


def test_the_page_s_gcj02_is_the_python_one(browser, site):
    context, page, _ = open_page(browser, site, "/board/", site.token("command", user="map-gcj"))
    found = page.evaluate("""(points) => points.map(([lon, lat]) => [
        gcAreas.gcj02.toGcj02(lon, lat), gcAreas.gcj02.toWgs84(lon, lat)])""", SAMPLES)
    for (lon, lat), (forward, back) in zip(SAMPLES, found, strict=True):
        assert forward == pytest.approx(wgs84_to_gcj02(lon, lat), abs=1e-12)
        assert back == pytest.approx(gcj02_to_wgs84(lon, lat), abs=1e-12)
    moved = [(f, (lon, lat)) for (lon, lat), (f, _) in zip(SAMPLES, found, strict=True) if f != [lon, lat]]
    assert len(moved) == 7  # every sample in China is shifted; Berlin and London are not
    context.close()
