"""Agent administration on the config file's text: add, remove, list.

The functions take and return TOML text and keep its comments, order and layout (tomlkit), so
that `centralita agent add|remove` and the web console's admin page edit the admin's file the
same way. Each result is validated as a whole config (settings.parse_settings) before it is
returned; `save_config()` then replaces the file atomically.

Adding an agent and removing it again gives back the same bytes, for a file that ends with a
newline and keeps its [[agents]] tables together (as `centralita init` writes it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from centralita.settings import Settings, parse_settings
from dialplan.model import Agent
from dialplan.render import LANGUAGE_RE, VOICEMAIL_MAIN, write_temp
from dialplan.validate import (
    ConfigError,
    check_agent_name,
    check_extension,
    check_name,
    check_secret,
)

SECRET_BYTES = 18  # token_urlsafe(18): 24 characters, 144 bits


def generate_secret() -> str:
    """A strong SIP secret (24 URL-safe characters; none of them special to Asterisk)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def add_agent(
    text: str,
    extension: str,
    name: str,
    queues: Sequence[str],
    secret: str,
    *,
    language: str | None = None,
    file: str = "<config>",
) -> str:
    """Return `text` with one more [[agents]] table; ConfigError when it would be invalid."""
    check_extension(extension, file, "extension")
    check_agent_name(name, file, "name")
    check_secret(secret, file, "secret")
    for queue in queues:
        check_name(queue, file, "queues")
    if len(set(queues)) != len(queues):
        raise ConfigError(file, "queues", "a queue is listed twice")
    if language is not None and not LANGUAGE_RE.match(language):
        raise ConfigError(file, "language", f"{language!r} is not a language code like 'en'")
    if extension == VOICEMAIL_MAIN:
        raise ConfigError(file, "extension", f"{VOICEMAIL_MAIN} is the agents' voicemail menu")

    if text and not text.endswith("\n"):
        text += "\n"  # tomlkit would glue the new table onto the last line
    doc = _parse(text, file)
    agents = _agent_tables(doc, file)
    for index, table in enumerate(agents):
        if table.get("extension") == extension:
            raise ConfigError(
                file,
                f"agents[{index}].extension",
                f"agent {extension} already exists ({table.get('name', '?')})",
            )
    codes = [str(la.get("code")) for la in _tables(doc, "languages", file)]
    if language is not None and codes and language not in codes:
        raise ConfigError(
            file,
            "language",
            f"no language {language!r} is defined (the languages are: {', '.join(codes)})",
        )
    known = [q.get("name") for q in _tables(doc, "queues", file)]
    for queue in queues:
        if queue not in known:
            listed = ", ".join(str(k) for k in known) or "none"
            raise ConfigError(file, "queues", f"unknown queue {queue!r} (the queues are: {listed})")

    table = tomlkit.table()
    table["extension"] = extension
    table["name"] = name
    table["queues"] = list(queues)
    table["secret"] = secret
    if language is not None:
        table["language"] = language
    # The trailing blank line belongs to the new table, so removing it removes it too.
    table.add(tomlkit.nl())
    if "agents" in doc:
        doc["agents"].append(table)
    else:
        aot = tomlkit.aot()
        aot.append(table)
        if "queues" in doc:
            # Agents follow the queues they answer (the demo's order).
            doc._insert_after("queues", "agents", aot)
        else:
            doc.append("agents", aot)
    new_text = tomlkit.dumps(doc)
    before = _plain(text, file)
    expected = [*before.get("agents", []), dict(table.unwrap())]
    _verify(new_text, before, expected, file)
    return new_text


def remove_agent(text: str, extension: str, *, file: str = "<config>") -> str:
    """Return `text` without the agent `extension`; ConfigError if absent or still referenced."""
    doc = _parse(text, file)
    agents = _agent_tables(doc, file)
    index = next((i for i, t in enumerate(agents) if t.get("extension") == extension), None)
    if index is None:
        raise ConfigError(file, "agents", f"there is no agent with extension {extension!r}")
    if len(agents) == 1:
        del doc["agents"]
    else:
        del doc["agents"][index]
    before = _plain(text, file)
    # A removed agent stops being a supervisor too ([console] supervisors names agents).
    console = doc.get("console")
    supervisors = console.get("supervisors") if console is not None else None
    if supervisors is not None and extension in supervisors:
        del supervisors[list(supervisors).index(extension)]
        before["console"]["supervisors"] = [
            e for e in before["console"]["supervisors"] if e != extension
        ]
    new_text = tomlkit.dumps(doc)
    expected = [a for a in before.get("agents", []) if a.get("extension") != extension]
    _verify(new_text, before, expected, file)
    return new_text


def list_agents(settings: Settings) -> tuple[Agent, ...]:
    """The configured agents, in config order."""
    return settings.site.agents


def format_agents(agents: Sequence[Agent]) -> str:
    """A plain table for a terminal: extension, name, language, queues (never the secret)."""
    rows = [("EXT", "NAME", "LANG", "QUEUES")]
    rows += [(a.extension, a.name, a.language, ",".join(a.queues)) for a in agents]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join([*(row[i].ljust(widths[i]) for i in range(3)), row[3]]).rstrip() for row in rows
    ]
    return "\n".join(lines) + "\n"


def save_config(path: Path, text: str) -> None:
    """Write the config file atomically (temporary file beside it, fsync, rename).

    It holds secrets: a new file is 0600; a rewritten one keeps its mode, owner and group
    (0640 root:centralita, as docs/deploy.md sets it, stays readable by the service).
    """
    folder = path.resolve().parent
    existed = path.exists()
    mode = stat.S_IMODE(path.stat().st_mode) if existed else 0o600
    tmp = write_temp(
        folder, f".{path.name}.", text.encode("utf-8"), mode, path if existed else None
    )
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- helpers


def _parse(text: str, file: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(file, "(syntax)", str(exc)) from None


def _plain(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", str(exc)) from None


def _tables(doc: tomlkit.TOMLDocument, key: str, file: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(file, key, f"must be an array of tables ([[{key}]])")
    return list(value)


def _agent_tables(doc: tomlkit.TOMLDocument, file: str) -> list[Any]:
    return _tables(doc, "agents", file)


def _verify(new_text: str, before: dict[str, Any], agents: list[Any], file: str) -> None:
    """The edit changed the agents, exactly as intended, and nothing else; and the whole
    config is still valid. tomlkit keeps layout, but this check does not rely on it."""
    after = _plain(new_text, file)
    if after.get("agents", []) != agents or {k: v for k, v in after.items() if k != "agents"} != {
        k: v for k, v in before.items() if k != "agents"
    }:
        raise ConfigError(
            file,
            "agents",
            "the file could not be edited safely (are the [[agents]] tables split up?); "
            "edit it by hand",
        )
    parse_settings(new_text, file, Path(file).parent, None)
