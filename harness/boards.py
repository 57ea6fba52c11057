"""Many command-center boards at once, for the tests and the benchmarks: each an open Server-Sent Events
stream of the live feed, all read by one thread through a selector (thousands without a thread each). A
stream the server ends is reopened with its ``Last-Event-ID``, as a browser's EventSource does."""
from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

FEED = "/escalation/v1/cases/events"


@dataclass
class Board:
    token: str
    last_id: str | None = None
    buffer: bytes = b""
    sock: socket.socket | None = None
    #: (event name, id, data line, monotonic time it arrived) of every event received
    received: list[tuple[str, str | None, str, float]] = field(default_factory=list)
    connects: int = 0
    in_body: bool = False


class Boards:
    """``count`` boards of ``base`` (``http://host:port``), each with its own token (``tokens[i % len]``)."""

    def __init__(self, base: str, tokens: list[str], count: int):
        parts = urlsplit(base)
        self.address = (parts.hostname, parts.port)
        self.boards = [Board(tokens[i % len(tokens)]) for i in range(count)]
        self.selector = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def open(self, timeout: float = 60.0) -> Boards:
        """Connect every board (in this thread) and read them all in a background thread; returns once every
        board has had its first event (``hello``) or ``timeout`` passed."""
        for board in self.boards:
            self._connect(board)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(b.received for b in self.boards):
            time.sleep(0.05)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for board in self.boards:
            if board.sock is not None:
                try:
                    self.selector.unregister(board.sock)
                except (KeyError, ValueError):
                    pass
                board.sock.close()
        self.selector.close()

    def __enter__(self) -> Boards:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def seen(self, predicate) -> int:
        """How many boards have received an event for which ``predicate(name, data)`` is true."""
        with self.lock:
            return sum(any(predicate(name, data) for name, _, data, _ in b.received) for b in self.boards)

    def arrivals(self, predicate) -> list[float]:
        """Per board, the monotonic time its first event matching ``predicate`` arrived (boards without one
        are left out)."""
        with self.lock:
            return [next(t for name, _, data, t in b.received if predicate(name, data)) for b in self.boards
                    if any(predicate(name, data) for name, _, data, _ in b.received)]

    # -- the streams -----------------------------------------------------------------------------------

    def _connect(self, board: Board) -> None:
        sock = socket.create_connection(self.address, timeout=30)
        headers = [f"GET {FEED} HTTP/1.0", f"Host: {self.address[0]}:{self.address[1]}",
                   f"Authorization: Bearer {board.token}", "Accept: text/event-stream"]
        if board.last_id is not None:
            headers.append(f"Last-Event-ID: {board.last_id}")
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        sock.setblocking(False)
        board.sock, board.buffer, board.connects, board.in_body = sock, b"", board.connects + 1, False
        self.selector.register(sock, selectors.EVENT_READ, board)

    def _read(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                board: Board = key.data
                try:
                    chunk = board.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    chunk = b""
                    self.errors.append(str(exc))
                if not chunk:  # the server ended the stream: reconnect with the last id, as EventSource
                    self.selector.unregister(board.sock)
                    board.sock.close()
                    board.sock = None
                    if not self._stop.is_set():
                        try:
                            self._connect(board)
                        except OSError as exc:
                            self.errors.append(str(exc))
                    continue
                self._parse(board, board.buffer + chunk, time.monotonic())

    def _parse(self, board: Board, data: bytes, now: float) -> None:
        if not board.in_body:  # the status line and headers, once per connection
            head, sep, rest = data.partition(b"\r\n\r\n")
            if not sep:
                board.buffer = data
                return
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                self.errors.append(head.split(b"\r\n", 1)[0].decode())
            board.in_body, data = True, rest
        *events, board.buffer = data.split(b"\n\n")
        with self.lock:
            for raw in events:
                fields = dict(line.split(": ", 1) for line in raw.decode().split("\n")
                              if ": " in line and not line.startswith(":"))
                if "event" in fields:
                    if fields.get("id"):
                        board.last_id = fields["id"]
                    board.received.append((fields["event"], fields.get("id"), fields.get("data", ""), now))
