"""Settings: one TOML file, validated at startup into typed, frozen settings.

A wrong key, type or value raises `ConfigError` with the file, the dotted key and the reason.
Relative paths are resolved against the config file's folder (the built-in demo: the current
directory). Secrets may be written as `{ env = "VARIABLE" }`.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import phonenumbers

from agi.loops import EVENT_LOOPS
from centralita.store.schema import default_path
from centralita.store.url import (
    PgLocation,
    SqliteLocation,
    StoreLocation,
    StoreUrlError,
    parse_store_url,
)
from dialplan.instances import AgiInstance, parse_instances
from dialplan.model import HANGUP, Destination, Site, check_destination, load_site
from dialplan.validate import ConfigError, Section, check_bind, check_name

log = logging.getLogger(__name__)

DEMO_NAME = "centralita.toml"
# The name of the one server of a single `[asterisk]` table without a `name`.
DEFAULT_SERVER_NAME = "asterisk"
# Keys of the call center as a whole that live in `[asterisk]` (dialplan.model.load_site):
# with `[[asterisk]]` they are read from the first server only (`sip_bind` may differ).
SITE_KEYS = (
    "sip_driver",
    "company_numbers",
    "entry",
    "recordings_dir",
    "outbound_callerid",
    "outbound_trunk",
)
DEFAULT_CONFIG = Path("centralita.toml")


@dataclass(frozen=True)
class ServerSettings:
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    data_dir: Path = Path("data")
    allowed_peers: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    max_sessions: int = 5000
    max_sessions_per_peer: int | None = None
    header_timeout_s: float = 5.0
    reply_timeout_s: float = 60.0
    shutdown_grace_s: float = 10.0
    fallback: Destination = HANGUP
    log_format: str = "text"
    log_level: str = "INFO"
    secret_key: str | None = None
    events_secret: str | None = None
    # Reverse proxies whose X-Forwarded-For/-Proto are believed (centralita/web/proxy.py).
    trusted_proxies: tuple[str, ...] = ()
    # The event loop `serve` runs on (agi/loops.py): "asyncio", or "uvloop" (the extra).
    event_loop: str = "asyncio"
    # Every FastAGI instance the rendered dialplan calls, in order (dialplan/instances.py);
    # empty: this one, agi_host:agi_port.
    agi_instances: tuple[AgiInstance, ...] = ()
    # callbacks.csv and complaints.csv in data_dir (centralita/csvfiles.py): with
    # PostgreSQL, written by the one instance holding the writer lease.
    csv_files: bool = True


@dataclass(frozen=True)
class AsteriskSettings:
    """One Asterisk server: its AMI, its spool (and where /admin renders its files).

    `[asterisk]` is one server; `[[asterisk]]` lists several (docs/cluster.md), each with a
    unique `name` and optionally the `agents` (member extensions) whose phones it hosts."""

    name: str = DEFAULT_SERVER_NAME
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "centralita"
    ami_secret: str | None = None
    ami_ping_s: float = 20.0
    ami_timeout_s: float = 5.0
    spool_dir: Path = Path("/var/spool/asterisk")
    # Where /admin renders the Asterisk files after each save (None: it only shows the diff).
    conf_dir: Path | None = None
    # The members whose phones live on this server; None: every member.
    agents: tuple[str, ...] | None = None
    # Where this server's SIP driver listens, when not the first server's `sip_bind`.
    sip_bind: str | None = None

    def hosts(self, extension: str) -> bool:
        """True when `extension`'s phone may register on this server (its `agents`)."""
        return self.agents is None or extension in self.agents


# `[console] pause_reasons` unset: the reasons an agent can pick when pausing.
DEFAULT_PAUSE_REASONS = ("break", "lunch", "training", "meeting")
# A pause reason goes to Asterisk as QueuePause's `Reason` and into queue_log and the
# QueueMemberPause event (apps/app_queue.c set_queue_member_pause): plain words only.
PAUSE_REASON_CHARS = frozenset(string.ascii_letters + string.digits + "-_.")
MAX_PAUSE_REASON = 40  # app_queue's member reason_paused buffer is 80 bytes


@dataclass(frozen=True)
class ConsoleSettings:
    """`[console]` keys read by the web console (dispositions and supervisors are in `Site`)."""

    pause_reasons: tuple[str, ...] = DEFAULT_PAUSE_REASONS
    # Queues any agent may log in to and out of from the console (`QueueAdd`/`QueueRemove`:
    # dynamic members). An agent's own `queues` are static members in queues.conf, which
    # app_queue refuses to remove ("Member not dynamic", manager_remove_queue_member).
    login_queues: tuple[str, ...] = ()
    # The region of numbers typed or pasted without a country code in the dial box
    # (phonenumbers); unset, `[manager] default_region`.
    default_region: str = "ES"


@dataclass(frozen=True)
class StoreSettings:
    """`[store]`: where the store lives (centralita/store/url.py). No `url`: the SQLite file
    in `[server] data_dir`, as before there was a setting."""

    url: str | None = None
    # The environment variable holding the PostgreSQL password (never the TOML file).
    password_env: str | None = None
    # PostgreSQL connections each instance keeps open at most.
    pool_size: int = 10
    # Relative sqlite:/// paths are relative to the config file's folder.
    base: Path = Path()

    def location(self, data_dir: Path, environ: Mapping[str, str] | None = None) -> StoreLocation:
        """The store's location; the password (PostgreSQL) is read from the environment now."""
        if self.url is None:
            return SqliteLocation(default_path(data_dir))
        return parse_store_url(
            self.url, base=self.base, password_env=self.password_env, environ=environ
        )


@dataclass(frozen=True)
class Webhook:
    url: str
    account_id: str = ""


@dataclass(frozen=True)
class Settings:
    """The whole validated configuration."""

    file: Path | None  # None: the built-in demo
    server: ServerSettings
    asterisk: AsteriskSettings  # the first (or only) server of `asterisks`
    site: Site
    webhooks: tuple[Webhook, ...]
    console: ConsoleSettings = ConsoleSettings()
    store: StoreSettings = StoreSettings()
    # Every Asterisk server, in config order; empty means (asterisk,), as built by hand.
    servers: tuple[AsteriskSettings, ...] = ()

    @property
    def asterisks(self) -> tuple[AsteriskSettings, ...]:
        """Every Asterisk server (`[[asterisk]]`), the first one first."""
        return self.servers or (self.asterisk,)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def store_location(self, environ: Mapping[str, str] | None = None) -> StoreLocation:
        """Where the store lives (`[store] url`, else the SQLite file in the data dir)."""
        return self.store.location(self.data_dir, environ)


def demo_text() -> str:
    """The commented demo config, as shipped in the package."""
    return resources.files("centralita.demo").joinpath(DEMO_NAME).read_text(encoding="utf-8")


# `centralita init` replaces this line of the demo with a random secret_key.
SECRET_KEY_LINE = '# secret_key = { env = "CENTRALITA_SECRET_KEY" }\n'  # noqa: S105 (a comment)
SECRET_BYTES = 18  # token_urlsafe(18): 24 characters, 144 bits


def demo_secrets() -> frozenset[str]:
    """The secrets written in the shipped demo: public, so good for loopback only."""
    data = tomllib.loads(demo_text())
    members = [*data.get("members", []), *data.get("agents", [])]
    found = {a["secret"] for a in members if isinstance(a.get("secret"), str)}
    for table, key in (("asterisk", "ami_secret"), ("server", "secret_key")):
        value = data.get(table, {}).get(key)
        if isinstance(value, str):
            found.add(value)
    return frozenset(found)


def public_secrets(settings: Settings) -> list[str]:
    """The keys of `settings` that hold one of the demo's public secrets."""
    known = demo_secrets()
    found = [
        f"{settings.site.member_table}[{i}].secret ({member.extension})"
        for i, member in enumerate(settings.site.members)
        if member.secret in known
    ]
    for index, server in enumerate(settings.asterisks):
        if server.ami_secret in known:
            several = len(settings.asterisks) > 1
            found.append(f"asterisk[{index}].ami_secret" if several else "asterisk.ami_secret")
    if settings.server.secret_key in known:
        found.append("server.secret_key")
    return found


def public_secrets_refusal(settings: Settings) -> str | None:
    """Why `serve` must not start: the demo's public secrets on a non-loopback address."""
    server = settings.server
    exposed = [
        f"server.{key} = {host!r}"
        for key, host in (("web_host", server.web_host), ("agi_host", server.agi_host))
        if not is_loopback(host)
    ]
    public = public_secrets(settings)
    if not exposed or not public:
        return None
    return (
        f"centralita: refusing to serve on {', '.join(exposed)}: {', '.join(public)} "
        "still hold the demo's secrets, which are published with Centralita. Set your own "
        "(`centralita init DIR` writes a config with random ones), or serve on 127.0.0.1."
    )


def is_loopback(host: str) -> bool:
    """True when `host` (an address or "localhost") is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name or "" (every address): assume the network can reach it


def fresh_config_text() -> str:
    """The demo config with random secrets in place of its public ones (`centralita init`)."""
    text = demo_text()
    for secret in sorted(demo_secrets()):
        text = text.replace(f'"{secret}"', f'"{secrets.token_urlsafe(SECRET_BYTES)}"')
    key = secrets.token_urlsafe(32)
    text = text.replace(
        SECRET_KEY_LINE,
        f'secret_key = "{key}"   # or {{ env = "CENTRALITA_SECRET_KEY" }}\n',
    )
    return text


def _resolve(base: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path)


def parse_settings(text: str, file: str, base: Path, path: Path | None) -> Settings:
    """Validate TOML text into Settings; `base` anchors relative paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", str(exc)) from None
    root = Section(data, file, "")

    srv = root.table("server")
    peers = tuple(srv.string_list("allowed_peers", ["127.0.0.1/32", "::1/128"]))
    for peer in peers:
        try:
            ipaddress.ip_network(peer, strict=False)
        except ValueError:
            raise ConfigError(
                file, "server.allowed_peers", f"{peer!r} is not an address or network"
            ) from None
    proxies = tuple(srv.string_list("trusted_proxies", []))
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                file, "server.trusted_proxies", f"{proxy!r} is not an address or network"
            ) from None
    server = ServerSettings(
        agi_host=srv.string("agi_host", "127.0.0.1"),
        agi_port=srv.integer("agi_port", 4573, minimum=0, maximum=65535),
        web_host=srv.string("web_host", "127.0.0.1"),
        web_port=srv.integer("web_port", 8080, minimum=0, maximum=65535),
        data_dir=_resolve(base, srv.string("data_dir", "data")),
        allowed_peers=peers,
        max_sessions=srv.integer("max_sessions", 5000, minimum=1, maximum=200000),
        max_sessions_per_peer=(
            srv.integer("max_sessions_per_peer", 5000, minimum=1, maximum=200000)
            if srv.has("max_sessions_per_peer")
            else None
        ),
        header_timeout_s=srv.number("header_timeout_s", 5.0, minimum=0.1),
        reply_timeout_s=srv.number("reply_timeout_s", 60.0, minimum=0.1),
        shutdown_grace_s=srv.number("shutdown_grace_s", 10.0),
        fallback=Destination.parse(srv.string("fallback", "hangup"), file, "server.fallback"),
        log_format=srv.choice("log_format", ("text", "json"), "text"),
        log_level=srv.choice("log_level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        secret_key=srv.secret("secret_key"),
        events_secret=srv.secret("events_secret"),
        trusted_proxies=proxies,
        event_loop=srv.choice("event_loop", EVENT_LOOPS, "asyncio"),
        agi_instances=parse_instances(
            srv.string_list("agi_instances", []), file, "server.agi_instances"
        ),
        csv_files=srv.boolean("csv_files", True),
    )
    srv.finish()

    server_sections = root.table_or_tables("asterisk")
    asterisks = parse_asterisks(server_sections, base)
    site = load_site(root)  # the call center's keys of [asterisk] (its first entry)
    check_asterisks(server_sections, asterisks, site)
    console = parse_console(root.table("console"), site)

    store = parse_store(root.table("store"), base)

    webhooks = []
    for w in root.tables("webhooks"):
        url = w.string("url")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(file, w.key("url"), f"{url!r} must start with http:// or https://")
        webhooks.append(Webhook(url=url, account_id=w.string("account_id", "")))
        w.finish()
    # The store, web and AMI sections may grow; every key must still be read by someone.
    root.finish()
    check_destination(site, server.fallback, file, "server.fallback")
    for notice in site.notices:
        log.warning("%s: %s", file, notice)
    return Settings(
        file=path,
        server=server,
        asterisk=asterisks[0],
        servers=asterisks,
        site=site,
        webhooks=tuple(webhooks),
        console=console,
        store=store,
    )


def parse_asterisks(sections: list[Section], base: Path) -> tuple[AsteriskSettings, ...]:
    """`[asterisk]` (one server) or `[[asterisk]]` (several): each server's AMI, spool and
    members; names, AMI addresses and spools unique (`check_asterisks` checks the rest)."""
    several = len(sections) > 1
    servers: list[AsteriskSettings] = []
    for index, ast in enumerate(sections):
        file = ast.file
        if index > 0:
            # The call center's own keys are one for all servers (one dialplan model).
            for key in SITE_KEYS:
                if ast.has(key):
                    raise ConfigError(
                        file,
                        ast.key(key),
                        "is a key of the whole call center: write it in the first "
                        "[[asterisk]] only",
                    )
        name = check_name(
            ast.string("name", DEFAULT_SERVER_NAME if not several else None), file, ast.key("name")
        )
        agents: tuple[str, ...] | None = None
        if ast.has("agents"):
            if not several:
                raise ConfigError(
                    file,
                    ast.key("agents"),
                    "only with several servers ([[asterisk]]): one server hosts every member",
                )
            agents = tuple(ast.string_list("agents"))
            if len(set(agents)) != len(agents):
                raise ConfigError(file, ast.key("agents"), "lists an extension twice")
        server = AsteriskSettings(
            name=name,
            ami_host=ast.string("ami_host", "127.0.0.1"),
            ami_port=ast.integer("ami_port", 5038, minimum=1, maximum=65535),
            ami_user=ast.string("ami_user", "centralita"),
            ami_secret=ast.secret("ami_secret"),
            ami_ping_s=ast.number("ami_ping_s", 20.0, minimum=1.0),
            ami_timeout_s=ast.number("ami_timeout_s", 5.0, minimum=0.1),
            spool_dir=_resolve(base, ast.string("spool_dir", "/var/spool/asterisk")),
            conf_dir=(
                _resolve(base, ast.string("conf_dir")) if ast.opt_string("conf_dir") else None
            ),
            agents=agents,
            sip_bind=(
                check_bind(ast.string("sip_bind"), file, ast.key("sip_bind"))
                if index > 0 and ast.has("sip_bind")
                else None
            ),
        )
        for key, value in (("ami_user", server.ami_user), ("ami_secret", server.ami_secret or "")):
            if any(c in value for c in "\r\n\0"):
                raise ConfigError(file, ast.key(key), "must not contain line breaks")
        for other in servers:
            if other.name == name:
                raise ConfigError(file, ast.key("name"), f"{name!r} names two servers")
            if (other.ami_host, other.ami_port) == (server.ami_host, server.ami_port):
                raise ConfigError(
                    file,
                    ast.key("ami_port"),
                    f"{other.name!r} already has the AMI at {server.ami_host}:{server.ami_port}",
                )
            if other.spool_dir == server.spool_dir:
                raise ConfigError(
                    file,
                    ast.key("spool_dir"),
                    f"{other.name!r} already uses {server.spool_dir}: a call file there would "
                    "be dialled by whichever server reads it first",
                )
        servers.append(server)
    return tuple(servers)


def check_asterisks(
    sections: list[Section], servers: tuple[AsteriskSettings, ...], site: Site
) -> None:
    """After the site is read: no unknown key in any server, `agents` are members, and
    every member is on some server."""
    for ast, server in zip(sections, servers, strict=True):
        ast.finish()
        for extension in server.agents or ():
            if site.member(extension) is None:
                raise ConfigError(
                    ast.file, ast.key("agents"), f"{extension!r} is not a member's extension"
                )
    hosted = {ext for s in servers for ext in (s.agents or ())}
    if all(s.agents is not None for s in servers):
        homeless = [m.extension for m in site.members if m.extension not in hosted]
        if homeless:
            raise ConfigError(
                sections[0].file,
                "asterisk",
                f"member {homeless[0]} is on no server: add it to some [[asterisk]] agents "
                "(or leave agents out of a server to host every member there)",
            )


def parse_store(section: Section, base: Path) -> StoreSettings:
    """`[store] url`, `password_env` and `pool_size`, checked now (the password itself is
    read when the store opens, so `render` and `check` need none)."""
    url = section.opt_string("url")
    password_env = section.opt_string("password_env")
    pool_size = section.integer("pool_size", 10, minimum=1, maximum=200)
    if url is not None:
        try:
            location = parse_store_url(url, base=base)
        except StoreUrlError as exc:
            raise ConfigError(section.file, section.key("url"), str(exc)) from None
        if password_env is not None and not isinstance(location, PgLocation):
            raise ConfigError(
                section.file, section.key("password_env"), "is for a postgresql:// url only"
            )
    if password_env is not None and not password_env.replace("_", "").isalnum():
        raise ConfigError(
            section.file, section.key("password_env"), "must be an environment variable's name"
        )
    section.finish()
    return StoreSettings(url=url, password_env=password_env, pool_size=pool_size, base=base)


def parse_console(section: Section, site: Site) -> ConsoleSettings:
    """The console's own `[console]` keys (`load_site` reads dispositions and supervisors)."""
    manager_region = site.manager.default_region
    reasons = tuple(section.string_list("pause_reasons", list(DEFAULT_PAUSE_REASONS)))
    key = section.key("pause_reasons")
    if not reasons:
        raise ConfigError(section.file, key, "must list at least one reason")
    for reason in reasons:
        if not reason or len(reason) > MAX_PAUSE_REASON or set(reason) - PAUSE_REASON_CHARS:
            raise ConfigError(
                section.file,
                key,
                f"{reason!r} must be 1-{MAX_PAUSE_REASON} letters, digits, '-', '_' or '.'",
            )
    if len(set(reasons)) != len(reasons):
        raise ConfigError(section.file, key, "lists a reason twice")
    region = section.string("default_region", manager_region).upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            section.file,
            section.key("default_region"),
            f"{region!r} is not a region code phonenumbers knows (like ES, MA, FR)",
        )
    login_queues = tuple(section.string_list("login_queues", []))
    for queue in login_queues:
        if site.queue(queue) is None:
            raise ConfigError(
                section.file, section.key("login_queues"), f"queue {queue!r} is not defined"
            )
    section.finish()
    return ConsoleSettings(pause_reasons=reasons, login_queues=login_queues, default_region=region)


def load_settings(path: Path | str | None = None) -> Settings:
    """Load `path`; without one, `./centralita.toml` if present, else the built-in demo."""
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is None:
        return parse_settings(demo_text(), "<demo centralita.toml>", Path.cwd(), None)
    return read_config(Path(path))[0]


def read_config(path: Path) -> tuple[Settings, str]:
    """The settings of the config file at `path`, and the text they were parsed from."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "(file)", exc.strerror or str(exc)) from None
    return parse_settings(text, str(path), path.resolve().parent, path.resolve()), text
