"""centralita/live.py: what a reload applies, what waits for a restart, and who is told."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from centralita import agents_admin
from centralita.agents_admin import MemberFields
from centralita.live import LiveSettings
from centralita.settings import Settings, demo_text, load_settings, parse_settings
from dialplan.validate import ConfigError

OWN_SECRETS = demo_text().replace("demo-secret-", "own-secret-")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "centralita.toml"
    path.write_text(OWN_SECRETS, encoding="utf-8")
    return path


def edited(config: Path, text: str) -> Settings:
    config.write_text(text, encoding="utf-8")
    return load_settings(config)


def test_a_reload_takes_the_site_and_console_and_keeps_what_needs_a_restart(
    config: Path,
) -> None:
    live = LiveSettings(load_settings(config))
    started = live.current
    text = agents_admin.add_member(
        OWN_SECRETS,
        "1102",
        MemberFields(name="Ana Gil", role="agent", queues=["support-en"], secret="s-1102-sip"),
    )
    text = text.replace("web_port = 8080", "web_port = 8081", 1)
    text = text.replace('sip_driver = "pjsip"', 'sip_driver = "sip"', 1)
    on_file = edited(config, text)
    assert on_file.server.web_port == 8081 and on_file.site.sip_driver == "sip"

    done = live.apply(on_file)

    assert done.applied and done.waiting == ("server", "sip_driver")
    assert live.current.site.member("1102") is not None
    assert live.current.site.members == on_file.site.members
    # Restart-only: the running values stay, whatever the file says.
    assert live.current.server == started.server
    assert live.current.site.sip_driver == started.site.sip_driver == "pjsip"
    assert live.current.site.crm == started.site.crm


def test_each_part_is_told_in_order_and_one_failing_does_not_stop_the_others(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveSettings(load_settings(config))
    told: list[tuple[str, int]] = []

    def broken(settings: Settings) -> None:
        raise RuntimeError("cannot take it")

    live.on_reload("first", lambda s: told.append(("first", len(s.site.members))))
    live.on_reload("broken", broken)
    live.on_reload("last", lambda s: told.append(("last", len(s.site.members))))
    before = len(live.current.site.members)
    with caplog.at_level(logging.ERROR, logger="centralita.live"):
        live.apply(edited(config, agents_admin.remove_member(OWN_SECRETS, "1200")))
    assert told == [("first", before - 1), ("last", before - 1)]
    assert "broken could not take the new settings" in caplog.text


def test_a_file_with_nothing_new_tells_nobody(config: Path) -> None:
    live = LiveSettings(load_settings(config))
    told: list[Settings] = []
    live.on_reload("counter", told.append)
    assert live.reload_file().applied is False
    # A new SIP secret is Asterisk's: it is taken (nothing else reads it), the parts are told.
    edited(config, agents_admin.edit_member(OWN_SECRETS, "1002", MemberFields(secret="x" * 16)))
    assert live.reload_file().applied is True and len(told) == 1


def test_a_file_that_does_not_load_changes_nothing(config: Path) -> None:
    live = LiveSettings(load_settings(config))
    running = live.current
    config.write_text(OWN_SECRETS.replace("[server]", "[server", 1), encoding="utf-8")
    with pytest.raises(ConfigError):
        live.reload_file()
    config.unlink()
    with pytest.raises(ConfigError):
        live.reload_file()
    assert live.current is running
    demo = LiveSettings(parse_settings(demo_text(), "<demo>", Path("."), None))
    with pytest.raises(ConfigError, match="no file to reload"):
        demo.reload_file()


def test_the_demo_secrets_are_refused_on_a_public_address_as_at_start(config: Path) -> None:
    """`serve` refuses to start with the published demo secrets beyond loopback; a reload
    that brings one back is refused the same way, and nothing of it is applied."""
    public = OWN_SECRETS.replace('web_host = "127.0.0.1"', 'web_host = "0.0.0.0"', 1)
    live = LiveSettings(edited(config, public))
    running = live.current
    leaked = agents_admin.edit_member(public, "1002", MemberFields(secret="demo-secret-1002"))
    leaked = agents_admin.remove_member(leaked, "1200")
    with pytest.raises(ConfigError, match="demo's secrets"):
        live.apply(edited(config, leaked))
    assert live.current is running and running.site.member("1200") is not None
