"""Real receivers on loopback for the notification tests: an HTTP server that records every request and
answers as each path is told to (fail a few times, refuse, hang, answer as a group robot), and an SMTP
server (aiosmtpd) that offers STARTTLS with a certificate made for 127.0.0.1. Both bind port 0 themselves
and are stopped by their context managers."""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    path: str
    query: dict
    headers: dict
    body: bytes
    status: int
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def event_id(self) -> str | None:
        return self.headers.get("gridcase-event-id")


class Receiver:
    """``answers[path]``: a list of statuses to answer in turn (the last one repeats), or ``"hang"`` (hold
    the request until ``release`` is set or ``hang_seconds`` pass); a robot path answers its JSON."""

    def __init__(self):
        self.requests: list[Request] = []
        self.answers: dict[str, list] = {}
        self.release = threading.Event()
        self.hang_seconds = 30.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                status = receiver._answer(parts.path)
                request = Request(parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body, status)
                with receiver.lock:  # in the order they arrive
                    receiver.requests.append(request)
                if status == "hang":
                    receiver.release.wait(receiver.hang_seconds)
                    status = request.status = 200
                robot = parts.path.startswith(("/wecom", "/dingtalk"))
                answer = json.dumps({"errcode": 0, "errmsg": "ok"} if robot else {"ok": status < 300}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:  # the notifier gave up waiting (its timeout) or was killed
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _answer(self, path: str):
        with self.lock:
            queue = self.answers.get(path) or [200]
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def at(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait(self, path: str, count: int, timeout: float = 20.0) -> list[Request]:
        """The requests to ``path`` once there are at least ``count`` (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.at(path)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.at(path))} request(s) within {timeout}s, expected {count}")


@contextmanager
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.server.shutdown()
        server.server.server_close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 (also the authority a client trusts: ``SSL_CERT_FILE``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class MailServer:
    """aiosmtpd on its own event loop thread, on a socket it bound; requires STARTTLS when given a
    certificate. ``messages``: (envelope, whether the session was encrypted)."""

    def __init__(self, certificate: tuple[Path, Path] | None = None):
        self.messages: list = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.context = None
        if certificate:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(*map(str, certificate))
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        from aiosmtpd.smtp import SMTP

        asyncio.set_event_loop(self.loop)
        factory = lambda: SMTP(self, tls_context=self.context, require_starttls=self.context is not None)  # noqa: E731
        self.server = self.loop.run_until_complete(self.loop.create_server(factory, sock=self.sock))
        self.ready.set()
        self.loop.run_forever()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((envelope, session.ssl is not None))
        return "250 Message accepted for delivery"

    def wait(self, count: int, timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"{len(self.messages)} message(s) within {timeout}s, expected {count}"
        return list(self.messages)


@contextmanager
def mail_server(certificate: tuple[Path, Path] | None = None):
    server = MailServer(certificate)
    server.thread.start()
    server.ready.wait(10)
    try:
        yield server
    finally:
        server.loop.call_soon_threadsafe(server.server.close)
        server.loop.call_soon_threadsafe(server.loop.stop)
        server.thread.join(5)
