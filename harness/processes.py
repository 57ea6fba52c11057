"""Processes that tests and benchmarks start, the servers among them, and waits for conditions.

- Every process runs in a session (process group) of its own and writes its stdout and stderr to
  ``<log_dir>/<name>.log``; stopping it stops its whole group.
- No port is handed out that is not held. A server either gets a socket that is already bound and listening
  (``Processes.serve``: ``--fd N``, the socket inherited through ``pass_fds``; gunicorn serves on it, so the
  port is never free between here and the server), or binds port 0 itself and prints where it listens
  (``Processes.announced``: ``gridcase up --port 0`` prints ``gridcase is up at http://HOST:PORT``).
- Waits poll a condition, never sleep a fixed time; a wait that fails says what it waited for and shows the
  end of the log of each process it watched. ``started_logs()`` lists every process started since
  ``forget_started()``, so that a test runner can print their logs when a test fails (tests/conftest.py).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests

ROOT = Path(__file__).resolve().parents[1]
GRIDCASE = [sys.executable, "-m", "gridcase"]
TAIL = 4000  # characters of a log shown with a failure
STOP_TIMEOUT = 20.0  # seconds a process group gets between SIGTERM and SIGKILL (gunicorn's graceful_timeout)

T = TypeVar("T")

_started: dict[Path, str] = {}  # log file → process name, for every process started since forget_started()


def wait_for(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05, message: str = "condition",
             *, watch: Processes | None = None, names: tuple[str, ...] = ()) -> T:
    """Poll ``condition`` until it returns something true, and return that. With ``watch``, each round also
    checks that its processes (only ``names``, if given) are still running; a failure shows their logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if watch is not None:
            watch.check(*names, waiting_for=message)
        if time.monotonic() >= deadline:
            logs = watch.logs(*names) if watch is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {message}{logs}")
        time.sleep(interval)


def answers_200(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Processes:
    """Started processes by name, each in its own process group and logging to a file; ``stop_all`` at the end."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.running: dict[str, subprocess.Popen] = {}
        self._output_from: dict[str, int] = {}  # name → where its latest run's output starts in its log

    # -- starting ------------------------------------------------------------------------------------------

    def start(self, name: str, argv: list[str], env: dict | None = None, *,
              pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
        """Start ``argv`` in the repository with the environment plus ``env``; output appended to its log."""
        path = self.log_path(name)
        with open(path, "ab") as log:
            self._output_from[name] = path.stat().st_size
            process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                       stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds,
                                       start_new_session=True)
        self.running[name] = process
        _started[path] = name
        return process

    def gridcase(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        """``python -m gridcase ARGS``."""
        return self.start(name, GRIDCASE + args, env)

    def serve(self, name: str, argv: list[str], env: dict | None = None, host: str = "127.0.0.1") -> str:
        """Start a server on a socket bound and listening before the server starts: ``argv`` is given
        ``--fd N``, N being that socket, inherited (``gridcase serve``, ``benchmarks._bare_flask``). This
        process closes its own copy once the server has it. Returns the base URL."""
        with socket.create_server((host, 0)) as listener:
            port = listener.getsockname()[1]
            self.start(name, [*argv, "--fd", str(listener.fileno())], env, pass_fds=(listener.fileno(),))
        return f"http://{host}:{port}"

    def run(self, name: str, argv: list[str], env: dict | None = None, timeout: float = 120.0) -> None:
        """Run a command to its end; fail with its log unless it exits with 0."""
        process = self.start(name, argv, env)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(name)
            raise AssertionError(f"{name} still running after {timeout}s{self.logs(name)}") from None
        del self.running[name]
        if code != 0:
            raise AssertionError(f"{name} exited with {code}{self.logs(name)}")

    # -- waiting -------------------------------------------------------------------------------------------

    def wait_ready(self, name: str, url: str, timeout: float = 60.0) -> None:
        """Wait until ``url`` answers 200 while the process ``name`` runs."""
        wait_for(lambda: answers_200(url), timeout, 0.1, f"{url} to answer 200", watch=self, names=(name,))

    def announced(self, name: str, pattern: str, timeout: float = 60.0) -> re.Match:
        """Wait until the process ``name`` prints a line matching ``pattern`` (a server that bound port 0
        saying where it listens); returns the match. Only whole lines are searched: the log read while the
        process writes it may end in half a line (``http://127.0.0.1:4`` of ``…:41234``)."""
        regex = re.compile(pattern)

        def whole_lines() -> str:
            text = self.output(name)
            return text[:text.rfind("\n") + 1]
        return wait_for(lambda: regex.search(whole_lines()), timeout, 0.05, f"{name} to print {pattern!r}",
                        watch=self, names=(name,))

    def check(self, *names: str, waiting_for: str = "") -> None:
        """Fail, with its log, if one of these processes (default: every running one) has exited."""
        for name in names or list(self.running):
            code = self.running[name].poll()
            if code is not None:
                during = f" while waiting for {waiting_for}" if waiting_for else ""
                raise AssertionError(f"{name} exited with {code}{during}{self.logs(name)}")

    # -- stopping ------------------------------------------------------------------------------------------

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.running.pop(name)
        os.killpg(process.pid, sig)
        process.wait(20)

    def stop(self, *names: str) -> None:
        """SIGTERM to each process group (all at once), SIGKILL to the ones left after STOP_TIMEOUT, then to
        anything still in the groups (a gunicorn master may leave a worker behind)."""
        processes = [self.running.pop(name) for name in names if name in self.running]
        for process in processes:
            if process.poll() is None:
                _killpg(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _killpg(process, signal.SIGKILL)
                process.wait(10)
        for process in processes:
            _killpg(process, signal.SIGKILL)

    def stop_all(self) -> None:
        self.stop(*self.running)

    # -- logs ----------------------------------------------------------------------------------------------

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def output(self, name: str) -> str:
        """What the latest process called ``name`` has written so far."""
        with open(self.log_path(name), "rb") as log:
            log.seek(self._output_from[name])
            return log.read().decode(errors="replace")

    def log(self, name: str) -> str:
        """The end of the log of ``name`` (every run of that name)."""
        return _tail(self.log_path(name))

    def logs(self, *names: str) -> str:
        """The ends of these processes' logs (default: every process started), each under a heading."""
        return "".join(_section(name, self.log_path(name)) for name in names or self._output_from)


def token(data_dir: Path, role: str, env: dict | None = None, **claims: str) -> str:
    """A signed development token (``gridcase token``) for ``role`` and ``claims`` (``area``, ``user``)."""
    args = ["token", "--role", role, "--data-dir", str(data_dir)]
    for key, value in claims.items():
        args += [f"--{key}", value]
    out = subprocess.run(GRIDCASE + args, cwd=ROOT, env={**os.environ, **(env or {})}, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def started_logs() -> list[tuple[str, str]]:
    """(heading, end of the log) of every process started since ``forget_started()``, oldest first."""
    return [(f"log of {name} ({path})", _tail(path)) for path, name in _started.items()]


def forget_started() -> None:
    _started.clear()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4 * TAIL))
            return log.read().decode(errors="replace")[-TAIL:]
    except FileNotFoundError:
        return "(no log)"


def _section(name: str, path: Path) -> str:
    return f"\n--- end of {path} ({name}) ---\n{_tail(path)}"


def _killpg(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
