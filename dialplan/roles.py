"""Staff roles and members: whom each role may call, whether it takes queue calls, whether it
may dial out, and what it may do in the web console.

A config lists `[[roles]]` and `[[members]]` (each member has a role). An older config with
`[[agents]]` and no roles still loads: it gets one implicit role, `agent`, whose members all
call each other in the context `agents` (what Centralita rendered before roles existed), and
`[console] supervisors` gives the members it names the supervisor's console permission.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dialplan import names
from dialplan.validate import (
    ConfigError,
    Section,
    check_agent_name,
    check_extension,
    check_name,
    check_secret,
)

# What a member may do in the console, from least to most: an agent sees their own calls;
# quality staff also see the complaints; a supervisor sees every call, the callbacks and the
# complaints; an admin also administers members and queues at /admin.
CONSOLE_PERMISSIONS = ("agent", "quality", "supervisor", "admin")
LEGACY_ROLE = "agent"
LEGACY_CONTEXT = names.PHONES_CONTEXT
# Contexts the rendered extensions.conf defines for itself (or Asterisk reserves): a role's
# context must not be one of them, nor start with names.OWN_CONTEXT_PREFIX.
RESERVED_CONTEXTS = frozenset(
    {"general", "globals", "default", names.INCOMING_CONTEXT, names.MAILBOX_CONTEXT.lower()}
)
DEPRECATED_AGENTS = (
    "[[agents]] is deprecated: rename the tables [[members]] and give each a role "
    "(docs/admin.md, Roles and members)"
)
DEPRECATED_SUPERVISORS = (
    "[console] supervisors is deprecated: give those members a role whose console is "
    '"supervisor" (docs/admin.md, Roles and members)'
)


@dataclass(frozen=True)
class Role:
    """A kind of staff member and what the rendered dialplan and the console let it do."""

    name: str
    context: str  # the dialplan context of its members' phones
    calls: tuple[str, ...]  # the roles whose members it may dial by extension
    queue_calls: bool = True
    outbound: bool = False
    console: str = "agent"
    complaints_box: bool = False  # may open the complaints voicemail box from its phone


@dataclass(frozen=True)
class Member:
    """A person with a SIP phone: agents, supervisors, quality staff, managers."""

    extension: str
    name: str
    queues: tuple[str, ...]
    secret: str
    language: str = "en"
    role: str = LEGACY_ROLE
    voicemail: bool = True  # a box of their own; unanswered calls go to it


LEGACY_ROLES = (Role(LEGACY_ROLE, LEGACY_CONTEXT, (LEGACY_ROLE,)),)


def read_roles(root: Section) -> tuple[Role, ...]:
    """The `[[roles]]` tables; without any, the one implicit role of older configs."""
    if not root.has("roles"):
        return LEGACY_ROLES
    roles = []
    for s in root.tables("roles"):
        name = check_name(s.string("name"), s.file, s.key("name"))
        context = check_name(s.string("context", name), s.file, s.key("context"))
        if context.lower() in RESERVED_CONTEXTS or context.startswith(names.OWN_CONTEXT_PREFIX):
            raise ConfigError(
                s.file,
                s.key("context"),
                f"{context!r} is a context of Centralita's own dialplan: choose another name",
            )
        roles.append(
            Role(
                name=name,
                context=context,
                calls=tuple(check_name(r, s.file, s.key("calls")) for r in s.string_list("calls")),
                queue_calls=s.boolean("queue_calls", True),
                outbound=s.boolean("outbound", False),
                console=s.choice("console", CONSOLE_PERMISSIONS, "agent"),
                complaints_box=s.boolean("complaints_box", False),
            )
        )
        s.finish()
    if not roles:
        raise ConfigError(root.file, "roles", "define at least one role")
    return tuple(roles)


def member_table(root: Section) -> str:
    """`members`, or `agents` in an older config (never both)."""
    if root.has("members") and root.has("agents"):
        raise ConfigError(
            root.file, "agents", "use [[members]] only: this file has [[agents]] tables too"
        )
    return "agents" if root.has("agents") else "members"


def read_members(root: Section, table: str, language_codes: Sequence[str]) -> tuple[Member, ...]:
    """The `[[members]]` (or `[[agents]]`) tables, in file order."""
    members: list[Member] = []
    for s in root.tables(table):
        language = s.opt_string("language")
        # The phone's prompts (voicemail) are played in it: only a language the site has.
        # Unset stays "en", Asterisk's default, whatever the site's languages.
        if language is not None and language_codes and language not in language_codes:
            raise ConfigError(
                s.file,
                s.key("language"),
                f"no language {language!r} is defined "
                f"(the languages are: {', '.join(language_codes)})",
            )
        ext = check_extension(s.string("extension"), s.file, s.key("extension"))
        secret = s.secret("secret")
        if secret is None:
            raise ConfigError(s.file, s.key("secret"), "is required (the SIP password)")
        # An older [[agents]] table has no role: every agent has the implicit one.
        role = s.string("role", LEGACY_ROLE if table == "agents" else None)
        members.append(
            Member(
                extension=ext,
                name=check_agent_name(s.string("name"), s.file, s.key("name")),
                queues=tuple(
                    check_name(q, s.file, s.key("queues")) for q in s.string_list("queues", [])
                ),
                secret=check_secret(secret, s.file, s.key("secret")),
                language=language or "en",
                role=check_name(role, s.file, s.key("role")),
                voicemail=s.boolean("voicemail", True),
            )
        )
        s.finish()
    return tuple(members)


def check_roles(
    roles: Sequence[Role],
    members: Sequence[Member],
    table: str,
    file: str,
) -> None:
    """Every role named exists once; members in queues have a role that takes queue calls."""
    seen: dict[str, int] = {}
    contexts: dict[str, int] = {}
    for i, role in enumerate(roles):
        if role.name in seen:
            raise ConfigError(
                file,
                f"roles[{i}].name",
                f"{role.name!r} is defined twice (also roles[{seen[role.name]}])",
            )
        seen[role.name] = i
        if role.context in contexts:
            raise ConfigError(
                file,
                f"roles[{i}].context",
                f"{role.context!r} is the context of roles[{contexts[role.context]}] too",
            )
        contexts[role.context] = i
    for i, role in enumerate(roles):
        for other in role.calls:
            if other not in seen:
                raise ConfigError(file, f"roles[{i}].calls", f"role {other!r} is not defined")
    by_name = {r.name: r for r in roles}
    for i, member in enumerate(members):
        found = by_name.get(member.role)
        if found is None:
            raise ConfigError(
                file,
                f"{table}[{i}].role",
                f"role {member.role!r} is not defined (the roles are: {', '.join(seen)})",
            )
        if member.queues and not found.queue_calls:
            raise ConfigError(
                file,
                f"{table}[{i}].queues",
                f"role {found.name!r} takes no queue calls: leave the queues empty",
            )
