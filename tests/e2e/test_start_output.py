"""What `gridcase up` prints, read as a new user reads it: the "is up" line only once the server answers,
the block after it whole, words that say what happened, and a line when it has stopped."""
from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
from datetime import UTC, datetime

import requests

from harness.processes import GRIDCASE, ROOT, Processes

UP = r"gridcase is up at (http://\S+)"
LAST = "  curl -s -X POST "  # the block's last line: the report to try


def test_the_up_line_appears_only_once_the_server_answers(tmp_path):
    """A reader that has read the "is up" line and nothing after it (a paused terminal, `| head`) can already
    use the server: /readyz answers 200 at once, however long the rest of the output takes to be read.

    stdout is a pipe of the smallest size (one page) that this test stops reading right after the line, so
    a start that prints the line before it serves (and still has the rest of its block to write) never gets
    to serve."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    with open(tmp_path / "stderr.log", "wb") as stderr:
        process = subprocess.Popen([*GRIDCASE, "up", "--port", "0", "--data-dir", str(tmp_path / "data")],
                                   cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=write_end,
                                   stderr=stderr, start_new_session=True)
    os.close(write_end)
    try:
        seen = b""
        while not re.search(UP.encode(), seen) or not seen.endswith(b"\n"):
            byte = os.read(read_end, 1)  # one byte at a time: nothing after the line leaves the pipe
            assert byte, f"gridcase up ended before it was up: {seen.decode(errors='replace')}"
            seen += byte
        base = re.search(UP, seen.decode()).group(1)
        answer = requests.get(f"{base}/readyz", timeout=2)  # served at once; 2 s for a loaded machine
        assert answer.status_code == 200, answer.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        with os.fdopen(read_end, "rb") as rest:  # drained, so that the orderly stop can write its lines
            rest.read()
        process.wait(30)


def test_the_block_is_whole_its_words_say_what_happened_and_a_stop_says_so(tmp_path):
    """stdout and stderr in one file (`make run > run.log 2>&1`): no log line inside the block a person
    reads; the first start says it imports the city, a later one that the city was imported (when, and how
    many grids); SIGTERM ends with "gridcase stopped"."""
    processes = Processes(tmp_path)
    data = str(tmp_path / "data")
    try:
        for start in ("first", "later"):
            processes.gridcase("up", ["up", "--port", "0", "--data-dir", data])
            processes.announced("up", UP, timeout=90)
            processes.announced("up", re.escape(LAST), timeout=30)
            processes.stop("up")
            lines = processes.output("up").splitlines()
            first = next(i for i, line in enumerate(lines) if re.search(UP, line))
            last = next(i for i, line in enumerate(lines) if line.startswith(LAST))
            inside = [line for line in lines[first:last + 1] if line.startswith("{")]
            assert not inside, f"{start} start: log lines inside the block: {inside}"
            assert lines[-1] == "gridcase stopped", f"{start} start: it ends with {lines[-1]!r}"
            before = "\n".join(lines[:first])
            if start == "first":
                assert "up: importing the city 'demo' (first start)" in before, before
            else:
                today = datetime.now(UTC).date().isoformat()
                assert f"up: the city 'demo', 1500 grids (imported {today})" in before, before
                assert "first start" not in before, before
    finally:
        processes.stop_all()
