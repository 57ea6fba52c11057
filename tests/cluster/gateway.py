"""nginx (Debian's ``/usr/sbin/nginx``) as the HTTP edge of the cluster tier, with the gateway configuration
production uses: ``deploy/nginx.conf`` (docker-compose.yml's ``gateway``), changed only where a machine
differs from compose's network — where it listens, its pid and log files, its temporary files, and the
replicas behind each upstream. Every changed line must be found exactly once, so a change of the
configuration that this rendering would silently miss fails here instead.

The listening socket is bound before nginx starts and inherited (nginx's ``NGINX`` environment variable,
the socket-passing of its binary upgrade), so no port is handed out that is not held (harness.processes)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from harness.processes import ROOT, Processes, wait_for

CONFIG = ROOT / "deploy" / "nginx.conf"
NGINX = "/usr/sbin/nginx"
#: compose's upstream hosts (deploy/nginx.conf) → the service whose replicas stand behind them
UPSTREAMS = {"intake-api:8000": "intake", "dispatch-api:8000": "dispatch", "escalation-api:8000": "escalation"}


def _replace_once(text: str, old: str, new: str) -> str:
    found = text.count(old)
    assert found == 1, f"deploy/nginx.conf: {old!r} found {found} times, expected once"
    return text.replace(old, new)


def render(directory: Path, port: int, replicas: dict[str, list[str]]) -> str:
    """deploy/nginx.conf for nginx on ``127.0.0.1:port`` with its files in ``directory`` and
    ``replicas``: service → its API replicas as ``host:port``."""
    text = CONFIG.read_text()
    text = _replace_once(text, "pid /var/run/nginx.pid;",
                         f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log info;")
    text = _replace_once(text, "access_log /var/log/nginx/access.log gridcase;",
                         f"access_log {directory}/access.log gridcase;")
    text = _replace_once(text, "        listen [::]:80;\n", "")
    text = _replace_once(text, "listen 80;", f"listen 127.0.0.1:{port};")
    temp = "".join(f"    {kind}_temp_path {directory}/{kind}_temp;\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = _replace_once(text, "http {\n", "http {\n" + temp)
    for host, service in UPSTREAMS.items():
        servers = "\n        ".join(f"server {address};" for address in replicas[service])
        text = _replace_once(text, f"server {host};", servers)
    assert not re.search(r"server\s+[a-z-]+-api:", text), "an upstream of deploy/nginx.conf was not rendered"
    return text


class Gateway:
    """nginx in front of the given replicas, started by ``processes`` (stopped with them)."""

    def __init__(self, processes: Processes, replicas: dict[str, list[str]]):
        assert shutil.which(NGINX) or os.path.exists(NGINX), "nginx not found: .ci/run installs Debian's nginx"
        self.processes = processes
        # nginx's workers run as `nobody` under root: their directory must be open to them
        self.directory = Path(tempfile.mkdtemp(prefix="gridcase-gateway-"))
        self.directory.chmod(0o755)
        self.replicas = replicas
        self.access_log = self.directory / "access.log"

    def start(self) -> str:
        """Start nginx; returns its base URL once it answers."""
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            config = self.directory / "nginx.conf"
            config.write_text(render(self.directory, port, self.replicas))
            fd = listener.fileno()
            os.set_inheritable(fd, True)
            self.processes.start("gateway", [NGINX, "-p", str(self.directory), "-c", str(config),
                                             "-e", str(self.directory / "error.log"), "-g", "daemon off;"],
                                 {"NGINX": f"{fd};"}, pass_fds=(fd,))
            self.url = f"http://127.0.0.1:{port}"
            wait_for(lambda: self.answers(), timeout=30, message="nginx to answer", watch=self.processes,
                     names=("gateway",))
        return self.url

    def answers(self) -> bool:
        import requests

        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def upstreams(self, request_id: str) -> list[str]:
        """The replicas (``host:port``) nginx tried for the request with this X-Request-ID, in order."""
        for line in reversed(self.access_log.read_text().splitlines()):
            if line.endswith(f"rid={request_id}"):
                # upstream=A, B/0.001, 0.020 rid=…: every replica tried, then their response times
                tried = re.search(r" upstream=([^/]*)/", line).group(1)
                return [address.strip() for address in tried.split(",") if address.strip() not in ("", "-")]
        raise AssertionError(f"no access log line for {request_id}")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
