"""`[[asterisk]]`: several servers in the settings, their errors, and `render` per server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from asterisks_support import two_servers
from test_web_support import AMI_SECRET

from centralita.cli import main
from centralita.cmd_render import one_set
from centralita.settings import AsteriskSettings, demo_text, parse_settings
from dialplan.validate import ConfigError

SECOND = '\n[[asterisk]]\nname = "b"\nami_port = 5039\nspool_dir = "/var/spool/asterisk-b"\n'
SPLIT = (["1001", "1002", "1100", "1101", "1200"], ["1003"])


def config_text(edit: object = None) -> str:
    # The demo's SIP passwords are public: render refuses them (tests/test_render_cli.py).
    text = demo_text().replace("demo-secret-", "own-secret-")
    return text if edit is None else edit(text)  # type: ignore[operator]


def several(agents: tuple[object, object] = (None, None)) -> str:
    return config_text(two_servers([5038, 5039], agents))  # type: ignore[arg-type]


def parse(text: str, tmp_path: Path) -> object:
    return parse_settings(text, "c.toml", tmp_path, None)


def test_the_single_table_is_one_server_named_asterisk(tmp_path: Path) -> None:
    settings = parse_settings(config_text(), "c.toml", tmp_path, None)
    (server,) = settings.asterisks
    assert server is settings.asterisk
    assert (server.name, server.agents, server.ami_port) == ("asterisk", None, 5038)
    assert server.hosts("1003")


def test_several_servers_each_with_its_ami_spool_and_agents(tmp_path: Path) -> None:
    settings = parse_settings(several(SPLIT), "c.toml", tmp_path, None)
    a, b = settings.asterisks
    assert settings.asterisk is a
    # a: Asterisk's own spool, the default (never read here).
    assert (a.name, a.ami_port, a.spool_dir) == ("a", 5038, AsteriskSettings().spool_dir)
    assert (b.name, b.ami_port, b.spool_dir) == ("b", 5039, tmp_path / "data" / "spool-b")
    assert a.agents == tuple(SPLIT[0]) and b.agents == ("1003",)
    assert a.hosts("1001") and not a.hosts("1003") and b.hosts("1003")
    # The call center's keys come from the first server.
    assert settings.site.sip_driver == "pjsip" and settings.site.company_numbers == ("0777",)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        # Two servers of one name.
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND.replace('"b"', '"a"')
            ),
            "asterisk[1].name",
            "'a' names two servers",
        ),
        # A server without a name, when there are several.
        (
            lambda t: t.replace("[asterisk]\n", "[[asterisk]]\n", 1) + SECOND,
            "asterisk[0].name",
            "is required",
        ),
        (
            lambda t: t.replace("[asterisk]\n", '[[asterisk]]\nname = "a b"\n', 1) + SECOND,
            "asterisk[0].name",
            "is not a valid name",
        ),
        # The call center's keys belong in the first server.
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND
                + 'company_numbers = ["0888"]\n'
            ),
            "asterisk[1].company_numbers",
            "write it in the first [[asterisk]] only",
        ),
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND
                + 'sip_bind = "0.0.0.0"\n'
            ),
            "asterisk[1].sip_bind",
            "is not an address:port",
        ),
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND.replace("5039", "5038")
            ),
            "asterisk[1].ami_port",
            "'a' already has the AMI at 127.0.0.1:5038",
        ),
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND.replace("/var/spool/asterisk-b", "/var/spool/asterisk")
            ),
            "asterisk[1].spool_dir",
            "'a' already uses /var/spool/asterisk",
        ),
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND
                + 'agents = ["1001", "9999"]\n'
            ),
            "asterisk[1].agents",
            "'9999' is not a member's extension",
        ),
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND
                + 'agents = ["1001", "1001"]\n'
            ),
            "asterisk[1].agents",
            "lists an extension twice",
        ),
        (
            lambda t: t.replace("[asterisk]\n", '[asterisk]\nagents = ["1001"]\n', 1),
            "asterisk.agents",
            "only with several servers",
        ),
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\nagents = ["1001"]\n', 1)
                + SECOND
                + 'agents = ["1002"]\n'
            ),
            "asterisk",
            "member 1003 is on no server",
        ),
        (
            lambda t: (
                t.replace("[asterisk]\n", '[[asterisk]]\nname = "a"\n', 1)
                + SECOND
                + "ami_prot = 1\n"
            ),
            "asterisk[1].ami_prot",
            "unknown key",
        ),
    ],
)
def test_config_errors_name_the_server_and_key(
    tmp_path: Path, text: object, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text(config_text()), tmp_path)  # type: ignore[operator]
    assert caught.value.key == key
    assert reason in caught.value.reason


def render(config: Path, out: Path) -> int:
    return main(["render", "--config", str(config), "--out", str(out)])


def endpoints(pjsip: str) -> list[str]:
    return re.findall(r"^\[(\d+)\]\ntype = endpoint", pjsip, flags=re.M)


def test_render_writes_one_set_when_the_servers_are_the_same(tmp_path: Path) -> None:
    config = tmp_path / "centralita.toml"
    # Both servers' AMI user, port... and secret alike (two_servers gives b AMI_SECRET).
    text = (
        several()
        .replace('ami_secret = "change-me-centralita"', f'ami_secret = "{AMI_SECRET}"')
        .replace("ami_port = 5039", 'ami_port = 5038\nami_host = "10.0.0.2"')
    )
    config.write_text(text, encoding="utf-8")
    settings = parse_settings(text, str(config), tmp_path, config)
    assert one_set(settings)
    out = tmp_path / "out"
    assert render(config, out) == 0
    assert (out / "pjsip.conf").is_file()
    assert not (out / "a").exists() and not (out / "b").exists()
    assert endpoints((out / "pjsip.conf").read_text()) == [
        "1001",
        "1002",
        "1003",
        "1100",
        "1101",
        "1200",
    ]


def test_render_writes_a_set_per_server_when_their_members_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "centralita.toml"
    text = several(SPLIT) + 'sip_bind = "10.0.0.2:5060"\n'  # b's own (a: the first's)
    config.write_text(text, encoding="utf-8")
    assert not one_set(parse_settings(text, str(config), tmp_path, config))
    out = tmp_path / "out"
    assert render(config, out) == 0
    assert not (out / "pjsip.conf").exists()
    a, b = out / "a", out / "b"
    assert endpoints((a / "pjsip.conf").read_text()) == ["1001", "1002", "1100", "1101", "1200"]
    assert endpoints((b / "pjsip.conf").read_text()) == ["1003"]
    assert "bind = 0.0.0.0:5060" in (a / "pjsip.conf").read_text()
    assert "bind = 10.0.0.2:5060" in (b / "pjsip.conf").read_text()
    # Queue members: only the server's own (1003 is in support-fr and support-en).
    queues_b = (b / "queues.conf").read_text()
    assert re.findall(r"^member => PJSIP/(\d+)", queues_b, flags=re.M) == ["1003", "1003"]
    assert "PJSIP/1003" not in (a / "queues.conf").read_text()
    # Each server's manager.conf lets in its own AMI user with its own secret and port.
    manager_b = (b / "manager.conf").read_text()
    assert "[centralita]" in manager_b and f"secret = {AMI_SECRET}" in manager_b
    assert "port = 5039" in manager_b and "port = 5038" in (a / "manager.conf").read_text()
    # The same dialplan flows on both.
    assert "AGI(agi://127.0.0.1:4573/language)" in (a / "extensions.conf").read_text()
    assert "AGI(agi://127.0.0.1:4573/language)" in (b / "extensions.conf").read_text()
    # Rendering again keeps each server's reload secret: nothing changes.
    capsys.readouterr()
    assert render(config, out) == 0
    statuses = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert statuses == ["unchanged"] * 12


def test_render_refuses_a_server_whose_members_miss_a_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server fallback rings agent 1003, whom server a does not host.
    text = several(SPLIT).replace(
        'fallback = "queue:support-en" # where a call goes when a flow fails',
        'fallback = "agent:1003"',
        1,
    )
    config = tmp_path / "centralita.toml"
    config.write_text(text, encoding="utf-8")
    assert render(config, tmp_path / "out") != 0
    err = capsys.readouterr().err
    assert "server.fallback: agent:1003 names an unknown agent" in err
    assert "in the files of Asterisk 'a'" in err
    assert not (tmp_path / "out").exists()
