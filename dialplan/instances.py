"""The FastAGI instances the dialplan calls, in order (`[server] agi_instances`).

FastAGI is stateless, so any Centralita instance can take any call. The rendered dialplan
lists every instance: when AGI() cannot reach one, Asterisk sets AGISTATUS=FAILURE and the
dialplan goes on (res/res_agi.c launch_netscript, agi_exec_full), so the next AGI() line tries
the next instance before the fallback. docs/cluster.md describes the topology, and Asterisk's
own alternative, `hagi://` (DNS SRV).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from dialplan.validate import ConfigError

# res_agi.c: `#define AGI_PORT 4573`, used when the URL names no port.
AGI_PORT = 4573
# Asterisk resolves the host with ast_sockaddr_resolve; a name is one of DNS's letters,
# digits, dots and hyphens, which keeps it from splitting AGI()'s comma-separated arguments.
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
# Each instance an unreachable host costs the caller up to res_agi.c's MAX_AGI_CONNECT
# (2000 ms) of silence: a long list is a mistake, not a cluster.
MAX_INSTANCES = 8


@dataclass(frozen=True)
class AgiInstance:
    """One FastAGI server Asterisk may connect to."""

    host: str
    port: int = AGI_PORT

    @property
    def url(self) -> str:
        """`agi://host:port` (an IPv6 address in brackets, as ast_sockaddr_split_hostport
        reads it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"agi://{host}:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_instance(text: str, file: str, key: str) -> AgiInstance:
    """`host`, `host:port`, `[v6]` or `[v6]:port` into an AgiInstance; ConfigError if not."""
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(file, key, f"{text!r} is not [address] or [address]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    port = AGI_PORT
    if port_text or text.endswith(":"):
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise ConfigError(file, key, f"{text!r}: the port must be a number from 1 to 65535")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not HOST_NAME_RE.match(host) or host.replace(".", "").isdigit():
            raise ConfigError(
                file, key, f"{text!r} is not a host name or IP address (with an optional :port)"
            ) from None
    else:
        if address.is_unspecified:
            raise ConfigError(
                file, key, f"{text!r} listens everywhere; Asterisk needs an address to connect to"
            )
        host = str(address)
    return AgiInstance(host, port)


def parse_instances(texts: list[str], file: str, key: str) -> tuple[AgiInstance, ...]:
    """The whole `agi_instances` list: parsed, without duplicates, at most MAX_INSTANCES."""
    if len(texts) > MAX_INSTANCES:
        raise ConfigError(file, key, f"lists {len(texts)} instances; at most {MAX_INSTANCES}")
    instances = tuple(parse_instance(text, file, key) for text in texts)
    if len(set(instances)) != len(instances):
        raise ConfigError(file, key, "lists an instance twice")
    return instances
