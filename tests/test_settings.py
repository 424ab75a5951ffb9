"""Settings: one TOML file validated into typed settings, with clear errors."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from conftest import make_settings

from centralita.cli import main
from centralita.settings import (
    AsteriskSettings,
    demo_text,
    load_settings,
    parse_settings,
    public_secrets,
    public_secrets_refusal,
)
from dialplan.validate import ConfigError, Section


def load_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "centralita.toml"
    path.write_text(text, encoding="utf-8")
    load_settings(path)


def test_the_demo_is_valid_and_complete(tmp_path: Path) -> None:
    settings = parse_settings(demo_text(), "demo", tmp_path, None)
    site = settings.site
    assert [(lang.digit, lang.code, lang.queue) for lang in site.languages] == [
        ("1", "ar", "support-ar"),
        ("2", "en", "support-en"),
        ("3", "fr", "support-fr"),
    ]
    assert site.company_numbers == ("0777",)
    assert site.survey.voicemail_box == "600"
    assert settings.server.agi_port == 4573 and settings.server.web_port == 8080
    assert settings.asterisk.ami_port == 5038
    # Relative paths are relative to the config's folder.
    assert settings.data_dir == tmp_path / "data"
    # Asterisk's own spool, where it reads call files: absolute, so not moved under the
    # config's folder as relative paths are.
    default_spool = AsteriskSettings.__dataclass_fields__["spool_dir"].default
    assert isinstance(default_spool, Path) and default_spool.is_absolute()
    assert settings.asterisk.spool_dir == default_spool


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ("agi_port = 4573", "agi_port = 70000", "server.agi_port", "at most 65535"),
        ("agi_port = 4573", 'agi_port = "4573"', "server.agi_port", "must be an integer"),
        ("[server]", "[server]\nagi_prot = 1", "server.agi_prot", "unknown key"),
        ('sip_driver = "pjsip"', 'sip_driver = "iax"', "asterisk.sip_driver", "must be one of"),
        ('extension = "1002"', 'extension = "10x2"', "members[1].extension", "digits only"),
        ('extension = "1002"', 'extension = "1001"', "members[1].extension", "defined twice"),
        ('queue = "support-fr"', 'queue = "support-xx"', "languages[2].queue", "not defined"),
        (
            'fallback = "queue:support-en" #',
            'fallback = "queue:nope" #',
            "server.fallback",
            "not defined",
        ),
        (
            'failure = "ivr:main"',
            'failure = "time:nowhere"',
            "customer_id[0].failure",
            "not defined",
        ),
        (
            'timezone = "Europe/Madrid"',
            'timezone = "Mars/Olympus"',
            "time_conditions[0].timezone",
            "unknown time zone",
        ),
        ("window_h = 24", "window_h = true", "manager.window_h", "integer"),
        (
            'allowed_peers = ["127.0.0.1/32", "::1/128"]',
            'allowed_peers = ["localhost"]',
            "server.allowed_peers",
            "not an address",
        ),
    ],
)
def test_a_wrong_key_type_or_value_names_file_key_and_reason(
    tmp_path: Path, old: str, new: str, key: str, reason: str
) -> None:
    text = demo_text()
    assert old in text
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text.replace(old, new, 1))
    error = caught.value
    assert error.file == str(tmp_path / "centralita.toml")
    assert error.key == key
    assert reason in error.reason


def test_a_toml_syntax_error_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="syntax"):
        load_text(tmp_path, demo_text() + "\n[[broken\n")


def test_secrets_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        demo_text()
        .replace('ami_secret = "change-me-centralita"', 'ami_secret = { env = "TEST_AMI_SECRET" }')
        .replace('secret = "demo-secret-1001"', 'secret = { env = "TEST_SIP_1001" }')
    )
    path = tmp_path / "centralita.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="TEST_AMI_SECRET is not set"):
        load_settings(path)
    monkeypatch.setenv("TEST_AMI_SECRET", "from-the-env-123")
    monkeypatch.setenv("TEST_SIP_1001", "sip-secret-from-env")
    settings = load_settings(path)
    assert settings.asterisk.ami_secret == "from-the-env-123"
    agent = settings.site.agent("1001")
    assert agent is not None and agent.secret == "sip-secret-from-env"


def test_without_a_config_the_demo_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(None).file is None
    (tmp_path / "centralita.toml").write_text(
        demo_text().replace("agi_port = 4573", "agi_port = 4999"), encoding="utf-8"
    )
    settings = load_settings(None)
    assert settings.server.agi_port == 4999
    assert settings.file == (tmp_path / "centralita.toml").resolve()


def test_init_writes_the_commented_demo_with_random_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "site"
    assert main(["init", str(target)]) == 0
    config = target / "centralita.toml"
    written = config.read_text(encoding="utf-8")
    assert written.count("#") > 20
    # Only the secrets differ from the demo, and none of them is the demo's (public) one.
    demo_lines, lines = demo_text().splitlines(), written.splitlines()
    changed = {
        a.split("=")[0].strip("# ") for a, b in zip(demo_lines, lines, strict=True) if a != b
    }
    assert changed == {"secret", "ami_secret", "secret_key"}
    settings = load_settings(config)
    assert public_secrets(settings) == []
    assert settings.server.secret_key and len(settings.server.secret_key) >= 32
    # The file holds secrets: nobody else may read it.
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert main(["init", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err
    # Each init draws new secrets.
    assert main(["init", str(target), "--force"]) == 0
    again = load_settings(config)
    assert again.asterisk.ami_secret != settings.asterisk.ami_secret
    assert again.site.agents[0].secret != settings.site.agents[0].secret


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_rewriting_the_config_keeps_its_mode_owner_and_group(tmp_path: Path) -> None:
    target = tmp_path / "site"
    assert main(["init", str(target)]) == 0
    config = target / "centralita.toml"
    # As docs/deploy.md sets it: root owns it, the service's group reads it.
    os.chown(config, 0, 65534)
    config.chmod(0o640)
    assert main(["init", str(target), "--force"]) == 0
    assert main(["agent", "add", "1004", "--config", str(config), "--name", "Zoé"]) == 0
    info = config.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 65534, 0o640)
    os.chown(config, 65534, 65534)
    assert main(["agent", "remove", "1004", "--config", str(config)]) == 0
    info = config.stat()
    assert (info.st_uid, info.st_gid) == (65534, 65534)


def test_every_key_the_settings_read_is_documented_in_the_demo() -> None:
    """The demo documents every key: each key read by the parser appears in its section."""
    asked: set[tuple[str, str]] = set()
    original = Section._get

    def recording(self: Section, name: str) -> object:
        asked.add((re.sub(r"\[\d+\]", "", self.path), name))
        return original(self, name)

    # The demo, plus the variants that make the parser ask for its other keys.
    variants = [
        demo_text() + '\n[[webhooks]]\nurl = "https://example.com/hook"\n',
        demo_text().replace("id_length = 6 ", "min_digits = 4\nmax_digits = 8 "),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Section, "_get", recording)
        for text in variants:
            parse_settings(text, "demo", Path("."), None)
    text = demo_text()
    missing = [
        f"{section}.{key}"
        for section, key in sorted(asked)
        if section and not re.search(rf"\b{key}\b", section_text(text, section))
    ]
    assert len(asked) > 100
    assert missing == []


def section_text(text: str, section: str) -> str:
    """The lines of `[section]`/`[[section]]` tables, written or commented out."""
    headings = [(m.start(), m.group(1)) for m in HEADING.finditer(text)]
    parts = []
    for i, (start, name) in enumerate(headings):
        if name == section:
            end = next((s for s, n in headings[i + 1 :] if n != section), len(text))
            parts.append(text[start:end])
    return "".join(parts)


HEADING = re.compile(r"^#?\s*\[\[?([A-Za-z_.]+)\]\]?", re.MULTILINE)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "pbx.example.com", ""])
def test_serve_refuses_the_demo_secrets_off_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    path = tmp_path / "centralita.toml"
    path.write_text(
        demo_text().replace('web_host = "127.0.0.1"', f'web_host = "{host}"'), encoding="utf-8"
    )
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"refusing to serve on server.web_host = {host!r}" in err
    assert "members[0].secret (1001), members[1].secret (1002)" in err
    assert "asterisk.ami_secret" in err
    assert "`centralita init DIR` writes a config with random ones" in err


def test_serve_on_loopback_and_init_configs_anywhere_are_not_refused(tmp_path: Path) -> None:
    assert refusal_for(demo_text()) is None
    assert refusal_for(demo_text().replace('agi_host = "127.0.0.1"', 'agi_host = "::1"')) is None
    assert main(["init", str(tmp_path)]) == 0
    fresh = (tmp_path / "centralita.toml").read_text(encoding="utf-8")
    assert refusal_for(fresh.replace('web_host = "127.0.0.1"', 'web_host = "0.0.0.0"')) is None
    # One public secret left is enough to refuse.
    text = fresh.replace('web_host = "127.0.0.1"', 'web_host = "0.0.0.0"')
    text = re.sub(r'ami_secret = "[^"]+"', 'ami_secret = "change-me-centralita"', text)
    assert "asterisk.ami_secret still hold" in str(refusal_for(text))


def refusal_for(text: str) -> str | None:
    return public_secrets_refusal(parse_settings(text, "t", Path("."), None))


def test_a_bad_config_stops_a_command_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "centralita.toml"
    path.write_text(demo_text().replace("web_port = 8080", "web_port = -1"), encoding="utf-8")
    assert main(["serve", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: server.web_port: must be at least 0" in err


@pytest.mark.parametrize("value", ["127.0.0.1:5062", "0.0.0.0:5060", "[::1]:5070", "[::]:5060"])
def test_sip_bind_is_rendered_for_both_drivers(tmp_path: Path, value: str) -> None:
    from centralita.cmd_render import render_files

    for driver, name, key in (("pjsip", "pjsip.conf", "bind"), ("sip", "sip.conf", "udpbindaddr")):

        def edit(text: str, driver: str = driver) -> str:
            text = text.replace('sip_bind = "0.0.0.0:5060"', f'sip_bind = "{value}"')
            return text.replace('sip_driver = "pjsip"', f'sip_driver = "{driver}"')

        settings = make_settings(tmp_path, edit)
        assert f"\n{key} = {value}\n" in render_files(settings)[name]


@pytest.mark.parametrize(
    "value", ["5060", "localhost:5060", "0.0.0.0:0", "0.0.0.0:99999", "::1:5060", "1.2.3.4:5060\n"]
)
def test_sip_bind_refuses_what_is_not_an_address_and_port(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(tmp_path, lambda t: t.replace('"0.0.0.0:5060"', json.dumps(value)))
    assert info.value.key == "asterisk.sip_bind"
