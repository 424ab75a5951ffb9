"""JSON logs carry the call's Uniqueid and channel."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from agi.protocol import AgiConnection, AgiRequest
from agi.session import CallLog
from centralita.logs import JsonFormatter, setup_logging


def test_json_log_lines_carry_the_call(capsys: pytest.CaptureFixture[str]) -> None:
    (request,) = AgiConnection().receive_data(
        b"agi_network: yes\nagi_channel: PJSIP/1001-00000007\nagi_uniqueid: 1795301017.9\n\n"
    )
    assert isinstance(request, AgiRequest)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("json", "INFO")
        CallLog(logging.getLogger("centralita.agi"), request).warning('caller said "%s"', "hé")
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "centralita.agi"
    assert entry["uniqueid"] == "1795301017.9"
    assert entry["channel"] == "PJSIP/1001-00000007"
    assert entry["message"] == '[1795301017.9 PJSIP/1001-00000007] caller said "hé"'


def test_json_formatter_keeps_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
