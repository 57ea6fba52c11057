"""The browser tier: the three pages in Debian's chromium, driven by Playwright for Python.

Playwright is launched on ``/usr/bin/chromium`` (``executable_path``); ``playwright install`` (which
downloads a browser) is never needed. Without that chromium the tier skips — except in CI, where it fails.

One embedded system serves the whole tier, behind ``Gateway``: a TCP relay on a port this process holds
for the whole session, so that the pages keep their origin (and their storage) when the server behind it
is restarted on a new port, as a browser keeps its address when a server behind a gateway restarts.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.system import a_point_in_grid, auth, embedded_system, token

CHROMIUM = os.environ.get("GRIDCASE_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).with_name("vendor") / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 360, "height": 740}
WALL = {"width": 1920, "height": 1080}
CASE_NUMBER = re.compile(r"\d{8}-\d{6}")
_ROOT = Path(__file__).resolve().parents[2]
ROOT_PAGES = {"board": _ROOT / "services/escalation/pages/board", "desk": _ROOT / "services/escalation/pages/desk",
              "app": _ROOT / "services/intake/pages/app", "wall": _ROOT / "services/escalation/pages/wall"}


class Gateway:
    """A TCP relay on a port it holds from the start: each accepted connection is piped to the current
    backend (``switch``); ``cut`` closes every piped connection, as a server that dies would."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.backend: tuple[str, int] | None = None
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def switch(self, base: str) -> None:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        self.backend = (host, int(port))

    def cut(self) -> None:
        self.backend = None
        with self.lock:
            for s in list(self.open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.open.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            backend = self.backend
            if backend is None:
                client.close()
                continue
            try:
                server = socket.create_connection(backend, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.cut()
        self.listener.close()


class Site:
    """The embedded system behind a ``Gateway``, restartable on the same data; tokens and areas for tests.
    ``env``: settings of its own (``GRIDCASE_POLICY_FILE``…) for a site a test needs apart."""

    def __init__(self, data: Path, env: dict | None = None):
        self.data, self.env = data, env
        self.gateway = Gateway()
        self._stack: contextlib.ExitStack | None = None
        self._tokens: dict[tuple, str] = {}

    @property
    def url(self) -> str:
        return self.gateway.url

    def start(self) -> Site:
        self._stack = contextlib.ExitStack()
        self.gateway.switch(self._stack.enter_context(embedded_system(self.data, env=self.env)))
        return self

    def stop(self) -> None:
        self.gateway.cut()
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def token(self, role: str, **claims: str) -> str:
        claims.setdefault("user", f"{role}-browser")  # a subject per person
        key = (role, *sorted(claims.items()))
        if key not in self._tokens:
            self._tokens[key] = token(self.data, role, **claims)
        return self._tokens[key]

    def grid(self, index: int = 0) -> dict:
        """A grid of the demo city with its station, sub-center and a point inside it."""
        admin = self.token("admin")
        grid, lon, lat = a_point_in_grid(self.url, admin, index)
        located = requests.get(f"{self.url}/dispatch/v1/locate", params={"lon": lon, "lat": lat},
                               headers=auth(admin), timeout=10).json()
        return {"grid": grid, "station": located["station"]["id"], "subcenter": located["subcenter"]["id"],
                "lon": lon, "lat": lat}

    def report(self, worker_token: str, place: dict, description: str, category: str = "street_light") -> dict:
        response = requests.post(f"{self.url}/intake/v1/reports", json={
            "category": category, "description": description, "location": {"lon": place["lon"], "lat": place["lat"]}},
            headers=auth(worker_token, **{"Idempotency-Key": f"test-{time.monotonic_ns()}"}), timeout=10)
        assert response.status_code == 201, response.text
        return response.json()


def act(site: Site, case_id: str, token_: str, action: str, **arguments) -> dict:
    """An action on a case over HTTP, with the ETag read just before; returns the case."""
    from tests.support.system import wait_for_case

    wait_for_case(site.url, case_id, token_)
    url = f"{site.url}/escalation/v1/cases/{case_id}"
    detail = requests.get(url, headers=auth(token_), timeout=10)
    answer = requests.post(f"{url}/actions", json={"action": action, **arguments},
                           headers=auth(token_, **{"If-Match": detail.headers["ETag"]}), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def resolve(site: Site, case_id: str, worker: str, station: str, note: str = "lamp replaced") -> None:
    """The grid worker escalates the case and the station resolves it: it then awaits the grid worker's
    verification (a fix the grid worker made on the spot would be checked by the station instead)."""
    act(site, case_id, worker, "escalate", reason="needs the station's van")
    act(site, case_id, station, "resolve", note=note)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: CI installs Debian's chromium (.ci/run)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("browser"))
    try:
        yield site.start()
    finally:
        site.stop()
        site.gateway.close()


@pytest.fixture(scope="session")
def place(site):
    return site.grid(0)


def open_page(browser, site: Site, path: str, token_: str, *, lang: str = "zh", viewport=WALL, **options):
    """A new context and page on ``path``, signed in with ``token_`` through the sign-in link; returns
    (context, page, problems) where ``problems`` collects page errors and CSP violations."""
    context = browser.new_context(viewport=viewport, locale="zh-CN" if lang == "zh" else "en-US", **options)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}")
            if m.type == "error" and ("Content Security Policy" in m.text or "Refused" in m.text) else None)
    page.goto(f"{site.url}{path}#token={token_}")
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    return context, page, problems


def axe_violations(page, impacts=("serious", "critical")) -> list[dict]:
    """axe-core's violations of the given impacts on the page as it is (axe-core vendored from npm)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluate is not subject to the page's CSP
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in impacts]
