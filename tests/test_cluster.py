"""Several Centralita instances: `[server] agi_instances` in the rendered dialplan, and
`[server] event_loop` (docs/cluster.md)."""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import pytest
from conftest import make_settings

from agi import loops
from centralita.cli import main
from centralita.cmd_render import render_files
from centralita.settings import Settings
from dialplan.instances import AgiInstance, parse_instance
from dialplan.validate import ConfigError

INSTANCES_LINE = '# agi_instances = ["10.0.0.1:4573", "10.0.0.2:4573"]'


def with_instances(tmp_path: Path, value: str) -> Settings:
    return make_settings(tmp_path, lambda text: text.replace(INSTANCES_LINE, value))


def extensions_conf(settings: Settings) -> str:
    return render_files(settings, "ami-secret-0123456789", "reload-secret-0123456789")[
        "extensions.conf"
    ]


def extension_blocks(conf: str) -> dict[str, list[str]]:
    """`context/exten` -> its lines (the `exten =>` line and every `same =>` after it)."""
    blocks: dict[str, list[str]] = {}
    context = ""
    current: list[str] | None = None
    for line in conf.splitlines():
        if line.startswith("["):
            context, current = line.strip("[]"), None
        elif line.startswith("exten => "):
            current = blocks.setdefault(f"{context}/{line.split()[2].split(',')[0]}", [])
            current.append(line)
        elif line.startswith(" same => ") and current is not None:
            current.append(line)
    return blocks


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.1:4573", AgiInstance("10.0.0.1", 4573)),
        ("10.0.0.2", AgiInstance("10.0.0.2", 4573)),
        ("agi-2.example.com:14573", AgiInstance("agi-2.example.com", 14573)),
        ("[::1]:4574", AgiInstance("::1", 4574)),
        ("[fd00::2]", AgiInstance("fd00::2", 4573)),
        ("::1", AgiInstance("::1", 4573)),
    ],
)
def test_an_instance_is_host_and_port(text: str, expected: AgiInstance) -> None:
    assert parse_instance(text, "f.toml", "server.agi_instances") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("10.0.0.1:0", "port must be a number"),
        ("10.0.0.1:70000", "port must be a number"),
        ("10.0.0.1:", "port must be a number"),
        ("host:port", "port must be a number"),
        ("0.0.0.0:4573", "listens everywhere"),
        ("[::]:4573", "listens everywhere"),
        ("a,b:4573", "not a host name"),
        ("evil)/x:4573", "not a host name"),
        ("", "not a host name"),
        ("[::1", "not [address]"),
        ("300.1.1.1", "not a host name"),
    ],
)
def test_a_bad_instance_is_a_clear_error(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(reason)) as info:
        parse_instance(text, "f.toml", "server.agi_instances")
    assert info.value.key == "server.agi_instances"


def test_instances_are_read_in_order_without_duplicates(tmp_path: Path) -> None:
    settings = with_instances(tmp_path, 'agi_instances = ["10.0.0.2:4573", "10.0.0.1"]')
    assert settings.server.agi_instances == (
        AgiInstance("10.0.0.2", 4573),
        AgiInstance("10.0.0.1", 4573),
    )
    assert make_settings(tmp_path).server.agi_instances == ()
    with pytest.raises(ConfigError, match="lists an instance twice"):
        with_instances(tmp_path, 'agi_instances = ["10.0.0.1", "10.0.0.1:4573"]')
    with pytest.raises(ConfigError, match="at most 8"):
        with_instances(tmp_path, f"agi_instances = {[f'10.0.0.{i}' for i in range(1, 10)]}")


def test_event_loop_is_asyncio_or_uvloop(tmp_path: Path) -> None:
    assert make_settings(tmp_path).server.event_loop == "asyncio"
    uv = make_settings(
        tmp_path, lambda t: t.replace('event_loop = "asyncio"', 'event_loop = "uvloop"')
    )
    assert uv.server.event_loop == "uvloop"
    with pytest.raises(ConfigError, match="must be one of asyncio, uvloop") as info:
        make_settings(
            tmp_path, lambda t: t.replace('event_loop = "asyncio"', 'event_loop = "trio"')
        )
    assert info.value.key == "server.event_loop"


def test_serve_on_uvloop_without_uvloop_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings(tmp_path, lambda t: t.replace('event_loop = "asyncio"', 'event_loop = "uvloop"'))
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now fails
    assert not loops.available("uvloop")
    with pytest.raises(loops.EventLoopUnavailable, match=re.escape("centralita[uvloop]")):
        loops.new_event_loop("uvloop")
    assert main(["serve", "--config", str(tmp_path / "centralita.toml")]) == 2
    err = capsys.readouterr().err
    assert "server.event_loop" in err and "pip install 'centralita[uvloop]'" in err
    assert not (tmp_path / "data").exists()  # refused before anything was started


# -- the rendered dialplan -----------------------------------------------------------------


def test_one_instance_renders_as_before(tmp_path: Path) -> None:
    """The default (agi_host:agi_port) and the same single instance written out render the
    same dialplan: one AGI() per flow, no fail-over lines (the golden files hold it)."""
    default = extensions_conf(make_settings(tmp_path))
    explicit = extensions_conf(with_instances(tmp_path, 'agi_instances = ["127.0.0.1:4573"]'))
    assert explicit == default
    assert "(tried)" not in default and "tried in this order" not in default
    assert default.count("AGI(agi://127.0.0.1:4573/") == 6


def test_every_agi_tries_each_instance_in_order_then_the_fallback(tmp_path: Path) -> None:
    settings = with_instances(
        tmp_path, 'agi_instances = ["10.0.0.1:4573", "[fd00::2]:4574", "agi-3.example.com"]'
    )
    urls = ["agi://10.0.0.1:4573", "agi://[fd00::2]:4574", "agi://agi-3.example.com:4573"]
    conf = extensions_conf(settings)
    blocks = {k: v for k, v in extension_blocks(conf).items() if any("AGI(" in x for x in v)}
    assert sorted(blocks) == [
        "centralita-callback/s",
        "centralita-customer-id/vip-check",
        "centralita-ivr/main",
        "centralita-manager/s",
        "centralita-survey-schedule/s",
        "centralita-survey/s",
    ]
    for name, lines in blocks.items():
        agis = [i for i, line in enumerate(lines) if ",AGI(" in line]
        assert [lines[i].split("AGI(")[1].rsplit("/", 1)[0] for i in agis] == urls, name
        script = {lines[i].split("AGI(")[1].split("/")[3] for i in agis}
        assert len(script) == 1, name  # the same flow and arguments on every instance
        # Between two instances: go on to the next only after a failure (and, where flows
        # route, no route); the jump lands on the line after the last AGI().
        then = "done" if name == "centralita-survey-schedule/s" else "tried"
        for before, after in itertools.pairwise(agis):
            assert after == before + 2, name
            skip = lines[before + 1]
            assert skip.endswith(f"?{then})") and '"${AGISTATUS}" != "FAILURE"' in skip, name
            assert ("${LEN(${CENTRALITA_ROUTE})} > 0" in skip) == (then == "tried"), name
        assert lines[agis[-1] + 1].startswith(f" same => n({then}),"), name
        assert sum(f"n({then})" in line for line in lines) == 1, name
    ivr = blocks["centralita-ivr/main"]
    assert ivr[-2] == (
        ' same => n(tried),GotoIf($[("${AGISTATUS}" = "FAILURE") & '
        "(${LEN(${CENTRALITA_ROUTE})} = 0)]?centralita-fallback,s,1)"
    )
    assert ";   1. agi://10.0.0.1:4573" in conf and ";   3. agi://agi-3.example.com:4573" in conf
