"""The call-center model: what one config file says about the site.

`load_site()` turns the parsed TOML into frozen dataclasses and validates every name, value and
reference, raising `ConfigError` (file, key, reason) on the first problem. Both the FastAGI flows
and the config renderer read this model; nothing else interprets the TOML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dialplan.roles import (
    DEPRECATED_AGENTS,
    DEPRECATED_SUPERVISORS,
    Member,
    Role,
    check_roles,
    member_table,
    read_members,
    read_roles,
)
from dialplan.validate import (
    ConfigError,
    Section,
    check_bind,
    check_display_name,
    check_extension,
    check_name,
    check_number,
)

SipDriver = Literal["pjsip", "sip"]
DEVICE_PREFIX: dict[str, str] = {"pjsip": "PJSIP/", "sip": "SIP/"}  # how a phone's device starts
DESTINATION_KINDS = (
    "queue",
    "ivr",
    "customer-id",
    "time",
    "agent",
    "voicemail",
    "manager",
    "hangup",
)
# Destinations without a target: the returning-caller lookup, and hanging up.
BARE_KINDS = ("manager", "hangup")
QUEUE_STRATEGIES = (
    "ringall",
    "leastrecent",
    "fewestcalls",
    "random",
    "rrmemory",
    "roundrobin",
    "linear",
    "wrandom",
    "rrordered",
)
CUSTOMER_ID_MODES = ("none", "crm-bool", "crm-destination")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# QUEUESTATUS values after which the caller is offered a callback (app_queue.c queue_results
# 1847-1857; JOINUNAVAIL/LEAVEUNAVAIL are never set in 20.20.1 but listed for later versions).
CALLBACK_QUEUESTATUSES = (
    "TIMEOUT",
    "JOINEMPTY",
    "LEAVEEMPTY",
    "JOINUNAVAIL",
    "LEAVEUNAVAIL",
    "FULL",
)
PROMPT_RE = re.compile(r"^[A-Za-z0-9_/-]{1,80}$")


@dataclass(frozen=True)
class Destination:
    """Where a call goes: `queue:NAME`, `ivr:NAME`, `customer-id:NAME`, `time:NAME`,
    `agent:EXT`, `voicemail:BOX`, `manager` (the returning caller's last agent, else
    `[manager] fallback`) or `hangup`."""

    kind: str
    target: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind in BARE_KINDS else f"{self.kind}:{self.target}"

    @classmethod
    def parse(cls, text: str, file: str = "<destination>", key: str = "destination") -> Destination:
        kind, _, target = text.partition(":")
        if kind not in DESTINATION_KINDS:
            raise ConfigError(
                file,
                key,
                f"{text!r} is not a destination: use one of queue:NAME, ivr:NAME, "
                "customer-id:NAME, time:NAME, agent:EXT, voicemail:BOX, manager, hangup",
            )
        if kind in BARE_KINDS:
            if target:
                raise ConfigError(file, key, f"{kind!r} takes no target")
            return cls(kind)
        if kind in ("agent", "voicemail"):
            check_extension(target, file, key)
        else:
            check_name(target, file, key)
        return cls(kind, target)


HANGUP = Destination("hangup")


@dataclass(frozen=True)
class Language:
    digit: str
    code: str
    queue: str
    name: str
    prompt: str  # the menu option, spoken in its own language ("for English press 2")


@dataclass(frozen=True)
class Queue:
    name: str
    id: int
    strategy: str = "random"
    timeout_s: int = 10  # how long a caller waits in the queue before the callback offer
    member_timeout_s: int = 15  # how long each agent's phone rings
    retry_s: int = 5
    wrapup_s: int = 0
    # A caller answered within this many seconds counts toward the service level
    # (queues.conf `servicelevel`; QueueParams reports it as ServiceLevel/ServicelevelPerf).
    service_level_s: int = 20
    maxlen: int = 0
    joinempty: str = "yes"
    leavewhenempty: str = "no"
    survey: bool = False
    language: str | None = None
    # Record the queue's calls with MixMonitor (to `[asterisk] recordings_dir`/<Uniqueid>.wav,
    # after the recording notice), played from the call's row in /calls.
    record: bool = True


# Everyone with a phone is a member (dialplan/roles.py); agents are members too.
Agent = Member


@dataclass(frozen=True)
class CustomerIdNode:
    name: str
    id: int
    mode: str
    url: str | None
    prompt: str
    min_digits: int
    max_digits: int
    timeout_s: int
    retries: int
    success: Destination
    failure: Destination


@dataclass(frozen=True)
class TimeRange:
    days: tuple[int, ...]  # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True)
class TimeCondition:
    name: str
    id: int
    timezone: str
    ranges: tuple[TimeRange, ...]
    holidays: tuple[date, ...]
    inside: Destination
    outside: Destination


@dataclass(frozen=True)
class Ivr:
    name: str = "main"
    id: int = 1
    timeout_s: int = 10
    retries: int = 2
    default: Destination = HANGUP
    welcome: str = "centralita/welcome"
    invalid: str = "centralita/invalid-option"
    recording_notice: bool = True


@dataclass(frozen=True)
class CallbackSettings:
    min_digits: int = 6
    max_digits: int = 15
    retries: int = 3
    timeout_s: int = 10


@dataclass(frozen=True)
class SurveySettings:
    delay_s: int = 60
    threshold: int = 5
    voicemail_box: str = "600"
    retries: int = 2
    timeout_s: int = 8
    max_retries: int = 2
    retry_time_s: int = 300
    wait_time_s: int = 45
    callerid: str = "0777"


@dataclass(frozen=True)
class ManagerSettings:
    window_h: int = 24
    ring_s: int = 15
    dispositions: tuple[str, ...] = ("ANSWERED", "NO ANSWER", "BUSY")
    fallback: Destination = HANGUP
    default_region: str = "ES"
    match_digits: int = 10
    min_digits: int = 6


@dataclass(frozen=True)
class CrmSettings:
    user_agent: str = "Centralita"
    timeout_s: float = 3.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    incoming_url: str | None = None
    outgoing_url: str | None = None


@dataclass(frozen=True)
class Site:
    """Everything the config says about the call center itself."""

    sip_driver: SipDriver
    company_numbers: tuple[str, ...]
    languages: tuple[Language, ...]
    queues: tuple[Queue, ...]
    members: tuple[Member, ...]
    customer_id: tuple[CustomerIdNode, ...]
    time_conditions: tuple[TimeCondition, ...]
    ivr: Ivr
    entry: Destination  # where a call to a company number goes first
    callback: CallbackSettings
    survey: SurveySettings
    manager: ManagerSettings
    crm: CrmSettings
    recordings_dir: str = "/var/spool/asterisk/monitor"
    outbound_callerid: str = "0777"
    outbound_trunk: str = "PJSIP/{number}@trunk"
    sip_bind: str = "0.0.0.0:5060"  # where the SIP driver listens for the agents' phones
    dispositions: tuple[str, ...] = ("sale", "support", "no-interest", "call-back")
    # Members listed in the deprecated `[console] supervisors`: a supervisor's console
    # whatever their role (console_permission).
    supervisors: tuple[str, ...] = ()
    roles: tuple[Role, ...] = ()
    member_table: str = "members"  # `agents` in an older config: error keys name that table
    notices: tuple[str, ...] = ()  # deprecations the loader reports
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def agents(self) -> tuple[Member, ...]:
        """Every member (the name from before roles: agents, managers, quality staff)."""
        return self.members

    def member(self, extension: str) -> Member | None:
        return next((m for m in self.members if m.extension == extension), None)

    def role(self, name: str) -> Role | None:
        return next((r for r in self.roles if r.name == name), None)

    def role_of(self, extension: str) -> Role | None:
        member = self.member(extension)
        return None if member is None else self.role(member.role)

    def console_permission(self, extension: str) -> str | None:
        """The member's console permission (CONSOLE_PERMISSIONS), None for a stranger."""
        role = self.role_of(extension)
        if role is None:
            return None
        if extension in self.supervisors and role.console in ("agent", "quality"):
            return "supervisor"
        return role.console

    def queue(self, name: str) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    def agent(self, extension: str) -> Member | None:
        return self.member(extension)

    def node(self, name: str) -> CustomerIdNode | None:
        return next((n for n in self.customer_id if n.name == name), None)

    def time_condition(self, name: str) -> TimeCondition | None:
        return next((t for t in self.time_conditions if t.name == name), None)

    def device(self, extension: str) -> str:
        """The agent's device as Asterisk names it: `PJSIP/1001` or `SIP/1001`."""
        return DEVICE_PREFIX[self.sip_driver] + extension


def _prompt(section: Section, name: str, default: str) -> str:
    value = section.string(name, default)
    if not PROMPT_RE.match(value):
        raise ConfigError(section.file, section.key(name), f"{value!r} is not a valid prompt id")
    return value


def _destination(section: Section, name: str, default: str | None = None) -> Destination:
    return Destination.parse(section.string(name, default), section.file, section.key(name))


def _parse_time(section: Section, key: str, text: str) -> time:
    try:
        hours, minutes = text.split(":")
        if hours == "24" and minutes == "00":
            return time(23, 59, 59, 999999)
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(section.file, key, f"{text!r} is not a time HH:MM") from None


def _parse_days(section: Section, key: str, text: str) -> tuple[int, ...]:
    days: set[int] = set()
    for part in text.lower().split(","):
        part = part.strip()
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ConfigError(section.file, key, f"{part!r} is not a day or range like mon-fri")
        a = WEEKDAYS.index(first)
        b = WEEKDAYS.index(last) if last else a
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return tuple(sorted(days))


def _languages(root: Section) -> tuple[Language, ...]:
    languages = []
    for s in root.tables("languages"):
        digit = s.string("digit")
        if len(digit) != 1 or digit not in "123456789":
            raise ConfigError(s.file, s.key("digit"), f"{digit!r} must be one key 1-9")
        code = s.string("code")
        if not re.match(r"^[a-z]{2,3}(_[A-Z]{2})?$", code):
            raise ConfigError(s.file, s.key("code"), f"{code!r} is not a language code like 'en'")
        languages.append(
            Language(
                digit=digit,
                code=code,
                queue=check_name(s.string("queue"), s.file, s.key("queue")),
                name=check_display_name(s.string("name", code), s.file, s.key("name")),
                prompt=_prompt(s, "prompt", f"{code}/centralita/menu"),
            )
        )
        s.finish()
    return tuple(languages)


def _queues(root: Section) -> tuple[Queue, ...]:
    queues = []
    for s in root.tables("queues"):
        queues.append(
            Queue(
                name=check_name(s.string("name"), s.file, s.key("name")),
                id=s.integer("id", minimum=1),
                strategy=s.choice("strategy", QUEUE_STRATEGIES, "random"),
                timeout_s=s.integer("timeout_s", 10, minimum=1, maximum=86400),
                member_timeout_s=s.integer("member_timeout_s", 15, minimum=1, maximum=600),
                retry_s=s.integer("retry_s", 5, minimum=1, maximum=600),
                wrapup_s=s.integer("wrapup_s", 0, minimum=0, maximum=3600),
                service_level_s=s.integer("service_level_s", 20, minimum=1, maximum=3600),
                maxlen=s.integer("maxlen", 0, minimum=0, maximum=10000),
                joinempty=s.choice(
                    "joinempty", ("yes", "no", "strict", "loose", "unavailable"), "yes"
                ),
                leavewhenempty=s.choice(
                    "leavewhenempty", ("yes", "no", "strict", "loose", "unavailable"), "no"
                ),
                survey=s.boolean("survey", False),
                language=s.opt_string("language"),
                record=s.boolean("record", True),
            )
        )
        s.finish()
    return tuple(queues)


def _customer_id(root: Section) -> tuple[CustomerIdNode, ...]:
    nodes = []
    for s in root.tables("customer_id"):
        mode = s.choice("mode", CUSTOMER_ID_MODES, "none")
        url = s.opt_string("url")
        if mode != "none" and not url:
            raise ConfigError(s.file, s.key("url"), f"is required in mode {mode!r}")
        if url is not None and not re.match(r"^https?://", url):
            raise ConfigError(s.file, s.key("url"), f"{url!r} must start with http:// or https://")
        if s.has("id_length"):
            min_digits = max_digits = s.integer("id_length", minimum=1, maximum=32)
        else:
            min_digits = s.integer("min_digits", 1, minimum=1, maximum=32)
            max_digits = s.integer("max_digits", 12, minimum=1, maximum=32)
        if max_digits < min_digits:
            raise ConfigError(s.file, s.key("max_digits"), "must not be below min_digits")
        nodes.append(
            CustomerIdNode(
                name=check_name(s.string("name"), s.file, s.key("name")),
                id=s.integer("id", minimum=1),
                mode=mode,
                url=url,
                prompt=_prompt(s, "prompt", "centralita/enter-customer-id"),
                min_digits=min_digits,
                max_digits=max_digits,
                timeout_s=s.integer("timeout_s", 10, minimum=1, maximum=120),
                retries=s.integer("retries", 3, minimum=1, maximum=10),
                success=_destination(s, "success"),
                failure=_destination(s, "failure"),
            )
        )
        s.finish()
    return tuple(nodes)


def _time_conditions(root: Section) -> tuple[TimeCondition, ...]:
    conditions = []
    for s in root.tables("time_conditions"):
        tz = s.string("timezone", "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(s.file, s.key("timezone"), f"unknown time zone {tz!r}") from None
        ranges = []
        for r in s.tables("ranges"):
            ranges.append(
                TimeRange(
                    days=_parse_days(r, r.key("days"), r.string("days", "mon-sun")),
                    start=_parse_time(r, r.key("start"), r.string("start", "00:00")),
                    end=_parse_time(r, r.key("end"), r.string("end", "24:00")),
                )
            )
            r.finish()
        holidays = []
        for text in s.string_list("holidays", []):
            try:
                holidays.append(date.fromisoformat(text))
            except ValueError:
                raise ConfigError(
                    s.file, s.key("holidays"), f"{text!r} is not a date YYYY-MM-DD"
                ) from None
        conditions.append(
            TimeCondition(
                name=check_name(s.string("name"), s.file, s.key("name")),
                id=s.integer("id", minimum=1),
                timezone=tz,
                ranges=tuple(ranges),
                holidays=tuple(holidays),
                inside=_destination(s, "inside"),
                outside=_destination(s, "outside"),
            )
        )
        s.finish()
    return tuple(conditions)


def _check_unique(file: str, key: str, values: list[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for where, value in values:
        if value in seen:
            raise ConfigError(file, where, f"{value!r} is defined twice (also at {seen[value]})")
        seen[value] = where


def check_destination(site: Site, dest: Destination, file: str, key: str) -> None:
    known: dict[str, set[str]] = {
        "queue": {q.name for q in site.queues},
        "ivr": {site.ivr.name},
        "customer-id": {n.name for n in site.customer_id},
        "time": {t.name for t in site.time_conditions},
        "agent": {a.extension for a in site.members},
    }
    if dest.kind in known and dest.target not in known[dest.kind]:
        raise ConfigError(file, key, f"{dest} names a {dest.kind} that is not defined")


def validate_references(site: Site, file: str) -> None:
    """Every queue, agent, node and destination named anywhere must exist, once."""
    _check_unique(
        file, "queues", [(f"queues[{i}].name", q.name) for i, q in enumerate(site.queues)]
    )
    _check_unique(
        file, "queues", [(f"queues[{i}].id", str(q.id)) for i, q in enumerate(site.queues)]
    )
    table = site.member_table
    _check_unique(
        file, table, [(f"{table}[{i}].extension", a.extension) for i, a in enumerate(site.members)]
    )
    _check_unique(
        file,
        "languages",
        [(f"languages[{i}].digit", la.digit) for i, la in enumerate(site.languages)],
    )
    _check_unique(
        file,
        "customer_id",
        [(f"customer_id[{i}].name", n.name) for i, n in enumerate(site.customer_id)],
    )
    _check_unique(
        file,
        "customer_id",
        [(f"customer_id[{i}].id", str(n.id)) for i, n in enumerate(site.customer_id)],
    )
    _check_unique(
        file,
        "time_conditions",
        [(f"time_conditions[{i}].name", t.name) for i, t in enumerate(site.time_conditions)],
    )
    # CRM replies name time conditions by id ("2,Y", dialplan/destinations.py): one id, one.
    _check_unique(
        file,
        "time_conditions",
        [(f"time_conditions[{i}].id", str(t.id)) for i, t in enumerate(site.time_conditions)],
    )
    queue_names = {q.name for q in site.queues}
    agent_exts = {a.extension for a in site.members}
    for ext in site.supervisors:
        if ext not in agent_exts:
            raise ConfigError(file, "console.supervisors", f"member {ext!r} is not defined")
    check_roles(site.roles, site.members, table, file)
    for i, lang in enumerate(site.languages):
        if lang.queue not in queue_names:
            raise ConfigError(file, f"languages[{i}].queue", f"queue {lang.queue!r} is not defined")
    for i, agent in enumerate(site.members):
        for q in agent.queues:
            if q not in queue_names:
                raise ConfigError(file, f"{table}[{i}].queues", f"queue {q!r} is not defined")
    if site.survey.voicemail_box in agent_exts:
        raise ConfigError(
            file, "survey.voicemail_box", "the complaints box must not be a member's extension"
        )
    for i, node in enumerate(site.customer_id):
        check_destination(site, node.success, file, f"customer_id[{i}].success")
        check_destination(site, node.failure, file, f"customer_id[{i}].failure")
    for i, tc in enumerate(site.time_conditions):
        check_destination(site, tc.inside, file, f"time_conditions[{i}].inside")
        check_destination(site, tc.outside, file, f"time_conditions[{i}].outside")
    check_destination(site, site.ivr.default, file, "ivr.default")
    check_destination(site, site.entry, file, "asterisk.entry")
    check_destination(site, site.manager.fallback, file, "manager.fallback")
    if site.manager.fallback.kind != "queue":
        raise ConfigError(file, "manager.fallback", "must be a queue:NAME destination")


def load_site(root: Section) -> Site:
    """Read the call-center sections of the config (everything but [server] and [webhooks])."""
    asterisk = root.table("asterisk")
    driver = asterisk.choice("sip_driver", ("pjsip", "sip"), "pjsip")
    numbers = tuple(
        check_number(n, root.file, "asterisk.company_numbers")
        for n in asterisk.string_list("company_numbers", ["0777"])
    )
    entry = _destination(asterisk, "entry", "ivr:main")
    recordings_dir = asterisk.string("recordings_dir", "/var/spool/asterisk/monitor")
    outbound_callerid = check_number(
        asterisk.string("outbound_callerid", numbers[0] if numbers else "0777"),
        root.file,
        "asterisk.outbound_callerid",
    )
    outbound_trunk = asterisk.string("outbound_trunk", "PJSIP/{number}@trunk")
    if "{number}" not in outbound_trunk or any(c in outbound_trunk for c in "\n;,[]"):
        raise ConfigError(
            root.file, "asterisk.outbound_trunk", "must contain {number} and no ';', ',', '[', ']'"
        )

    sip_bind = check_bind(
        asterisk.string("sip_bind", "0.0.0.0:5060"), root.file, "asterisk.sip_bind"
    )

    ivr_s = root.table("ivr")
    ivr = Ivr(
        name=check_name(ivr_s.string("name", "main"), root.file, "ivr.name"),
        id=ivr_s.integer("id", 1, minimum=1),
        timeout_s=ivr_s.integer("timeout_s", 10, minimum=1, maximum=120),
        retries=ivr_s.integer("retries", 2, minimum=0, maximum=10),
        default=_destination(ivr_s, "default", "hangup"),
        welcome=_prompt(ivr_s, "welcome", "centralita/welcome"),
        invalid=_prompt(ivr_s, "invalid", "centralita/invalid-option"),
        recording_notice=ivr_s.boolean("recording_notice", True),
    )
    ivr_s.finish()

    cb = root.table("callback")
    callback = CallbackSettings(
        min_digits=cb.integer("min_digits", 6, minimum=1, maximum=30),
        max_digits=cb.integer("max_digits", 15, minimum=1, maximum=30),
        retries=cb.integer("retries", 3, minimum=1, maximum=10),
        timeout_s=cb.integer("timeout_s", 10, minimum=1, maximum=120),
    )
    if callback.max_digits < callback.min_digits:
        raise ConfigError(root.file, "callback.max_digits", "must not be below min_digits")
    cb.finish()

    sv = root.table("survey")
    survey = SurveySettings(
        delay_s=sv.integer("delay_s", 60, minimum=0, maximum=86400),
        threshold=sv.integer("threshold", 5, minimum=0, maximum=11),
        voicemail_box=check_extension(
            sv.string("voicemail_box", "600"), root.file, "survey.voicemail_box"
        ),
        retries=sv.integer("retries", 2, minimum=1, maximum=10),
        timeout_s=sv.integer("timeout_s", 8, minimum=1, maximum=60),
        max_retries=sv.integer("max_retries", 2, minimum=0, maximum=20),
        retry_time_s=sv.integer("retry_time_s", 300, minimum=1),
        wait_time_s=sv.integer("wait_time_s", 45, minimum=1, maximum=600),
        callerid=check_number(
            sv.string("callerid", outbound_callerid), root.file, "survey.callerid"
        ),
    )
    sv.finish()

    mg = root.table("manager")
    dispositions = tuple(mg.string_list("dispositions", ["ANSWERED", "NO ANSWER", "BUSY"]))
    for d in dispositions:
        if d not in ("ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION", "CANCEL"):
            raise ConfigError(root.file, "manager.dispositions", f"{d!r} is not a CDR disposition")
    manager = ManagerSettings(
        window_h=mg.integer("window_h", 24, minimum=1, maximum=24 * 365),
        ring_s=mg.integer("ring_s", 15, minimum=1, maximum=300),
        dispositions=dispositions,
        fallback=_destination(mg, "fallback", f"queue:{_first_queue(root)}"),
        default_region=mg.string("default_region", "ES").upper(),
        match_digits=mg.integer("match_digits", 10, minimum=4, maximum=15),
        min_digits=mg.integer("min_digits", 6, minimum=1, maximum=15),
    )
    mg.finish()

    crm_s = root.table("crm")
    crm = CrmSettings(
        user_agent=crm_s.string("user_agent", "Centralita"),
        timeout_s=crm_s.number("timeout_s", 3.0, minimum=0.1),
        breaker_failures=crm_s.integer("breaker_failures", 5, minimum=1),
        breaker_cooldown_s=crm_s.number("breaker_cooldown_s", 30.0),
        incoming_url=crm_s.opt_string("incoming_url"),
        outgoing_url=crm_s.opt_string("outgoing_url"),
    )
    if any(c in crm.user_agent for c in "\r\n\0"):
        raise ConfigError(root.file, "crm.user_agent", "must not contain line breaks")
    crm_s.finish()

    console = root.table("console")
    site_dispositions = tuple(
        console.string_list("dispositions", ["sale", "support", "no-interest", "call-back"])
    )
    supervisors = tuple(
        check_extension(ext, root.file, "console.supervisors")
        for ext in console.string_list("supervisors", [])
    )

    languages = _languages(root)
    table = member_table(root)
    notices = [DEPRECATED_AGENTS] if table == "agents" else []
    if supervisors:
        notices.append(DEPRECATED_SUPERVISORS)
    site = Site(
        sip_driver="sip" if driver == "sip" else "pjsip",
        company_numbers=numbers,
        languages=languages,
        queues=_queues(root),
        members=read_members(root, table, [la.code for la in languages]),
        customer_id=_customer_id(root),
        time_conditions=_time_conditions(root),
        ivr=ivr,
        entry=entry,
        callback=callback,
        survey=survey,
        manager=manager,
        crm=crm,
        recordings_dir=recordings_dir,
        outbound_callerid=outbound_callerid,
        outbound_trunk=outbound_trunk,
        sip_bind=sip_bind,
        dispositions=site_dispositions,
        supervisors=supervisors,
        roles=read_roles(root),
        member_table=table,
        notices=tuple(notices),
    )
    validate_references(site, root.file)
    return site


def _first_queue(root: Section) -> str:
    queues = root.data.get("queues")
    if isinstance(queues, list) and queues and isinstance(queues[0], Mapping):
        name = queues[0].get("name")
        if isinstance(name, str):
            return name
    return "support"
