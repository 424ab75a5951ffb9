"""Rendering the Asterisk config files: golden files, parseability, references, injection."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from asterisk.config import Config
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from centralita.cmd_render import render_files
from centralita.settings import Settings, demo_text, parse_settings
from dialplan.render import check_rendered, output_names
from dialplan.timecond import range_holds
from dialplan.validate import ConfigError, check_display_name

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_RELOAD_SECRET = "golden-reload-secret"  # render makes a random one otherwise
UPDATE = os.environ.get("CENTRALITA_UPDATE_GOLDEN") == "1"
FILE = "centralita.toml"  # where the file would sit: nothing is read from disk


def load(text: str) -> Settings:
    return parse_settings(text, FILE, Path("site"), Path(FILE))


def demo_for(driver: str) -> str:
    text = demo_text()
    assert 'sip_driver = "pjsip"' in text
    return text.replace('sip_driver = "pjsip"', f'sip_driver = "{driver}"')


def edited(edit: Callable[[Any], None], driver: str = "pjsip") -> str:
    doc = tomlkit.parse(demo_for(driver))
    edit(doc)
    return tomlkit.dumps(doc)


class PystConfig(Config):  # type: ignore[misc]
    """pyst2's parser, reading the file with a `with` block (its own load() leaks the handle,
    which the test run's filterwarnings=error turns into a failure)."""

    def load(self) -> None:
        with open(self.filename, encoding="utf-8") as fh:
            self.raw_lines = fh.readlines()


def write_all(files: dict[str, str], folder: Path) -> dict[str, Config]:
    folder.mkdir(parents=True, exist_ok=True)
    parsed = {}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        parsed[name] = PystConfig(str(folder / name))
    return parsed


def separate_args(text: str) -> list[str]:
    """app.c __ast_app_separate_args with remove_chars (AST_STANDARD_APP_ARGS): how app_queue
    splits a `member =>` value (reload_single_member) and how applications split their data."""
    args, current, paren, quote, bracket = [], "", 0, False, 0
    chars = iter(text)
    for ch in chars:
        if ch == "(":
            paren += 1
        elif ch == ")" and paren:
            paren -= 1
        elif ch == "[":
            bracket += 1
        elif ch == "]" and bracket:
            bracket -= 1
        elif ch == '"':
            quote = not quote
            continue
        elif ch == "\\":
            current += next(chars, "")
            continue
        elif ch == "," and not paren and not quote and not bracket:
            args.append(current)
            current = ""
            continue
        current += ch
    return [*args, current]


def items(config: Config, category: str) -> list[tuple[str, str]]:
    found = [c for c in config.categories if c.name == category]
    assert found, f"no [{category}]"
    return [(i.name, i.value.strip()) for c in found for i in c.items]


def sections(config: Config, name: str) -> list[dict[str, str]]:
    return [{i.name: i.value.strip() for i in c.items} for c in config.categories if c.name == name]


# --------------------------------------------------------------------------- golden files


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_demo_renders_as_the_golden_files(driver: str) -> None:
    files = render_files(load(demo_for(driver)), reload_secret=GOLDEN_RELOAD_SECRET)
    folder = GOLDEN / driver
    if UPDATE:
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.conf"):
            old.unlink()
        for name, text in files.items():
            (folder / name).write_bytes(text.encode("utf-8"))
    assert sorted(p.name for p in folder.glob("*.conf")) == sorted(files)
    for name, text in files.items():
        assert (folder / name).read_bytes() == text.encode("utf-8"), (
            f"{driver}/{name} differs from the golden file; if the change is intended, "
            "rerun with CENTRALITA_UPDATE_GOLDEN=1 and review the diff"
        )


def test_driver_selects_the_sip_file() -> None:
    assert output_names(load(demo_for("pjsip")).site)[0] == "pjsip.conf"
    assert output_names(load(demo_for("sip")).site)[0] == "sip.conf"
    sip_files = render_files(load(demo_for("sip")))
    assert "pjsip.conf" not in sip_files
    assert "Dial(SIP/1001,20,tTxX)" in sip_files["extensions.conf"]
    assert "member => SIP/1002,0,John Smith,SIP/1002" in sip_files["queues.conf"]


# --------------------------------------------------------------------------- parse with pyst2


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_every_file_parses_and_names_every_agent(driver: str, tmp_path: Path) -> None:
    settings = load(demo_for(driver))
    site = settings.site
    parsed = write_all(render_files(settings), tmp_path)
    agents = {a.extension: a for a in site.members}
    # Three queue staff (a supervisor and two agents), a CEO, a manager and quality staff.
    assert len(agents) == 6
    context = {ext: site.role_of(ext).context for ext in agents}  # type: ignore[union-attr]
    assert set(context.values()) == {"agents", "supervisor", "ceo", "manager", "Complaints"}

    if driver == "pjsip":
        pjsip = parsed["pjsip.conf"]
        for ext, agent in agents.items():
            by_type = {s["type"]: s for s in sections(pjsip, ext)}
            assert sorted(by_type) == ["aor", "auth", "endpoint"]
            assert by_type["endpoint"]["context"] == context[ext]
            assert by_type["endpoint"]["auth"] == ext
            assert by_type["endpoint"]["aors"] == ext
            assert by_type["endpoint"]["callerid"] == f'"{agent.name}" <{ext}>'
            assert by_type["auth"]["password"] == agent.secret
            assert by_type["auth"]["username"] == ext
        assert sections(pjsip, "transport-udp")[0]["type"] == "transport"
    else:
        sip = parsed["sip.conf"]
        for ext, agent in agents.items():
            (peer,) = sections(sip, ext)
            assert peer["type"] == "friend"
            assert peer["host"] == "dynamic"
            assert peer["context"] == context[ext]
            assert peer["secret"] == agent.secret
            assert peer["mailbox"] == f"{ext}@VoiceMail"
            assert peer["allow"] == "ulaw,alaw"
        assert sections(sip, "general")[0]["allowguest"] == "no"

    # queues.conf: every member is a defined agent; every agent is in exactly its queues.
    queues = parsed["queues.conf"]
    device = site.device
    membership: dict[str, set[str]] = {}
    for queue in site.queues:
        (conf,) = sections(queues, queue.name)
        assert conf["strategy"] == "random"
        assert conf["timeout"] == str(queue.member_timeout_s)
        members = [v for k, v in items(queues, queue.name) if k == "member"]
        for member in members:
            interface, penalty, name, state = separate_args(member)
            ext = interface.split("/", 1)[1]
            assert ext in agents, f"{member} is not a defined agent"
            assert interface == state == device(ext)
            assert name == agents[ext].name
            assert penalty == "0"
            membership.setdefault(ext, set()).add(queue.name)
    for ext, agent in agents.items():
        assert membership.get(ext, set()) == set(agent.queues)

    boxes = dict(items(parsed["voicemail.conf"], "VoiceMail"))
    for ext, agent in agents.items():
        assert boxes[ext] == f"{ext},{agent.name}"
    assert boxes["600"] == "600,Complaints"

    ext_conf = parsed["extensions.conf"]
    for name in ("centralita-agent", "centralita-voicemail"):
        defined = {v.split(",")[0] for k, v in items(ext_conf, name) if k == "exten"}
        assert set(agents) <= defined, name
    # The agents' context: the agents and their supervisor, no one else.
    queue_staff = {ext for ext, a in agents.items() if a.role in ("agent", "supervisor")}
    agent_lines = [v for k, v in items(ext_conf, "agents")]
    dialled = {v.split(",")[0] for k, v in items(ext_conf, "agents") if k == "exten"}
    assert dialled == queue_staff | {"2000"}
    for ext in queue_staff:
        assert f"Dial({device(ext)},20,tTxX)" in " ".join(agent_lines)
    assert "2000,1,VoiceMailMain(@VoiceMail)" in agent_lines

    manager = parsed["manager.conf"]
    (user,) = sections(manager, "centralita")
    assert user["secret"] == "change-me-centralita"
    assert user["permit"] == "127.0.0.1/255.255.255.255"
    assert user["deny"] == "0.0.0.0/0.0.0.0"
    assert set(user["read"].split(",")) == {"system", "call", "agent", "dialplan", "cdr"}
    # No `command` for the user `serve` logs in as (issue 10, finding 14) ...
    # (`agent`: QueuePause/QueueAdd/QueueRemove from the console, issue 11.)
    assert set(user["write"].split(",")) == {"call", "originate", "reporting", "agent"}
    # ... only for the reload user, with a secret of its own.
    (reload,) = sections(manager, "centralita-reload")
    assert reload["write"] == "command" and reload["read"] == "system"
    assert reload["permit"] == "127.0.0.1/255.255.255.255"
    assert reload["deny"] == "0.0.0.0/0.0.0.0"
    assert len(reload["secret"]) >= 16 and reload["secret"] != user["secret"]
    featuremap = dict(items(parsed["features.conf"], "featuremap"))
    assert featuremap == {"automixmon": "*1", "atxfer": "*2", "blindxfer": "##"}


# --------------------------------------------------------------------------- the dialplan


def dialplan(files: dict[str, str], tmp_path: Path) -> dict[str, list[str]]:
    """context -> the `exten`/`same` values, as pyst2 reads extensions.conf."""
    conf = write_all({"extensions.conf": files["extensions.conf"]}, tmp_path)["extensions.conf"]
    out: dict[str, list[str]] = {}
    for category in conf.categories:
        out.setdefault(category.name, []).extend(
            i.value.strip() for i in category.items if i.name in ("exten", "same")
        )
    return out


def extensions_of(lines: list[str]) -> set[str]:
    return {line.split(",", 1)[0] for line in lines if not line.startswith("n")}


def test_every_static_jump_lands_on_a_defined_extension(tmp_path: Path) -> None:
    plan = dialplan(render_files(load(demo_text())), tmp_path)
    targets = 0
    for lines in plan.values():
        for line in lines:
            for ctx, ext in re.findall(r"[(?:]([a-z][a-z-]+),([^,(){}$]+),1\b", line):
                targets += 1
                assert ctx in plan, f"{line}: no context {ctx}"
                assert ext in extensions_of(plan[ctx]), f"{line}: no {ext} in {ctx}"
    assert targets > 20
    # The per-kind route contexts end in `i`, so a bogus route target reaches the fallback.
    for ctx in (
        "centralita-queue",
        "centralita-agent",
        "centralita-voicemail",
        "centralita-ivr",
        "centralita-customer-id",
        "centralita-time",
    ):
        assert "i" in extensions_of(plan[ctx]), ctx
        assert "s" not in extensions_of(plan[ctx]), ctx


def test_every_agi_call_is_followed_by_a_fallback(tmp_path: Path) -> None:
    plan = dialplan(render_files(load(demo_text())), tmp_path)
    scripts = set()
    for ctx, lines in plan.items():
        for index, line in enumerate(lines):
            call = re.search(r"AGI\(agi://127\.0\.0\.1:4573/([a-z-]+)", line)
            if not call:
                continue
            scripts.add(call.group(1))
            assert "Set(CENTRALITA_ROUTE=)" in lines[index - 1] or call.group(1) in (
                "survey-schedule"
            ), f"{ctx}: the route is not cleared before {line}"
            after = " ".join(lines[index + 1 : index + 3])
            if call.group(1) == "survey-schedule":
                assert "Return()" in after  # a hangup handler: the channel is gone already
            elif call.group(1) == "survey":
                assert "Hangup()" in after  # an outbound survey call is never queued
            else:
                assert "AGISTATUS" in after and "centralita-fallback,s,1" in after, ctx
    assert scripts == {
        "language",
        "customer-id",
        "manager",
        "callback",
        "survey",
        "survey-schedule",
    }


def test_route_dispatch_covers_every_kind(tmp_path: Path) -> None:
    plan = dialplan(render_files(load(demo_text())), tmp_path)
    route = " ".join(plan["centralita-route"])
    # The filter runs before any Goto built from the route.
    assert route.index("FILTER(-0-9A-Za-z_.:,${CENTRALITA_ROUTE})") < route.index("CUT(")
    for kind, ctx in (
        ("queue", "centralita-queue"),
        ("agent", "centralita-agent"),
        ("voicemail", "centralita-voicemail"),
        ("ivr", "centralita-ivr"),
        ("customer-id", "centralita-customer-id"),
        ("time", "centralita-time"),
    ):
        assert f'"${{CENTRALITA_ROUTE_KIND}}" = "{kind}"]?{ctx},${{CENTRALITA_ROUTE_TARGET}},1' in (
            route
        )
    assert '"${CENTRALITA_ROUTE}" = "callback"]?centralita-callback,s,1' in route
    assert '"${CENTRALITA_ROUTE}" = "hangup"]?centralita-hangup,s,1' in route
    assert '"${CENTRALITA_ROUTE}" = "manager"]?centralita-manager,s,1' in route
    assert plan["centralita-route"][-1] == "n(invalid),Goto(centralita-fallback,s,1)"


def test_manager_destination_reaches_the_returning_caller_flow(tmp_path: Path) -> None:
    def inside_manager(doc: Any) -> None:
        doc["time_conditions"][0]["inside"] = "manager"

    plan = dialplan(render_files(load(edited(inside_manager))), tmp_path)
    time_lines = " ".join(plan["centralita-time"])
    assert "centralita-manager,s,1" in time_lines
    assert any("agi://127.0.0.1:4573/manager" in line for line in plan["centralita-manager"])
    with pytest.raises(ConfigError, match="takes no target"):
        load(demo_text().replace('inside = "ivr:main"', 'inside = "manager:x"'))


def test_queue_handling(tmp_path: Path) -> None:
    settings = load(demo_text())
    plan = dialplan(render_files(settings), tmp_path)
    queue_lines = plan["centralita-queue"]
    text = "\n".join(queue_lines)
    for queue in settings.site.queues:
        assert f"n,Queue({queue.name},tx,,,{queue.timeout_s})" in text
    for status in ("TIMEOUT", "JOINEMPTY", "LEAVEEMPTY", "JOINUNAVAIL", "LEAVEUNAVAIL", "FULL"):
        assert f'"${{QUEUESTATUS}}" = "{status}"' in text
    record = " ".join(plan["centralita-record"])
    assert "Playback(centralita/recording-notice)" in record
    assert "MixMonitor(/var/spool/asterisk/monitor/${UNIQUEID}.wav,b)" in record
    assert "CHANNEL(hangup_handler_push)=centralita-survey-schedule,s,1" in " ".join(
        plan["centralita-survey-arm"]
    )
    # The fallback when FastAGI is down is the demo's server.fallback, a queue.
    assert plan["centralita-fallback"][-1] == "n,Goto(centralita-queue,support-en,1)"


def test_a_queue_with_record_false_is_not_recorded(tmp_path: Path) -> None:
    def no_recording(doc: Any) -> None:
        doc["queues"][1]["record"] = False

    settings = load(edited(no_recording))
    assert [q.record for q in settings.site.queues] == [True, False, True]
    recorded: dict[str, bool] = {}
    queue = ""
    for line in dialplan(render_files(settings), tmp_path)["centralita-queue"]:
        if ",1," in line:
            queue = line.split(",", 1)[0]
        recorded[queue] = recorded.get(queue, False) or "Gosub(centralita-record,s,1)" in line
    assert recorded == {"support-ar": True, "support-en": False, "support-fr": True, "i": False}

    def not_a_boolean(doc: Any) -> None:
        doc["queues"][1]["record"] = "yes"

    with pytest.raises(ConfigError, match="record"):
        load(edited(not_a_boolean))


def test_a_queue_language_sets_the_channel_language(tmp_path: Path) -> None:
    def edit(doc: Any) -> None:
        doc["queues"][2]["language"] = "fr"

    lines = dialplan(render_files(load(edited(edit))), tmp_path)["centralita-queue"]
    start = lines.index("support-fr,1,Set(CENTRALITA_QUEUE=support-fr)")
    assert lines[start + 1] == "n,Set(CHANNEL(language)=fr)"
    assert "n,Set(CHANNEL(language)=fr)" not in lines[:start]


def test_time_conditions_render_ranges_and_holidays(tmp_path: Path) -> None:
    def edit(doc: Any) -> None:
        tc = doc["time_conditions"][0]
        tc["holidays"] = ["2026-12-25", "2027-01-01"]
        tc["ranges"] = [
            {"days": "mon-fri", "start": "09:00", "end": "18:00"},
            {"days": "sat,sun", "start": "10:00", "end": "14:30"},
            {"days": "mon,wed-thu", "start": "22:00", "end": "24:00"},
        ]

    plan = dialplan(render_files(load(edited(edit))), tmp_path)
    lines = plan["centralita-time"]
    assert "n,Set(CENTRALITA_TODAY=${STRFTIME(${EPOCH},Europe/Madrid,%Y-%m-%d)})" in lines
    assert 'n,GotoIf($["${CENTRALITA_TODAY}" = "2026-12-25"]?outside)' in lines
    assert "n,GotoIfTime(09:00-17:59,mon-fri,*,*,Europe/Madrid?inside)" in lines
    assert "n,GotoIfTime(10:00-14:29,sat-sun,*,*,Europe/Madrid?inside)" in lines
    assert "n,GotoIfTime(22:00-23:59,mon&wed-thu,*,*,Europe/Madrid?inside)" in lines
    assert lines.index("n(outside),Goto(centralita-voicemail,600,1)") < lines.index(
        "n(inside),Goto(centralita-ivr,main,1)"
    )


ASTERISK_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]  # pbx_timing.c days[]


def asterisk_range(src: str, names: list[str]) -> set[int]:
    """pbx_timing.c get_range: `a-b&c`, ranges cyclic, names looked up case-insensitively."""
    mask: set[int] = set()
    for part in src.split("&"):
        first, _, last = part.partition("-")
        start = names.index(first)
        end = names.index(last) if last else start
        mask.add(end)
        while start != end:
            mask.add(start)
            start = (start + 1) % len(names)
    return mask


def asterisk_timerange(times: str) -> set[int]:
    """pbx_timing.c get_timerange: every minute from start to end, the end minute included."""
    start, end = ((int(t[:2]) * 60 + int(t[3:])) for t in times.split("-"))
    minutes = {end}
    while start != end:
        minutes.add(start)
        start = (start + 1) % (24 * 60)
    return minutes


def test_rendered_goto_if_time_matches_the_time_condition_model(tmp_path: Path) -> None:
    ranges = [
        {"days": "mon-fri", "start": "09:00", "end": "18:00"},
        {"days": "sat,sun", "start": "10:00", "end": "14:30"},
        {"days": "sun,mon", "start": "22:00", "end": "06:00"},
        {"days": "mon,wed-thu", "start": "00:00", "end": "24:00"},
        {"days": "fri-tue", "start": "12:15", "end": "12:16"},
    ]

    def edit(doc: Any) -> None:
        doc["time_conditions"][0]["ranges"] = ranges

    settings = load(edited(edit))
    lines = dialplan(render_files(settings), tmp_path)["centralita-time"]
    rendered = [
        re.fullmatch(r"n,GotoIfTime\(([^,]+),([^,]+),\*,\*,Europe/Madrid\?inside\)", line)
        for line in lines
        if "GotoIfTime" in line
    ]
    model = settings.site.time_conditions[0].ranges
    assert len(rendered) == len(model) == len(ranges)
    for match, r in zip(rendered, model, strict=True):
        assert match is not None
        days = asterisk_range(match.group(2), ASTERISK_DAYS)
        minutes = asterisk_timerange(match.group(1))
        for weekday in range(7):
            for minute in range(24 * 60):
                asterisk = (weekday + 1) % 7 in days and minute in minutes
                assert asterisk == range_holds(r, weekday, minute), (
                    match.group(0),
                    weekday,
                    minute,
                )


# --------------------------------------------------------------------------- injection


def set_agent(field: str, value: str) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        doc["members"][0][field] = value

    return edit


def set_queue_name(value: str) -> Callable[[Any], None]:
    def edit(doc: Any) -> None:
        old = doc["queues"][0]["name"]
        doc["queues"][0]["name"] = value
        for lang in doc["languages"]:
            if lang["queue"] == old:
                lang["queue"] = value
        for agent in doc["members"]:
            if "queues" in agent:
                agent["queues"] = [value if q == old else q for q in agent["queues"]]
        console = doc["console"]
        if "login_queues" in console:
            console["login_queues"] = [value if q == old else q for q in console["login_queues"]]

    return edit


ATTACKS = ["Eve\n[evil]", "[evil]", "Eve; x=1", "Eve, Mallory", "Eve = x"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_in_a_display_name_is_refused(attack: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(edited(set_agent("name", attack)))
    assert info.value.file == FILE
    assert info.value.key == "members[0].name"
    assert "display name" in info.value.reason


@pytest.mark.parametrize(
    "attack",
    ["secret-1001\n[evil]", "[evil]secret", "se;cret-1001", "se,cret-1001", "se=cret-1001"],
)
def test_injection_in_a_secret_is_refused(attack: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(edited(set_agent("secret", attack)))
    assert info.value.key == "members[0].secret"
    assert "secret contains characters Asterisk config files cannot hold" in info.value.reason


@pytest.mark.parametrize("attack", [*ATTACKS, "support en"])
def test_injection_in_a_queue_name_is_refused(attack: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(edited(set_queue_name(attack)))
    assert info.value.key in ("queues[0].name", "languages[0].queue")
    assert "is not a valid name" in info.value.reason


@pytest.mark.parametrize("attack", ["10a1", "1001\n[evil]", "1,2"])
def test_injection_in_an_extension_is_refused(attack: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(edited(set_agent("extension", attack)))
    assert info.value.key == "members[0].extension"
    assert "digits only" in info.value.reason


def render_error(edit: Callable[[Any], None]) -> ConfigError:
    settings = load(edited(edit))  # the model accepts it: the renderer must refuse
    with pytest.raises(ConfigError) as info:
        render_files(settings)
    return info.value


def test_render_refuses_a_language_that_would_break_a_line() -> None:
    # The model refuses it first (only the [[languages]] codes are accepted)...
    with pytest.raises(ConfigError, match=r"members\[0\]\.language: no language"):
        load(edited(set_agent("language", "en\n[evil]")))
    # ...and the renderer still does, for settings built without the model.
    settings = load(edited(lambda doc: None))
    agent = dataclasses.replace(settings.site.agents[0], language="en\n[evil]")
    site = dataclasses.replace(settings.site, members=(agent, *settings.site.members[1:]))
    with pytest.raises(ConfigError) as info:
        render_files(dataclasses.replace(settings, site=site))
    assert (info.value.file, info.value.key) == (FILE, "members[0].language")
    assert "not a language code" in info.value.reason


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("recordings_dir", "/tmp/x)\n[evil]", "must be an absolute path"),
        ("recordings_dir", "relative/dir", "must be an absolute path"),
        ("outbound_trunk", "PJSIP/{number}@trunk&PJSIP/666", "TECH/resource"),
        ("outbound_trunk", "Local/{number}@x)", "TECH/resource"),
    ],
)
def test_render_refuses_unsafe_asterisk_values(key: str, value: str, reason: str) -> None:
    def edit(doc: Any) -> None:
        doc["asterisk"][key] = value

    err = render_error(edit)
    assert err.key == f"asterisk.{key}"
    assert reason in err.reason


def test_render_refuses_an_agi_host_that_would_split_arguments() -> None:
    def edit(doc: Any) -> None:
        doc["server"]["agi_host"] = "127.0.0.1,evil"

    assert render_error(edit).key == "server.agi_host"


@pytest.mark.parametrize("name", ["h", "s", "i", "t"])
def test_render_refuses_queue_names_that_are_special_extensions(name: str) -> None:
    err = render_error(set_queue_name(name))
    assert err.key == "queues[0].name"
    assert "special dialplan extension" in err.reason


def test_render_refuses_names_equal_once_dashes_are_dropped() -> None:
    def edit(doc: Any) -> None:
        doc["queues"].append({"name": "supporten", "id": 9})

    err = render_error(edit)
    assert err.key == "queues[3].name"
    assert "Asterisk ignores '-'" in err.reason


def test_render_refuses_a_fallback_that_needs_fastagi() -> None:
    def edit(doc: Any) -> None:
        doc["server"]["fallback"] = "ivr:main"

    err = render_error(edit)
    assert err.key == "server.fallback"
    assert "FastAGI" in err.reason


def test_render_refuses_an_unknown_voicemail_box() -> None:
    def edit(doc: Any) -> None:
        doc["time_conditions"][0]["outside"] = "voicemail:999"

    err = render_error(edit)
    assert err.key == "time_conditions[0].outside"
    assert "not a voicemail box" in err.reason


def test_render_refuses_time_conditions_that_loop() -> None:
    def edit(doc: Any) -> None:
        doc["time_conditions"][0]["inside"] = "time:night"
        doc["time_conditions"].append(
            {"name": "night", "id": 2, "inside": "time:office-hours", "outside": "hangup"}
        )

    err = render_error(edit)
    assert err.key.startswith("time_conditions[")
    assert "office-hours -> night -> office-hours" in err.reason or (
        "night -> office-hours -> night" in err.reason
    )


def test_check_rendered_refuses_a_line_that_broke_out() -> None:
    check_rendered("x.conf", "[ok]\nkey = value\n; comment\nexten => s,1,NoOp()\n")
    for bad in (
        '[ok]\ncallerid = "Eve" <1>\nevil\n',
        "[ok]\nkey = a;b\n",
        "[ok]\nkey = a\rb\n",
        "[ok]\n[bad name]\n",
        "[ok]\nkey = value",
    ):
        with pytest.raises(ConfigError) as info:
            check_rendered("x.conf", bad)
        assert info.value.file == "x.conf"


# --------------------------------------------------------------------------- Unicode names


def test_arabic_and_french_display_names_render_in_utf8(tmp_path: Path) -> None:
    arabic = "أميرة حداد"
    settings = load(edited(set_agent("name", arabic)))
    files = render_files(settings)
    parsed = write_all(files, tmp_path)
    raw = (tmp_path / "pjsip.conf").read_bytes()
    assert f'callerid = "{arabic}" <1001>'.encode() in raw
    assert 'callerid = "Élodie Martin" <1003>'.encode() in raw
    assert f"member => PJSIP/1001,0,{arabic},PJSIP/1001" in files["queues.conf"]
    assert "member => PJSIP/1003,0,Élodie Martin,PJSIP/1003" in files["queues.conf"]
    boxes = dict(items(parsed["voicemail.conf"], "VoiceMail"))
    assert boxes["1001"] == f"1001,{arabic}"
    assert boxes["1003"] == "1003,Élodie Martin"
    endpoint = next(s for s in sections(parsed["pjsip.conf"], "1001") if s["type"] == "endpoint")
    assert endpoint["callerid"] == f'"{arabic}" <1001>'


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(
        alphabet=st.one_of(st.sampled_from(list("ab ()éع-'.")), st.characters()),
        min_size=1,
        max_size=30,
    )
)
def test_any_accepted_display_name_renders_valid_lines(name: str) -> None:
    try:
        check_display_name(name, FILE, "members[0].name")
    except ConfigError:
        return  # refused by the model: nothing reaches a file
    expected = ["PJSIP/1001", "0", name, "PJSIP/1001"]
    try:
        # The loader checks names as render does (one validator): either may refuse.
        files = render_files(load(edited(set_agent("name", name))))
    except ConfigError as exc:
        # Refused only when app_queue would really misread the member line.
        assert exc.key == "members[0].name"
        assert separate_args(f"PJSIP/1001,0,{name},PJSIP/1001") != expected
        return
    for file_name, text in files.items():
        check_rendered(file_name, text)
    assert f'callerid = "{name}" <1001>' in files["pjsip.conf"]
    member = next(
        line.split(" => ", 1)[1]
        for line in files["queues.conf"].splitlines()
        if line.startswith("member => PJSIP/1001,")
    )
    assert separate_args(member) == expected


def test_an_open_parenthesis_in_a_name_is_refused() -> None:
    # Refused when the config is loaded, by the same validator `agent add` uses.
    with pytest.raises(ConfigError) as info:
        load(edited(set_agent("name", "Eve (night")))
    err = info.value
    assert err.key == "members[0].name"
    assert "unbalanced parentheses" in err.reason
    assert separate_args("PJSIP/1,0,Eve (night,PJSIP/1") == ["PJSIP/1", "0", "Eve (night,PJSIP/1"]


@pytest.mark.parametrize("driver", ["pjsip", "sip"])
def test_rendered_files_point_only_at_documents_a_user_has(driver: str) -> None:
    # A rendered file may point only at what a user has: the docs/*.md of the repository.
    for name, text in render_files(load(demo_for(driver))).items():
        for mention in re.findall(r"[\w./-]+\.md\b", text):
            assert mention.startswith("docs/"), f"{name} refers to {mention}"
            assert (Path(__file__).parent.parent / mention).is_file(), (name, mention)
