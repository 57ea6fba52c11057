"""One frozen settings object per process, read from the environment once (here and nowhere else:
the command line's defaults come from it too).

Embedded mode (the default) needs nothing: SQLite files under the data directory and an
in-process bus. Production sets ``GRIDCASE_BROKER_URL`` and one database URL per service.

Either may name several nodes, so that a client survives the death of one: the broker URL lists
RabbitMQ nodes separated by ``;`` (kombu's failover syntax, ``amqp://u:p@rmq1:5672/%2F;amqp://u:p@rmq2:5672/%2F``),
a PostgreSQL URL lists hosts in libpq's form (``postgresql+psycopg://user:pw@/intake?host=pg1:5432&host=pg2:5432``,
see ``shared.db`` for the timeouts and the read-write target gridcase adds). Both are checked here, when the
settings are read, and a bad one is refused naming its variable.
"""
from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from shared.auth import PROVIDER_SETTINGS, check_secret

SERVICES = ("intake", "dispatch", "escalation")
MEMORY_BROKER = "memory://localhost/"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".gridcase")
    broker_url: str = MEMORY_BROKER
    database_urls: dict[str, str] = field(default_factory=dict)
    secret: str = ""
    time_scale: float = 1.0
    clock_anchor: str | None = None
    city: str = "demo"
    policy_file: str | None = None
    time_zone: str = "Asia/Shanghai"  # the city's IANA zone: report numbers, "today", statistics periods
    holidays: str | None = None  # the holiday region (CN, DE-BE); None: the policy's [calendar] region
    delivery_limit: int = 5
    log_level: str = "INFO"
    log_format: str | None = None  # "json" or "console"; default: console on a terminal, else JSON
    host: str = "127.0.0.1"  # `gridcase up` and `gridcase serve` listen here
    port: int = 8000
    web_workers: int = 2  # gunicorn worker processes of `gridcase serve`
    gunicorn_config: str | None = None  # a gunicorn config file for `gridcase serve`
    metrics_dir: str | None = None  # prometheus_client's multiprocess directory under gunicorn
    crash_at: str = ""  # a named crash point, for fault tests only (shared/faults.py)
    jwks_url: str | None = None  # an identity provider's JWKS (URL or file) for RS256/ES256 tokens
    jwt_audience: str | None = None  # the aud its tokens must name (required with jwks_url)
    jwt_issuer: str | None = None  # the iss its tokens must carry (required with jwks_url)
    report_rate_limit: str = "60/minute;1000/day"  # reports one person may file (limits notation)
    photo_rate_limit: str = "12/minute;300/day"  # photos one person may upload (limits notation)
    location_accuracy_limit_m: float = 200.0  # a fix less accurate than this is not trusted for routing
    photo_dir: Path | None = None  # where photos are stored (default: <data dir>/photos)
    duplicate_radius_m: float = 0.0  # a report this close to an open case of its category is a duplicate (0: off)
    duplicate_window_hours: float = 72.0  # ... if that case was reported within this time
    db_pool_size: int = 5  # connections a process keeps open to its database (PostgreSQL)
    db_max_overflow: int = 10  # ... and opens beyond them under load: the budget is the sum
    # notifications (services/escalation/notify): receivers' timeout, internal targets, e-mail, links
    notify_timeout: float = 10.0  # seconds to connect, and to wait for an answer, per delivery
    notify_retry_initial: float = 10.0  # seconds before the first retry (doubling, at most an hour, for 24 h)
    notify_allow_private: bool = False  # allow receivers on loopback or private addresses
    smtp_url: str | None = None  # smtp://[user:password@]host:port (STARTTLS when offered) or smtps://
    mail_from: str = "gridcase@localhost"
    public_url: str | None = None  # the base URL of links in notifications (default http://host:port)
    audit_key: str = ""  # signs the audit rows and checkpoints (shared.audit); never stored in a database
    audit_checkpoints: str | None = None  # where checkpoints go: a file (JSON lines) or an http(s) URL
    audit_checkpoint_seconds: float = 300.0  # how often the scheduler writes one (real seconds)
    # the pages' base map (shared/basemap.py): [map] in city.toml, GRIDCASE_MAP_* win
    map_tiles: str | None = None  # an XYZ URL template ({z}/{x}/{y}) or a WMTS capabilities URL; None: no base map
    map_crs: str = "wgs84"  # the tiles' coordinates: wgs84, or gcj02 (AutoNavi, Tencent: pins are shifted onto them)
    map_attribution: str = ""  # shown on the map, e.g. "© OpenStreetMap contributors"
    map_subdomains: str = "abc"  # the values of {s} in the template, one character each
    map_layer: str | None = None  # a WMTS layer (default: the first with a Web Mercator tile matrix set)

    @property
    def embedded(self) -> bool:
        return self.broker_url.startswith("memory://")

    @property
    def broker_nodes(self) -> tuple[str, ...]:
        """The broker's nodes, one URL each, in the order given (``broker_nodes(broker_url)``)."""
        return broker_nodes(self.broker_url)

    def database_url(self, service: str) -> str:
        return self.database_urls.get(service) or f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def replace(self, **changes) -> Settings:
        return replace(self, **changes)


def from_env(data_dir: str | os.PathLike | None = None, env: dict | None = None, **overrides) -> Settings:
    """Build the process's settings from ``env`` (default ``os.environ``) and explicit overrides."""
    env = os.environ if env is None else env
    directory = Path(data_dir or env.get("GRIDCASE_DATA_DIR") or ".gridcase")
    urls = {s: env[f"GRIDCASE_{s.upper()}_DATABASE_URL"] for s in SERVICES
            if env.get(f"GRIDCASE_{s.upper()}_DATABASE_URL")}
    settings = Settings(
        data_dir=directory,
        broker_url=env.get("GRIDCASE_BROKER_URL") or MEMORY_BROKER,
        database_urls=urls,
        secret=env.get("GRIDCASE_SECRET", ""),
        time_scale=float(env.get("GRIDCASE_TIME_SCALE", "1") or 1),
        clock_anchor=env.get("GRIDCASE_CLOCK_ANCHOR") or None,
        city=env.get("GRIDCASE_CITY", "demo"),
        policy_file=env.get("GRIDCASE_POLICY_FILE") or None,
        time_zone=env.get("GRIDCASE_TIME_ZONE") or "",
        holidays=env.get("GRIDCASE_HOLIDAYS") or None,
        delivery_limit=int(env.get("GRIDCASE_DELIVERY_LIMIT", "5")),
        log_level=env.get("GRIDCASE_LOG_LEVEL", "INFO").upper(),
        log_format=env.get("GRIDCASE_LOG_FORMAT") or None,
        host=env.get("GRIDCASE_HOST") or "127.0.0.1",
        port=int(env.get("GRIDCASE_PORT") or 8000),
        web_workers=int(env.get("GRIDCASE_WEB_WORKERS") or 2),
        gunicorn_config=env.get("GRIDCASE_GUNICORN_CONFIG") or None,
        metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
        crash_at=env.get("GRIDCASE_CRASH_AT", ""),
        jwks_url=env.get("GRIDCASE_JWKS_URL") or None,
        jwt_audience=env.get("GRIDCASE_JWT_AUDIENCE") or None,
        jwt_issuer=env.get("GRIDCASE_JWT_ISSUER") or None,
        report_rate_limit=env.get("GRIDCASE_REPORT_RATE_LIMIT") or Settings.report_rate_limit,
        photo_rate_limit=env.get("GRIDCASE_PHOTO_RATE_LIMIT") or Settings.photo_rate_limit,
        location_accuracy_limit_m=float(env.get("GRIDCASE_LOCATION_ACCURACY_LIMIT_M") or 200),
        photo_dir=Path(env["GRIDCASE_PHOTO_DIR"]) if env.get("GRIDCASE_PHOTO_DIR") else None,
        duplicate_radius_m=float(env.get("GRIDCASE_DUPLICATE_RADIUS_M") or 0),
        duplicate_window_hours=float(env.get("GRIDCASE_DUPLICATE_WINDOW_HOURS") or 72),
        db_pool_size=_count(env, "GRIDCASE_DB_POOL_SIZE", Settings.db_pool_size, minimum=1),
        db_max_overflow=_count(env, "GRIDCASE_DB_MAX_OVERFLOW", Settings.db_max_overflow, minimum=0),
        notify_timeout=float(env.get("GRIDCASE_NOTIFY_TIMEOUT") or 10),
        notify_retry_initial=float(env.get("GRIDCASE_NOTIFY_RETRY_INITIAL") or 10),
        notify_allow_private=env.get("GRIDCASE_NOTIFY_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
        smtp_url=env.get("GRIDCASE_SMTP_URL") or None,
        mail_from=env.get("GRIDCASE_MAIL_FROM") or Settings.mail_from,
        public_url=env.get("GRIDCASE_PUBLIC_URL") or None,
        audit_key=env.get("GRIDCASE_AUDIT_KEY", ""),
        audit_checkpoints=env.get("GRIDCASE_AUDIT_CHECKPOINTS") or None,
        audit_checkpoint_seconds=float(env.get("GRIDCASE_AUDIT_CHECKPOINT_SECONDS") or 300),
    )
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    broker_nodes(settings.broker_url, name="GRIDCASE_BROKER_URL")
    for service, url in settings.database_urls.items():
        database_hosts(url, name=f"GRIDCASE_{service.upper()}_DATABASE_URL")
    city = city_settings(settings.city)
    settings = replace(settings, time_zone=settings.time_zone or city.get("time_zone") or "Asia/Shanghai",
                       holidays=settings.holidays or city.get("holidays"))
    settings = replace(settings, **map_settings(env, city.get("map", {}), settings.city))
    try:
        ZoneInfo(settings.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"GRIDCASE_TIME_ZONE: unknown time zone {settings.time_zone!r}") from None
    if settings.time_scale <= 0:
        raise ValueError("GRIDCASE_TIME_SCALE must be positive")
    if not (0 < settings.notify_timeout <= 300 and 0 < settings.notify_retry_initial <= 3600):
        raise ValueError("GRIDCASE_NOTIFY_TIMEOUT is 0-300 s and GRIDCASE_NOTIFY_RETRY_INITIAL 0-3600 s")
    if not settings.secret:
        settings = replace(settings, secret=_development_secret(settings.data_dir))
    check_secret(settings.secret)
    if settings.jwks_url and not (settings.jwt_audience and settings.jwt_issuer):
        raise ValueError(PROVIDER_SETTINGS)
    if not settings.audit_key:
        settings = replace(settings, audit_key=_development_secret(settings.data_dir, "audit-key"))
    if len(settings.audit_key.encode()) < 32:
        raise ValueError("GRIDCASE_AUDIT_KEY must be at least 32 bytes; e.g. openssl rand -hex 32")
    if not settings.audit_checkpoints:
        settings = replace(settings, audit_checkpoints=str(settings.data_dir / "audit-checkpoints.jsonl"))
    if not settings.audit_checkpoint_seconds > 0:
        raise ValueError("GRIDCASE_AUDIT_CHECKPOINT_SECONDS must be positive")
    return settings


def _count(env, name: str, default: int, *, minimum: int) -> int:
    """A whole number from the environment (``default`` when unset); ``ValueError`` naming ``name``."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, not {raw!r}")
    return int(raw)


AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def broker_nodes(url: str, name: str = "broker URL") -> tuple[str, ...]:
    """The nodes of a broker URL: ``"amqp://a;amqp://b"`` → ``("amqp://a", "amqp://b")`` (kombu's failover
    syntax, which kombu itself reads; the pika relay and the readiness check go through the nodes in turn).
    Blanks around ``;`` and empty items are ignored. Raises ``ValueError`` naming ``name`` when the list is
    empty, an item is not ``amqp://``, ``amqps://`` or ``pyamqp://``, or ``memory://`` is listed with
    anything else (the in-process bus has exactly one node)."""
    nodes = tuple(part.strip() for part in (url or "").split(";") if part.strip())
    if not nodes:
        raise ValueError(f"{name}: no broker node given")
    schemes = [node.split("://", 1)[0].lower() if "://" in node else "" for node in nodes]
    if schemes == ["memory"]:
        return nodes
    for node, scheme in zip(nodes, schemes, strict=True):
        if scheme not in AMQP_SCHEMES:
            raise ValueError(f"{name}: {redact(node)!r} is not an AMQP URL (amqp://user:password@host:port/vhost); "
                             "several nodes are separated by ';'")
    return nodes


def database_hosts(url: str, name: str = "database URL") -> tuple[str, ...]:
    """The ``host:port`` items a database URL names: the URL's own host, or libpq's repeated
    ``?host=h1:5432&host=h2:5432`` (also ``?host=h1,h2&port=5432,5432``); empty for SQLite. Raises
    ``ValueError`` naming ``name`` for a URL SQLAlchemy cannot read or a port that is not a number."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"{name}: not a database URL ({exc})") from None
    if parsed.get_backend_name() == "sqlite":
        return ()
    query_hosts = parsed.query.get("host")
    if query_hosts is None:
        return (f"{parsed.host or 'localhost'}:{parsed.port or 5432}",)
    items = list(query_hosts) if isinstance(query_hosts, tuple) else query_hosts.split(",")
    ports = parsed.query.get("port")
    ports = (list(ports) if isinstance(ports, tuple) else ports.split(",")) if ports else []
    out = []
    for i, item in enumerate(items):
        host, _, port = item.strip().partition(":")
        port = port or (ports[i] if i < len(ports) else ports[-1] if ports else "5432")
        if not host or not port.strip().isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{name}: host {item!r} is not host:port")
        out.append(f"{host}:{int(port)}")
    return tuple(out)


def redact(url: str) -> str:
    """A URL with its password replaced by ``***`` (for messages and logs)."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"


def city_settings(city: str | None) -> dict:
    """``time_zone``, ``holidays`` and the ``map`` table from a city folder's ``city.toml`` (``gridcase up
    --city examples/berlin`` runs on Europe/Berlin with Berlin's holidays); empty for ``demo`` or a file.
    The environment (``GRIDCASE_TIME_ZONE``, ``GRIDCASE_HOLIDAYS``, ``GRIDCASE_MAP_*``) wins over the folder."""
    if not city or city == "demo":
        return {}
    manifest = Path(city) / "city.toml"
    if not manifest.is_file():
        return {}
    try:
        data = tomllib.loads(manifest.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}  # the area import reports an unreadable city.toml
    found = {k: data[k] for k in ("time_zone", "holidays") if isinstance(data.get(k), str)}
    if "map" in data:
        found["map"] = data["map"]
    return found


MAP_KEYS = ("tiles", "crs", "attribution", "subdomains", "layer")
MAP_CRS = ("wgs84", "gcj02")


def map_settings(env, table, city: str) -> dict:
    """The base map's settings (``map_tiles``, ``map_crs``, ``map_attribution``, ``map_subdomains``,
    ``map_layer``): ``GRIDCASE_MAP_<KEY>`` or else the ``[map]`` table of the city folder's ``city.toml``.
    Raises ``ValueError`` naming the variable or the key for a value that cannot be used: a ``tiles``
    that is not an http(s) URL, an XYZ template without ``{x}``, ``{y}`` (or ``{-y}``) and ``{z}``, a
    placeholder in the host other than ``{s}``, a ``crs`` that is not ``wgs84`` or ``gcj02``, an unknown
    key in ``[map]``."""
    where = f"{city}/city.toml [map]"
    if not isinstance(table, dict):
        raise ValueError(f"{where}: [map] is a table (tiles = \"https://…/{{z}}/{{x}}/{{y}}.png\")")
    unknown = sorted(set(table) - set(MAP_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(MAP_KEYS)})")
    found, names = {}, {}
    for key in MAP_KEYS:
        variable = f"GRIDCASE_MAP_{key.upper()}"
        if env.get(variable):
            found[key], names[key] = env[variable].strip(), variable
        elif key in table:
            if not isinstance(table[key], str):
                raise ValueError(f"{where} {key}: a string")
            found[key], names[key] = table[key].strip(), f"{where} {key}"
    tiles = found.get("tiles") or None
    crs = (found.get("crs") or "wgs84").lower()
    if crs not in MAP_CRS:
        raise ValueError(f"{names['crs']}: {found['crs']!r} is not one of {', '.join(MAP_CRS)}")
    if tiles is not None:
        check_tiles(tiles, names["tiles"])
    subdomains = found.get("subdomains") or Settings.map_subdomains
    if not subdomains.isalnum():
        raise ValueError(f"{names['subdomains']}: letters or digits, one per subdomain (\"abc\", \"01234567\")")
    return {"map_tiles": tiles, "map_crs": crs, "map_attribution": found.get("attribution", ""),
            "map_subdomains": subdomains, "map_layer": found.get("layer") or None}


def check_tiles(tiles: str, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``tiles`` is an http(s) URL: an XYZ template (it has
    ``{z}``, then also ``{x}`` and ``{y}`` or ``{-y}``) or a WMTS capabilities URL (no ``{z}``)."""
    parts = urlsplit(tiles)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name}: {tiles!r} is not an http(s) URL")
    if "{" in parts.netloc.replace("{s}", ""):
        raise ValueError(f"{name}: the only placeholder a host may hold is {{s}} (a subdomain)")
    if "{z}" in tiles and not ("{x}" in tiles and ("{y}" in tiles or "{-y}" in tiles)):
        raise ValueError(f"{name}: an XYZ template names {{z}}, {{x}} and {{y}} (or {{-y}})")


def _development_secret(data_dir: Path, name: str = "secret") -> str:
    """A per-data-directory signing secret (``secret``: tokens; ``audit-key``: the audit trail), so
    development tokens and the audit trail's signatures survive restarts. Made whole or not at all
    (written aside, then linked into place): processes starting together on one data directory all
    read the one that won."""
    path = data_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        aside = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
            os.link(aside, path)
        except FileExistsError:
            pass  # another process made it first
        finally:
            aside.unlink()
    return path.read_text().strip()
