"""``gridcase apikey``: keys for Open311 clients (``POST /open311/v2/requests.json`` needs one)."""
from __future__ import annotations

import click


@click.group("apikey")
def apikey():
    """Open311 API keys."""


@apikey.command("create")
@click.option("--name", required=True, help="the client's name (unique); its reports are filed as open311:NAME")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
def create(name, data_dir):
    """Print a new API key, alone on stdout (it is shown once: only its SHA-256 is kept)."""
    import sqlalchemy as sa

    from services.intake import bootstrap, handlers
    from shared.config import from_env
    from shared.fields import LIMITS, storable_problem

    if not name or len(name) > LIMITS["user"] - len("open311:") or storable_problem(name):
        raise click.UsageError("--name must be printable text of at most 120 characters")
    settings = from_env(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    intake = bootstrap.build(settings, web=False)
    try:
        click.echo(intake.run(handlers.create_api_key, name))
    except sa.exc.IntegrityError:
        raise click.UsageError(f"an API key named {name!r} exists already") from None
    finally:
        intake.engine.dispose()
