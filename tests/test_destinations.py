"""Destinations: the CRM's "X,Y" codes resolved against the demo site, and their reverse."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_settings

from dialplan.destinations import (
    CRM_TYPES,
    Destination,
    crm_code,
    parse_crm_code,
    resolve_crm_destination,
    unknown_target,
)
from dialplan.model import Site
from dialplan.validate import ConfigError

EXTRA_NODE = """
[[customer_id]]
name = "second-check"
id = 7
mode = "none"
id_length = 4
success = "queue:support-fr"
failure = "hangup"
"""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_settings(tmp_path, lambda text: text + EXTRA_NODE).site


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("1,1", "queue:support-ar"),
        ("1,2", "queue:support-en"),
        ("1,3", "queue:support-fr"),
        ("2,1", "time:office-hours"),
        ("3,1", "ivr:main"),
        ("5,0", "hangup"),
        ("5,42", "hangup"),
        ("9,1", "customer-id:vip-check"),
        ("9,7", "customer-id:second-check"),
        (" 1 , 2 ", "queue:support-en"),
        ("01,002", "queue:support-en"),
    ],
)
def test_each_type_code(site: Site, reply: str, expected: str) -> None:
    destination = resolve_crm_destination(site, reply)
    assert destination is not None
    assert str(destination) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "-1,2",  # negative type
        "1,-2",  # negative id
        "1,abc",  # non-numeric id
        "x,1",
        "1,99",  # unknown queue id
        "2,9",  # unknown time condition id
        "3,2",  # unknown IVR id
        "9,3",  # unknown node id
        "4,1",  # unknown type
        "0,0",
        "7,1",
        "1,2,3",
        "1",
        "1,",
        ",1",
        "",
        "true",
        "false",
        "1.5,2",
        "1;2",
        "١,٢",  # Arabic-Indic digits are not ASCII digits
        "1234567890,1",  # longer than any id we accept
        "1,2\n",
    ],
)
def test_malformed_or_unknown_codes_resolve_to_none(site: Site, reply: str) -> None:
    assert resolve_crm_destination(site, reply) is None


def test_parse_crm_code() -> None:
    assert parse_crm_code("9,12") == (9, 12)
    assert parse_crm_code("9,12,1") is None
    assert parse_crm_code("+9,12") is None


def test_crm_code_round_trips(site: Site) -> None:
    destinations = [
        *(Destination("queue", q.name) for q in site.queues),
        *(Destination("time", t.name) for t in site.time_conditions),
        *(Destination("customer-id", n.name) for n in site.customer_id),
        Destination("ivr", site.ivr.name),
        Destination("hangup"),
    ]
    for destination in destinations:
        code = crm_code(site, destination)
        assert code is not None
        assert resolve_crm_destination(site, code) == destination
    assert crm_code(site, Destination("agent", "1001")) is None
    assert crm_code(site, Destination("queue", "nope")) is None
    assert set(CRM_TYPES) == {1, 2, 3, 5, 9}


def test_unknown_target_names_what_is_missing(site: Site) -> None:
    assert unknown_target(site, Destination("queue", "support-en")) is None
    assert unknown_target(site, Destination("agent", "1002")) is None
    assert unknown_target(site, Destination("voicemail", "600")) is None
    assert unknown_target(site, HANGUP_DEST) is None
    reason = unknown_target(site, Destination("queue", "sales"))
    assert reason is not None and "queue:sales" in reason
    assert unknown_target(site, Destination("agent", "4444")) is not None
    assert unknown_target(site, Destination("time", "nights")) is not None
    assert unknown_target(site, Destination("ivr", "other")) is not None
    assert unknown_target(site, Destination("customer-id", "x")) is not None


HANGUP_DEST = Destination("hangup")


def test_config_error_names_the_missing_target(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(
            tmp_path,
            lambda text: text.replace('success = "queue:support-en"', 'success = "queue:sales"'),
        )
    assert "queue:sales" in str(info.value)
    assert "customer_id[0].success" in str(info.value)


def test_config_refuses_a_destination_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(
            tmp_path, lambda text: text.replace('failure = "ivr:main"', 'failure = "1,2"')
        )
    assert "customer_id[0].failure" in str(info.value)


def test_time_condition_ids_are_unique(tmp_path: Path) -> None:
    twin = """
[[time_conditions]]
name = "nights"
id = 1
inside = "voicemail:600"
outside = "ivr:main"
"""
    with pytest.raises(ConfigError) as info:
        make_settings(tmp_path, lambda text: text + twin)
    assert "time_conditions[1].id" in str(info.value)
