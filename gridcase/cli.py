"""The ``gridcase`` command line."""
from __future__ import annotations

import os
import signal

import click

from shared import logs
from shared.auth import ROLES, issue_token
from shared.config import SERVICES, from_env

DATA_DIR = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                        help="where embedded data and the development secret live [default: ./.gridcase]")


def settings_for(data_dir, **overrides):
    """The process's settings (``shared.config``); command-line options given win over the environment."""
    try:
        settings = from_env(data_dir, **overrides)
    except ValueError as exc:  # a setting that cannot work: say which, and do not start
        raise click.ClickException(str(exc)) from None
    logs.configure(settings.log_level, settings.log_format)
    return settings


@click.group()
def main():
    """gridcase: grid-governance case management (intake, dispatch, escalation)."""


@main.command()
@click.option("--port", type=int, default=None, help="[default: GRIDCASE_PORT or 8000]")
@click.option("--host", default=None, help="[default: GRIDCASE_HOST or 127.0.0.1]")
@click.option("--city", default=None, help="demo (generated), a directory of level files, or a JSON file")
@DATA_DIR
def up(port, host, city, data_dir):
    """Run everything in one process: SQLite per service, in-memory bus, all APIs on one port.

    Prints a line per phase, then — only once ``/readyz`` answers 200 over HTTP — the block that starts
    "gridcase is up at URL" (written whole: no log line inside it); Ctrl-C or SIGTERM stops it, and
    "gridcase stopped" is its last line."""
    import threading

    from gridcase.embedded import System, print_whole, wait_until_ready
    from shared.web import make_embedded_server

    settings = settings_for(data_dir, city=city, port=port, host=host)

    def shutdown(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, shutdown)
    click.echo(f"up: opening the databases in {settings.data_dir} (migrating them when needed)")
    system = System(settings)
    server = serving = None
    try:
        click.echo(_city_line(settings.city, system.active_city()))
        version = system.ensure_city(settings.city)
        click.echo("up: starting consumers, relays and the scheduler")
        system.start_workers()
        server = make_embedded_server(settings.host, settings.port, system)
        thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        thread.start()
        serving = thread  # only a started server is shut down: shutdown() waits for serve_forever to end
        wait_until_ready(server.server_address)
        print_whole(_welcome(system, settings, f"http://{settings.host}:{server.server_port}", version))
        serving.join()  # until Ctrl-C or SIGTERM (KeyboardInterrupt here), or the server's end
    except KeyboardInterrupt:
        pass
    finally:
        # a second Ctrl-C or SIGTERM (a process group's, a supervisor's) does not cut the orderly stop short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if serving is not None:
            server.shutdown()
        if server is not None:
            server.server_close()
        system.stop()
        click.echo("gridcase stopped")


def _city_line(city: str, active) -> str:
    """The start's words about the city: imported now (the first start) or when, and which."""
    if active is None:
        return f"up: importing the city {city!r} (first start)"
    when = active.imported.date().isoformat()
    if active.source == f"gridcase up --city {city}":
        return f"up: the city {city!r}, {active.grids} grids (imported {when})"
    return (f"up: area version {active.version}, {active.grids} grids (imported {when} by {active.source!r}); "
            f"--city {city!r} is imported only into an empty data directory")


def _welcome(system, settings, base: str, version: int | None) -> str:
    """The block a person reads once the system is up: URLs, a development token per role, sign-in
    links and a report to try."""
    from gridcase.tokens import development_tokens, sample_point

    lines = [f"gridcase is up at {base}  (data in {settings.data_dir.resolve()})"]
    if version:
        lines.append(f"  imported city {settings.city!r} as area version {version}")
    for name in SERVICES:
        lines.append(f"  {name:<10} {base}/{name}/v1   docs {base}/{name}/docs   openapi {base}/{name}/openapi.json")
    lines.append(f"  ready      {base}/readyz    metrics {base}/metrics")
    lines.append("development tokens (Authorization: Bearer …):")
    tokens = development_tokens(system, settings)
    for role, area, token in tokens:
        lines.append(f"  {role:<11} {area or '':<22} {token}")
    by_role = {role: token for role, _, token in tokens}
    lines.append("pages — sign-in links (the token rides in the #fragment, which never reaches a server):")
    for page, role in (("app", "grid_worker"), ("board", "station"), ("desk", "supervisor"), ("wall", "command")):
        lines.append(f"  {page:<6} {role:<11} {base}/{page}/#token={by_role[role]}")
    role, grid, token = tokens[0]
    lon, lat = sample_point(system, grid)
    lines.append(f"try it — a report from inside {grid}:")
    lines.append(f"  curl -s -X POST {base}/intake/v1/reports -H 'Authorization: Bearer {token}' "
                 f"-H 'Idempotency-Key: first-report' -H 'Content-Type: application/json' -d "
                 f"'{{\"category\": \"street_light\", \"description\": \"lamp out\", "
                 f"\"location\": {{\"lon\": {lon}, \"lat\": {lat}}}}}'")
    return "\n".join(lines) + "\n"


@main.command()
@click.argument("service", type=click.Choice(SERVICES))
@click.option("--port", type=int, default=None, help="[default: GRIDCASE_PORT or 8000]")
@click.option("--host", default=None, help="[default: GRIDCASE_HOST or 127.0.0.1]")
@click.option("--workers", "web_workers", type=int, default=None, help="[default: GRIDCASE_WEB_WORKERS or 2]")
@click.option("--config", "gunicorn_config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a gunicorn config file (e.g. deploy/gunicorn.conf.py; default GRIDCASE_GUNICORN_CONFIG); "
                   "--host/--port/--workers win over it")
@click.option("--fd", type=int, default=None,
              help="serve on this inherited, already listening socket (a file descriptor) instead of --host/--port")
@DATA_DIR
def serve(service, port, host, web_workers, gunicorn_config, fd, data_dir):
    """Serve one service's HTTP API with gunicorn (production)."""
    import shutil
    import tempfile

    settings = settings_for(data_dir, port=port, host=host, web_workers=web_workers, gunicorn_config=gunicorn_config)
    own_metrics_dir = None
    if settings.web_workers > 1 and not settings.metrics_dir:
        # /metrics must add up every worker's counters; prometheus_client reads this before its first import.
        own_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"gridcase-{service}-")
        settings = settings.replace(metrics_dir=own_metrics_dir)
    from gridcase.production import serve_service

    bind = f"{settings.host}:{settings.port}" if fd is None else f"fd://{fd}"
    try:
        serve_service(service, settings, bind=bind, workers=settings.web_workers, config_file=settings.gunicorn_config)
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


@main.command()
@click.argument("name", type=click.Choice(SERVICES + ("scheduler", "notify")))
@DATA_DIR
def worker(name, data_dir):
    """Run a service's consumers and outbox relay, the deadline scheduler or the notifier (production)."""
    from gridcase.production import run_worker

    run_worker(name, settings_for(data_dir))


@main.group(invoke_without_command=True)
@click.option("--role", type=click.Choice(ROLES), default=None, help="required unless revoking")
@click.option("--area", default=None, help="the grid/station/sub-center id the role is scoped to")
@click.option("--user", default=None, help="the person's own id (required for a grid worker)")
@click.option("--department", default=None, help="the department's id (role department)")
@click.option("--days", type=float, default=30.0, show_default=True, help="lifetime, at most 30 days")
@DATA_DIR
@click.pass_context
def token(ctx, role, area, user, department, days, data_dir):
    """Print a signed development token (and nothing else) on stdout; `token revoke` revokes tokens.

    The area must exist at the role's level in dispatch's active area version; a grid worker needs
    --user (each person their own subject: never a role's, a desk's or a unit's name); a department
    needs --department, one of the city's."""
    from datetime import timedelta

    from gridcase.tokens import check_area, check_department, check_subject

    if ctx.invoked_subcommand is not None:
        return
    if role is None:
        raise click.UsageError("Missing option '--role'.")
    settings = settings_for(data_dir)
    try:
        check_area(settings, role, area)
        check_department(settings, role, department)
        check_subject(settings, user)
        click.echo(issue_token(settings.secret, role, area=area, user=user, department=department,
                               ttl=timedelta(days=days)))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


@token.command("revoke")
@click.option("--id", "token_id", default=None, help="a token's jti: that token")
@click.option("--token", "token_text", default=None, help="a token itself: that token (its jti)")
@click.option("--user", default=None, help="a subject (sub): every token of that person issued before now")
@click.option("--note", default="", help="why, kept with the revocation")
@DATA_DIR
def revoke(token_id, token_text, user, note, data_dir):
    """Revoke one token (--id or --token) or every token of a person issued before now (--user), in
    every service's database; each service refuses it (401) within 2 seconds."""
    from gridcase.tokens import revoke_everywhere, token_id_of
    from shared.revocations import REFRESH_SECONDS

    if sum(bool(x) for x in (token_id, token_text, user)) != 1:
        raise click.UsageError("give exactly one of --id, --token or --user")
    settings = settings_for(data_dir)
    if token_text:
        try:
            token_id = token_id_of(settings, token_text.strip())
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    what = f"token {token_id}" if token_id else f"every token of {user!r} issued before now"
    failed = {s: e for s, e in revoke_everywhere(settings, token_id=token_id, subject=user, note=note).items() if e}
    for service, error in failed.items():
        click.echo(f"not revoked in {service}: {error}", err=True)
    if failed:
        raise SystemExit(1)
    click.echo(f"revoked {what} in {', '.join(SERVICES)}: refused within {REFRESH_SECONDS:g} s")


from gridcase.apikey_cli import apikey  # noqa: E402
from gridcase.areas_cli import areas  # noqa: E402
from gridcase.audit_cli import audit_group  # noqa: E402
from gridcase.departments_cli import departments  # noqa: E402
from gridcase.dlq import dlq  # noqa: E402
from gridcase.notify_cli import notify  # noqa: E402
from gridcase.policy_cli import policy_group, stats_group  # noqa: E402

main.add_command(apikey)
main.add_command(areas)
main.add_command(audit_group)
main.add_command(departments)
main.add_command(dlq)
main.add_command(notify)
main.add_command(policy_group)
main.add_command(stats_group)
