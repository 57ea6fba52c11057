"""What the benchmarks share: servers from the environment, throwaway databases and vhosts, wrk, and the
figure/note output format. Processes, their ports and logs, and waits are the harness's (harness.processes),
as the tests use them.

Everything a benchmark creates is registered on a ``Scope`` and removed when the scope closes, also on an
error, Ctrl-C or SIGTERM (``python -m benchmarks`` turns SIGTERM into ``SystemExit`` so ``finally`` runs).
A scope that closes on an error prints the end of its processes' logs to stderr first.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from harness.processes import ROOT, Processes
from harness.servers import create_database, drop_database, purge_broker

Figure = tuple[str, float, str, "float | None"]


# -- output --------------------------------------------------------------------------------------------

def figure_line(name: str, value, unit: str, ratio) -> str:
    return f"{name} {value} {unit} {'-' if ratio is None else ratio}"


def note(text: str) -> None:
    """A line of detail that is not a figure (method, checks, counts); ``# `` marks it."""
    for line in str(text).splitlines():
        print(f"# {line}", flush=True)


def emit(figures: list[Figure]) -> None:
    for figure in figures:
        print(figure_line(*figure), flush=True)


def sigterm_as_exit() -> None:
    """SIGTERM → SystemExit, so every ``finally`` (process groups, databases) runs."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


# -- servers from the environment ----------------------------------------------------------------------

def require_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run `make bench` (deploy/local/with-servers.sh starts the servers)")
    return value


class Scope(contextlib.ExitStack):
    """Databases, vhosts, processes and directories of one benchmark; closing removes them (LIFO)."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix
        self.run_id = uuid.uuid4().hex[:10]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"gridcase-bench-{prefix}-"))
        self.callback(_rmtree, self.tmp)
        self.processes = Processes(self.tmp)
        self.callback(self.processes.stop_all)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, (SystemExit, KeyboardInterrupt)):
            print(f"{self.prefix} failed: {exc!r}{self.processes.logs()}", file=sys.stderr, flush=True)
        return super().__exit__(exc_type, exc, tb)

    # PostgreSQL
    def database(self, service: str) -> str:
        admin = require_env("GRIDCASE_TEST_POSTGRES_URL")
        name = f"gridcase_bench_{self.prefix}_{service}_{self.run_id}"
        url = create_database(admin, name)
        self.callback(drop_database, admin, name)
        return url

    # RabbitMQ
    def broker(self) -> str:
        """A vhost of our own when the node can be administered (``GRIDCASE_TEST_RABBITMQ_BASE``, set by
        with-servers.sh when it started the node), so other test runs that purge the gridcase queues
        on the same node cannot touch ours; else the URL's vhost, whose gridcase queues are deleted
        at the end (and purged at the start)."""
        url = require_env("GRIDCASE_TEST_BROKER_URL")
        base = os.environ.get("GRIDCASE_TEST_RABBITMQ_BASE")
        if base and Path(base, "env.sh").exists():
            vhost = f"gridcase-bench-{self.prefix}-{self.run_id}"
            _rabbitmqctl(base, "add_vhost", vhost)
            self.callback(_rabbitmqctl, base, "delete_vhost", vhost)
            _rabbitmqctl(base, "set_permissions", "-p", vhost, _user(url), ".*", ".*", ".*")
            head = url.split("://", 1)
            host = head[1].split("/", 1)[0]
            return f"{head[0]}://{host}/{vhost}"
        note("no GRIDCASE_TEST_RABBITMQ_BASE: using the URL's vhost; its gridcase queues are deleted "
             "before and after (do not run this while tests use the same node)")
        purge_broker(url)
        self.callback(purge_broker, url)
        return url


def _user(url: str) -> str:
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    return netloc.split("@", 1)[0].split(":", 1)[0] if "@" in netloc else "guest"


def _rabbitmqctl(base: str, *args: str) -> None:
    subprocess.run([str(ROOT / "deploy/local/rabbitmq.sh"), "ctl", base, *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


def _rmtree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)


# -- wrk -----------------------------------------------------------------------------------------------

WRK_SCRIPT = r"""
-- POST one JSON body per request; with "keyed", a unique Idempotency-Key per request (run, thread, counter).
-- Counts the status of every response and prints "status CODE COUNT" lines when done.
local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  run = args[1] or "run"
  keyed = args[2] == "keyed"
  n = 0
  statuses = {}
  local f = assert(io.open(args[3], "r"))
  token = f:read("*l")
  payload = f:read("*l")
  f:close()
end

function request()
  n = n + 1
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
  if keyed then
    headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. n
  end
  return wrk.format("POST", nil, headers, payload)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for code, count in pairs(counts) do
      total[code] = (total[code] or 0) + count
    end
  end
  for code, count in pairs(total) do
    io.write(string.format("status %d %d\n", code, count))
  end
end
"""


class WrkResult:
    def __init__(self, output: str):
        self.output = output
        m = re.search(r"Requests/sec:\s+([\d.]+)", output)
        if not m:
            raise RuntimeError(f"could not read wrk's output:\n{output}")
        self.rps = float(m.group(1))
        self.statuses = {int(c): int(n) for c, n in re.findall(r"^status (\d+) (\d+)$", output, re.M)}
        m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
        self.non_2xx_3xx = int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
        self.socket_errors = sum(int(x) for x in m.groups()) if m else 0
        m = re.search(r"^\s+(\d+) requests in", output, re.M)
        self.requests = int(m.group(1)) if m else 0
        m = re.search(r"^\s+50%\s+(\S+)", output, re.M)
        self.p50 = m.group(1) if m else "?"
        m = re.search(r"^\s+99%\s+(\S+)", output, re.M)
        self.p99 = m.group(1) if m else "?"

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    @property
    def errors(self) -> int:
        """Responses that were not 2xx plus socket errors (a run with errors is invalid)."""
        return sum(n for code, n in self.statuses.items() if not 200 <= code < 300) + self.socket_errors


def run_wrk(url: str, token: str, payload: str, *, seconds: float, threads: int = 2, connections: int = 32,
            keyed: bool = False, run_id: str = "run", work_dir: Path) -> WrkResult:
    script = work_dir / "post.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    data = work_dir / "request.txt"
    data.write_text(f"{token}\n{payload}\n")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
               "-s", str(script), url, "--", run_id, "keyed" if keyed else "plain", str(data)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr}{out.stdout}")
    return WrkResult(out.stdout)


# -- statistics ----------------------------------------------------------------------------------------

def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), with ``children`` also of its
    running child processes (gunicorn's workers)."""
    total = _proc_cpu(pid)
    if children:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _proc_stat(entry)[1:2] == [str(pid)]:
                total += _proc_cpu(int(entry))
    return total


def server_cpu_seconds() -> dict[str, float]:
    """User + system CPU seconds so far of the PostgreSQL processes (postmaster and backends) and the
    RabbitMQ node (``beam.smp``) the benchmark uses: those deploy/local/with-servers.sh started (their
    pid files under ``GRIDCASE_TEST_POSTGRES_BASE`` / ``GRIDCASE_TEST_RABBITMQ_BASE``), or else every
    such process on the machine (other work's servers then count too). A backend that exits in between
    takes its share."""
    roots = {"postgres": _pid_file(os.environ.get("GRIDCASE_TEST_POSTGRES_BASE"), "data/postmaster.pid"),
             "rabbitmq": _pid_file(os.environ.get("GRIDCASE_TEST_RABBITMQ_BASE"), "rabbitmq.pid")}
    totals = {"postgres": 0.0, "rabbitmq": 0.0}
    names = {"postgres": "postgres", "beam.smp": "rabbitmq"}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    name = names.get(f.read().strip())
            except OSError:
                continue
            root = roots.get(name)
            if name and (root is None or int(entry) == root or _proc_stat(entry)[1:2] == [str(root)]):
                totals[name] += _proc_cpu(int(entry))
    return totals


def _pid_file(base: str | None, name: str) -> int | None:
    """The pid on the first line of ``base/name``; None without a base or a readable file."""
    if not base:
        return None
    try:
        return int(Path(base, name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _proc_stat(pid) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, …); [] if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _proc_cpu(pid: int) -> float:
    fields = _proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") if fields else 0.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]
