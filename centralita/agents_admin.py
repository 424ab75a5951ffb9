"""Member and queue administration on the config file's text: add, edit, remove, list.

The functions take and return TOML text and keep its comments, order and layout (tomlkit), so
that `centralita member add|edit|remove` and the browser's /admin page edit the admin's file
the same way, with the same validation (`check_config`: the whole config is loaded and
rendered in memory, as `centralita render` would). Every edit is also checked to have changed
exactly what it meant to and nothing else; `save_config()` then replaces the file atomically.

Adding a member and removing it again gives back the same bytes, for a file that ends with a
newline and keeps its [[members]] tables together (as `centralita init` writes it). An older
file with [[agents]] tables is edited in those tables.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import secrets
import stat
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from centralita.cmd_render import check_render
from centralita.live import live_part, waiting_for_restart
from centralita.settings import Settings, parse_settings
from dialplan.model import QUEUE_STRATEGIES
from dialplan.render import LANGUAGE_RE, VOICEMAIL_MAIN, write_temp
from dialplan.roles import Member
from dialplan.validate import (
    ConfigError,
    check_agent_name,
    check_extension,
    check_name,
    check_secret,
)

SECRET_BYTES = 18  # token_urlsafe(18): 24 characters, 144 bits
# The member keys an edit may set, in the order a new table lists them.
MEMBER_KEYS = ("extension", "name", "role", "queues", "secret", "language", "voicemail")


def generate_secret() -> str:
    """A strong SIP secret (24 URL-safe characters; none of them special to Asterisk)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def config_hash(text: str) -> str:
    """The version of a config file's text an edit starts from (SHA-256, hex)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MemberFields:
    """What an admin sets for a member. None: leave as is (edit) or the default (add)."""

    name: str | None = None
    role: str | None = None
    queues: Sequence[str] | None = None
    secret: str | None = None
    language: str | None = None
    voicemail: bool | None = None


def check_fields(fields: MemberFields, file: str, extension: str | None = None) -> None:
    """The checks of single values, before the file is touched; keys name the field."""
    if extension is not None:
        check_extension(extension, file, "extension")
        if extension == VOICEMAIL_MAIN:
            raise ConfigError(file, "extension", f"{VOICEMAIL_MAIN} is the voicemail menu number")
    if fields.name is not None:
        check_agent_name(fields.name, file, "name")
    if fields.role is not None:
        check_name(fields.role, file, "role")
    if fields.secret is not None:
        check_secret(fields.secret, file, "secret")
    if fields.queues is not None:
        for queue in fields.queues:
            check_name(queue, file, "queues")
        if len(set(fields.queues)) != len(fields.queues):
            raise ConfigError(file, "queues", "a queue is listed twice")
    if fields.language is not None and not LANGUAGE_RE.match(fields.language):
        raise ConfigError(file, "language", f"{fields.language!r} is not a language code like 'en'")


def add_member(text: str, extension: str, fields: MemberFields, *, file: str = "<config>") -> str:
    """Return `text` with one more member table; ConfigError when it would be invalid."""
    if fields.name is None:
        raise ConfigError(file, "name", "is required")
    if fields.secret is None:
        raise ConfigError(file, "secret", "is required (the SIP password)")
    check_fields(fields, file, extension)
    if text and not text.endswith("\n"):
        text += "\n"  # tomlkit would glue the new table onto the last line
    doc = _parse(text, file)
    table_name = _member_table(doc)
    members = _tables(doc, table_name, file)
    for index, table in enumerate(members):
        if table.get("extension") == extension:
            raise ConfigError(
                file,
                "extension",
                f"member {extension} already exists ({table.get('name', '?')}, "
                f"{table_name}[{index}])",
            )
    _check_language(doc, fields.language, file)
    _check_queues(doc, fields.queues or (), file)
    role = fields.role
    if role is None and "roles" in doc:
        role = "agent"  # the demo's role for queue staff
    _check_role(doc, role, file)

    table = tomlkit.table()
    values: dict[str, Any] = {
        "extension": extension,
        "name": fields.name,
        "role": role,
        # Staff without queues need no empty list (an older [[agents]] file always had one).
        "queues": list(fields.queues or ()) or (None if table_name == "members" else []),
        "secret": fields.secret,
        "language": fields.language,
        "voicemail": None if fields.voicemail in (None, True) else False,
    }
    for key in MEMBER_KEYS:
        if values[key] is not None:
            table[key] = values[key]
    # The trailing blank line belongs to the new table, so removing it removes it too.
    table.add(tomlkit.nl())
    if table_name in doc:
        doc[table_name].append(table)
    else:
        aot = tomlkit.aot()
        aot.append(table)
        if "queues" in doc:
            # Members follow the queues they answer (the demo's order).
            doc._insert_after("queues", table_name, aot)
        else:
            doc.append(table_name, aot)
    new_text = tomlkit.dumps(doc)
    expected = _plain(text, file)
    expected.setdefault(table_name, []).append(dict(table.unwrap()))
    _verify(new_text, expected, file)
    return new_text


def edit_member(text: str, extension: str, fields: MemberFields, *, file: str = "<config>") -> str:
    """Return `text` with the member's given fields changed (the others as they were)."""
    check_fields(fields, file)
    doc = _parse(text, file)
    table_name = _member_table(doc)
    index, table = _find_member(doc, table_name, extension, file)
    _check_language(doc, fields.language, file)
    if fields.queues is not None:
        _check_queues(doc, fields.queues, file)
    _check_role(doc, fields.role, file)
    expected = _plain(text, file)
    plain = expected[table_name][index]
    changes: dict[str, Any] = {
        "name": fields.name,
        "role": fields.role,
        "queues": None if fields.queues is None else list(fields.queues),
        "secret": fields.secret,
        "language": fields.language,
        "voicemail": fields.voicemail,
    }
    for key, value in changes.items():
        if value is None or plain.get(key) == value:
            continue
        if key == "voicemail" and value is True and "voicemail" in table:
            del table["voicemail"]  # true is the default: the key goes back to unset
            del plain["voicemail"]
            continue
        if key == "queues" and not value and key in table:
            del table[key]  # staff without queues need no empty list
            del plain[key]
            continue
        if key == "queues" and not value:
            continue
        table[key] = value
        plain[key] = value
    new_text = tomlkit.dumps(doc)
    _verify(new_text, expected, file)
    return new_text


def remove_member(text: str, extension: str, *, file: str = "<config>") -> str:
    """Return `text` without the member `extension`; ConfigError if absent or still named."""
    doc = _parse(text, file)
    table_name = _member_table(doc)
    index, _ = _find_member(doc, table_name, extension, file)
    if len(doc[table_name]) == 1:
        del doc[table_name]
    else:
        del doc[table_name][index]
    expected = _plain(text, file)
    del expected[table_name][index]
    if not expected[table_name]:
        del expected[table_name]
    # A removed member stops being a supervisor too ([console] supervisors names members).
    console = doc.get("console")
    supervisors = console.get("supervisors") if console is not None else None
    if supervisors is not None and extension in supervisors:
        del supervisors[list(supervisors).index(extension)]
        expected["console"]["supervisors"].remove(extension)
    new_text = tomlkit.dumps(doc)
    _verify(new_text, expected, file)
    return new_text


def edit_queue(
    text: str,
    name: str,
    *,
    strategy: str | None = None,
    timeout_s: int | None = None,
    survey: bool | None = None,
    record: bool | None = None,
    file: str = "<config>",
) -> str:
    """Return `text` with the queue's strategy, callback timeout, survey or recording switch
    changed."""
    if strategy is not None and strategy not in QUEUE_STRATEGIES:
        raise ConfigError(
            file, "strategy", f"must be one of {', '.join(QUEUE_STRATEGIES)}, not {strategy!r}"
        )
    if timeout_s is not None and not 1 <= timeout_s <= 3600:
        raise ConfigError(file, "timeout_s", f"must be between 1 and 3600, not {timeout_s}")
    doc = _parse(text, file)
    queues = _tables(doc, "queues", file)
    index = next((i for i, q in enumerate(queues) if q.get("name") == name), None)
    if index is None:
        raise ConfigError(file, "queues", f"there is no queue named {name!r}")
    expected = _plain(text, file)
    plain = expected["queues"][index]
    changes = (
        ("strategy", strategy),
        ("timeout_s", timeout_s),
        ("survey", survey),
        ("record", record),
    )
    for key, value in changes:
        if value is not None and plain.get(key) != value:
            queues[index][key] = value
            plain[key] = value
    new_text = tomlkit.dumps(doc)
    _verify(new_text, expected, file)
    return new_text


def check_config(text: str, file: str) -> Settings:
    """The whole validation an edit must pass: load the config, then render it in memory
    (render refuses what the model alone cannot see, like an extension of 2000)."""
    settings = parse_settings(text, file, Path(file).parent, None)
    # Throwaway secrets: only the rendering's checks matter here, nothing is written.
    check_render(settings)
    return settings


# The names from before roles, kept for `centralita agent` and older callers.
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
    """`add_member` with an agent's fields."""
    fields = MemberFields(name=name, queues=queues, secret=secret, language=language)
    return add_member(text, extension, fields, file=file)


def remove_agent(text: str, extension: str, *, file: str = "<config>") -> str:
    """`remove_member`."""
    return remove_member(text, extension, file=file)


def list_agents(settings: Settings) -> tuple[Member, ...]:
    """The configured members, in config order."""
    return settings.site.members


def format_agents(members: Sequence[Member]) -> str:
    """A plain table for a terminal: extension, name, role, language, queues (never the
    secret)."""
    rows = [("EXT", "NAME", "ROLE", "LANG", "QUEUES")]
    rows += [(m.extension, m.name, m.role, m.language, ",".join(m.queues)) for m in members]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join([*(row[i].ljust(widths[i]) for i in range(4)), row[4]]).rstrip() for row in rows
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
        return copy.deepcopy(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", str(exc)) from None


def _tables(doc: tomlkit.TOMLDocument, key: str, file: str) -> list[Any]:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(file, key, f"must be an array of tables ([[{key}]])")
    return list(value)


def _member_table(doc: tomlkit.TOMLDocument) -> str:
    """Where the file keeps its members: [[members]], or [[agents]] in an older file (one
    without [[roles]] or [[members]])."""
    if "members" in doc or ("roles" in doc and "agents" not in doc):
        return "members"
    return "agents"


def _find_member(
    doc: tomlkit.TOMLDocument, table_name: str, extension: str, file: str
) -> tuple[int, Any]:
    members = _tables(doc, table_name, file)
    for index, table in enumerate(members):
        if table.get("extension") == extension:
            return index, table
    raise ConfigError(file, "extension", f"there is no member with extension {extension!r}")


def _check_language(doc: tomlkit.TOMLDocument, language: str | None, file: str) -> None:
    codes = [str(la.get("code")) for la in _tables(doc, "languages", file)]
    if language is not None and codes and language not in codes:
        raise ConfigError(
            file,
            "language",
            f"no language {language!r} is defined (the languages are: {', '.join(codes)})",
        )


def _check_queues(doc: tomlkit.TOMLDocument, queues: Sequence[str], file: str) -> None:
    known = [q.get("name") for q in _tables(doc, "queues", file)]
    for queue in queues:
        if queue not in known:
            listed = ", ".join(str(k) for k in known) or "none"
            raise ConfigError(file, "queues", f"unknown queue {queue!r} (the queues are: {listed})")


def _check_role(doc: tomlkit.TOMLDocument, role: str | None, file: str) -> None:
    roles = [str(r.get("name")) for r in _tables(doc, "roles", file)] or ["agent"]
    if role is not None and role not in roles:
        raise ConfigError(
            file, "role", f"no role {role!r} is defined (the roles are: {', '.join(roles)})"
        )


def _verify(new_text: str, expected: dict[str, Any], file: str) -> None:
    """The edit changed exactly what it meant to and nothing else, and the whole config is
    still valid. tomlkit keeps layout, but this check does not rely on it."""
    if _plain(new_text, file) != expected:
        raise ConfigError(
            file,
            "(file)",
            "the file could not be edited safely (are the [[members]] tables split up?); "
            "edit it by hand",
        )
    check_config(new_text, file)


@dataclass(frozen=True)
class PendingChanges:
    """What the config file holds that the running `centralita serve` does not use.

    A save in /admin applies at once (centralita/live.py), so this is what a hand edit of the
    file brought and no reload has applied yet (or a reload refused), and the restart-only
    parts the file changed. The admin pages show it instead of letting a new member find out
    at the login form.
    """

    added: tuple[str, ...] = ()  # extensions in the file only: they cannot log in yet
    changed: tuple[str, ...] = ()  # extensions whose name, role, queues, language... differ
    removed: tuple[str, ...] = ()  # still in the running console's lists (cannot log in)
    queues: tuple[str, ...] = ()  # queues added, removed or changed
    roles: tuple[str, ...] = ()  # roles added, removed or changed
    # Anything a reload would apply (the lists above, the IVR, languages, [console]...).
    to_apply: bool = False
    restart: tuple[str, ...] = ()  # restart-only parts that differ (live.RESTART_ONLY)

    def __bool__(self) -> bool:
        return self.to_apply or bool(self.restart)

    def of(self, extension: str) -> str:
        """`added`, `changed` or "" for one member of the file."""
        if extension in self.added:
            return "added"
        return "changed" if extension in self.changed else ""


def pending_changes(running: Settings, on_file: Settings) -> PendingChanges:
    """Compare the settings `serve` runs with and the file's, member by member, queue by
    queue and role by role. A new SIP secret is not a difference here: only Asterisk reads it."""
    running, on_file = _without_sip_secrets(running), _without_sip_secrets(on_file)
    before = {m.extension: m for m in running.site.members}
    after = {m.extension: m for m in on_file.site.members}
    return PendingChanges(
        added=tuple(e for e in after if e not in before),
        changed=tuple(e for e, m in after.items() if e in before and before[e] != m),
        removed=tuple(e for e in before if e not in after),
        queues=_differing(
            {q.name: q for q in running.site.queues}, {q.name: q for q in on_file.site.queues}
        ),
        roles=_differing(
            {r.name: r for r in running.site.roles}, {r.name: r for r in on_file.site.roles}
        ),
        to_apply=live_part(running, on_file) != running,  # what a reload would change
        restart=waiting_for_restart(running, on_file),
    )


def _without_sip_secrets(settings: Settings) -> Settings:
    members = tuple(replace(m, secret="") for m in settings.site.members)
    return replace(settings, site=replace(settings.site, members=members))


def _differing(before: dict[str, object], after: dict[str, object]) -> tuple[str, ...]:
    """The names added, removed or changed between two tables, sorted."""
    return tuple(sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n)))
