"""One way to open the store, `open_store(settings)`, for the app and every CLI command: the
database in data_dir, with the `[manager]` rules for number keys."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
from datetime import datetime
from pathlib import Path

import pytest

from centralita import cli
from centralita.settings import demo_text, load_settings
from centralita.store import Store, default_path, open_store

ROOT = Path(__file__).resolve().parent.parent
US_CALLER = "(202) 555-0100"


@pytest.fixture(autouse=True)
def _available_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other command modules are written in parallel; run with those that exist today.
    present = tuple(m for m in cli.COMMAND_MODULES if importlib.util.find_spec(m) is not None)
    monkeypatch.setattr(cli, "COMMAND_MODULES", present)


def write_config(tmp_path: Path, *, region: str) -> Path:
    text = demo_text()
    for old, new in [
        ('data_dir = "data"', 'data_dir = "store-data"'),
        ('default_region = "ES"', f'default_region = "{region}"'),
        ("match_digits = 10 ", "match_digits = 9 "),
        ("min_digits = 6 ", "min_digits = 7 "),
    ]:
        assert old in text
        text = text.replace(old, new)
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "centralita.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_open_store_keys_numbers_by_the_manager_rules(tmp_path: Path) -> None:
    us = load_settings(write_config(tmp_path / "us", region="US"))
    es = load_settings(write_config(tmp_path / "es", region="ES"))
    async with open_store(us) as store:
        assert isinstance(store, Store)  # no [store] url: the SQLite file in data_dir
        assert store.path == default_path(tmp_path / "us" / "store-data")
        assert (store.region, store.match_digits, store.min_digits) == ("US", 9, 7)
        assert store.key(US_CALLER) == "12025550100"  # a possible US number: E.164
        assert store.key("55 01 00") is None  # 6 digits: under min_digits
    async with open_store(es) as store:
        # Not a possible Spanish number: its last match_digits (9) digits.
        assert store.key(US_CALLER) == "025550100"
    store = await open_store(us)  # awaited, as well as entered
    try:
        assert store.region == "US"
    finally:
        await store.close()


def test_the_cli_imports_call_records_with_the_manager_rules(tmp_path: Path) -> None:
    config = write_config(tmp_path, region="US")
    master = tmp_path / "Master.csv"
    master.write_text(
        '"","2025550100","300","queue-sip","""Ann"" <2025550100>","SIP/trunk-00000001",'
        '"SIP/1002-00000002","Queue","support-en,,,,10","2026-03-01 10:00:00",'
        '"2026-03-01 10:00:02","2026-03-01 10:01:00",60,58,"ANSWERED","DOCUMENTATION",'
        '"1772359200.1"\n',
        encoding="utf-8",
    )
    assert cli.main(["cdr", "import", str(master), "--config", str(config)]) == 0

    async def check() -> None:
        async with open_store(load_settings(config)) as store:
            [rec] = await store.get_cdrs("1772359200.1")
            assert rec.src_key == "12025550100"
            key = store.key(US_CALLER)
            assert key == rec.src_key
            found = await store.last_agent_for(
                key, since=datetime(2026, 3, 1), dispositions=["ANSWERED"], agents={"1002"}
            )
            assert found == "1002"

    asyncio.run(check())


def test_the_cli_sets_passwords_in_the_store_the_app_opens(tmp_path: Path) -> None:
    config = write_config(tmp_path, region="US")
    args = ["agent", "passwd", "1002", "--password", "correct horse", "--config", str(config)]
    assert cli.main(args) == 0

    async def check() -> bool:
        async with open_store(load_settings(config)) as store:
            return await store.verify_agent_password("1002", "correct horse")

    assert asyncio.run(check())


def test_nothing_outside_the_store_opens_it_another_way() -> None:
    """`Store.open` (or `open_store`'s body) is called only by `open_store`: every other
    opener would pick its own path and number rules (the CLI's once ignored `[manager]`)."""
    offenders = []
    for path in sorted((ROOT / "centralita").rglob("*.py")):
        if (ROOT / "centralita" / "store") in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "open"
                and isinstance(node.value, ast.Name)
                and node.value.id == "Store"
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
