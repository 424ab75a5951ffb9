"""Validation helpers shared by the config model: clear errors naming file, key and reason.

Every name and value that ends up in an Asterisk config file or dialplan goes through one of
the checks here, so that `[`, `]`, `;`, `,`, `=` and newlines can never reach a rendered file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A config value is wrong: carries the file, the dotted key and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}")


# Asterisk's config parser treats `[`/`]` as section markers, `;` as a comment, `=`/`,` as
# separators (main/config.c); the dialplan splits application data on `,`. Names are kept to a
# conservative identifier set that every one of those parsers accepts.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
EXTENSION_RE = re.compile(r"^[0-9]{1,20}$")
NUMBER_RE = re.compile(r"^\+?[0-9]{1,24}$")
# Secrets: printable ASCII without whitespace and without the characters that the config
# parsers (sip.conf, pjsip.conf, manager.conf, voicemail.conf) give a meaning to.
SECRET_FORBIDDEN = set("[];,=\"'#\\<>")


def check_name(value: str, file: str, key: str) -> str:
    if not NAME_RE.match(value):
        raise ConfigError(
            file,
            key,
            f"{value!r} is not a valid name: use letters, digits, '_', '.' or '-' "
            "(no spaces, '[', ']', ';', ',', '=' or newlines; at most 63 characters)",
        )
    return value


def check_extension(value: str, file: str, key: str) -> str:
    if not EXTENSION_RE.match(value):
        raise ConfigError(file, key, f"{value!r} is not a valid extension: digits only")
    return value


def check_number(value: str, file: str, key: str) -> str:
    if not NUMBER_RE.match(value):
        raise ConfigError(file, key, f"{value!r} is not a valid number: digits, optional leading +")
    return value


def check_bind(value: str, file: str, key: str) -> str:
    """An `address:port` a SIP driver can listen on (`0.0.0.0:5060`, `[::1]:5062`).

    chan_sip's udpbindaddr and pjsip's transport `bind` both take this form (an IPv6
    address in brackets); nothing else may reach the rendered line.
    """
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        ok = bool(sep) and port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
    except ValueError:
        ok = False
    if not ok or (":" in host and not value.startswith("[")):
        raise ConfigError(
            file, key, f"{value!r} is not an address:port (e.g. 0.0.0.0:5060 or [::]:5060)"
        )
    return value


def check_secret(value: str, file: str, key: str) -> str:
    if len(value) < 8:
        raise ConfigError(file, key, "a secret must be at least 8 characters")
    bad = sorted({c for c in value if c in SECRET_FORBIDDEN or not (33 <= ord(c) <= 126)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ConfigError(
            file, key, f"secret contains characters Asterisk config files cannot hold: {shown}"
        )
    return value


def check_display_name(value: str, file: str, key: str) -> str:
    """Any Unicode (Arabic, French accents) but no control characters and no config syntax."""
    if not value.strip():
        raise ConfigError(file, key, "a display name must not be empty")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ConfigError(file, key, f"display name contains a control character {ch!r}")
        if ch in '"<>;[]=,\\':
            raise ConfigError(
                file, key, f"display name must not contain {ch!r} (config file syntax)"
            )
    if len(value) > 80:
        raise ConfigError(file, key, "display name is longer than 80 characters")
    return value


def balanced(text: str) -> bool:
    """True when no `(` stays open (app.c ignores a `)` without its `(`)."""
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
    return depth == 0


def check_agent_name(value: str, file: str, key: str) -> str:
    """An agent's display name, as every writer and reader of the config checks it (the
    config loader, `agent add` and `render`: one validator, so `agent add` cannot accept a
    name that `render` then refuses, issue 10 finding 12). It lands in queues.conf member
    lines, whose arguments Asterisk splits with app.c __ast_app_separate_args: an open `(`
    would swallow the rest of the line."""
    check_display_name(value, file, key)
    if not balanced(value):
        raise ConfigError(
            file,
            key,
            f"{value!r} has unbalanced parentheses: Asterisk's argument parser "
            "(app.c __ast_app_separate_args) would swallow the rest of the queue member line",
        )
    return value


@dataclass
class Section:
    """A TOML table being read: typed getters, and an error for every key nobody read."""

    data: Mapping[str, Any]
    file: str
    path: str
    _seen: set[str] = field(default_factory=set)
    _tables: dict[str, Section] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str) -> Any:
        self._seen.add(name)
        return self.data.get(name)

    def string(self, name: str, default: str | None = None) -> str:
        value = self._get(name)
        if value is None:
            if default is None:
                raise ConfigError(self.file, self.key(name), "is required")
            return default
        if not isinstance(value, str):
            raise ConfigError(self.file, self.key(name), f"must be a string, not {value!r}")
        return value

    def opt_string(self, name: str) -> str | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(self.file, self.key(name), f"must be a string, not {value!r}")
        return value

    def secret(self, name: str, default: str | None = None) -> str | None:
        """A secret: a plain string, or `{ env = "VAR" }` to read it from the environment."""
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, Mapping):
            if set(value) != {"env"} or not isinstance(value["env"], str):
                raise ConfigError(self.file, self.key(name), 'use a string or { env = "VARIABLE" }')
            env_value = os.environ.get(value["env"])
            if env_value is None:
                raise ConfigError(
                    self.file,
                    self.key(name),
                    f"environment variable {value['env']} is not set",
                )
            return env_value
        if not isinstance(value, str):
            raise ConfigError(self.file, self.key(name), "must be a string")
        return value

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        value = self._get(name)
        if value is None:
            if default is None:
                raise ConfigError(self.file, self.key(name), "is required")
            value = default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.file, self.key(name), f"must be an integer, not {value!r}")
        if minimum is not None and value < minimum:
            raise ConfigError(self.file, self.key(name), f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(self.file, self.key(name), f"must be at most {maximum}, not {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(name)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(self.file, self.key(name), f"must be a number, not {value!r}")
        if value < minimum:
            raise ConfigError(self.file, self.key(name), f"must be at least {minimum}, not {value}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.file, self.key(name), f"must be true or false, not {value!r}")
        return value

    def string_list(self, name: str, default: list[str] | None = None) -> list[str]:
        value = self._get(name)
        if value is None:
            if default is None:
                raise ConfigError(self.file, self.key(name), "is required")
            return list(default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(self.file, self.key(name), "must be a list of strings")
        return list(value)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise ConfigError(
                self.file, self.key(name), f"must be one of {', '.join(choices)}, not {value!r}"
            )
        return value

    def table(self, name: str) -> Section:
        """A sub-table; the same object each time, so several readers share its key tracking."""
        if name in self._tables:
            return self._tables[name]
        value = self._get(name)
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(self.file, self.key(name), "must be a table")
        self._tables[name] = Section(value, self.file, self.key(name))
        return self._tables[name]

    def tables(self, name: str) -> Iterator[Section]:
        value = self._get(name)
        if value is None:
            return
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise ConfigError(self.file, self.key(name), f"must be an array of tables ([[{name}]])")
        for index, item in enumerate(value):
            yield Section(item, self.file, f"{self.key(name)}[{index}]")

    def table_or_tables(self, name: str) -> list[Section]:
        """`[name]` (one table) or `[[name]]` (an array of tables), as a list of sections.

        The first is also what `table(name)` answers from now on, so readers of the single
        table's keys (e.g. `load_site` reading `[asterisk]`) read the first entry."""
        value = self.data.get(name)
        if not isinstance(value, list):
            return [self.table(name)]
        sections = list(self.tables(name))
        if not sections:
            raise ConfigError(self.file, self.key(name), "lists no entry")
        self._tables[name] = sections[0]
        return sections

    def finish(self) -> None:
        """Refuse keys that no reader asked for: a typo must not be silently ignored."""
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise ConfigError(self.file, self.key(unknown[0]), "unknown key")
