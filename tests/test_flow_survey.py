"""Post-call survey: scheduling the call file, and the rating flow on the outbound call."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from conftest import FlowEnv

from agi.testing import Caller, place_call
from centralita.csvlog import read_rows
from centralita.spool import parse_call_file
from dialplan.names import OUTBOUND_CONTEXT

RATE = "centralita/rate-call"
SURVEY_VARS = {
    "CENTRALITA_CALLER": "34915550123",
    "CENTRALITA_CALL_ID": "1795301017.1",
    "CENTRALITA_AGENT": "1001",
    "CENTRALITA_QUEUE": "support-en",
}


def survey_caller(keys: list[str | None], **kwargs: object) -> Caller:
    return Caller(script="survey", keys=keys, variables=SURVEY_VARS, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("entry, rating", [("0#", 0), ("10", 10), ("7#", 7), ("5", 5)])
async def test_valid_ratings_are_stored_and_logged(
    flow_env: FlowEnv, entry: str, rating: int
) -> None:
    keys: list[str | None] = [entry, None]  # None: no key at "press 1 to leave a message"
    result = await place_call("127.0.0.1", flow_env.port, survey_caller(keys))
    (stored,) = await flow_env.store.list_ratings()
    assert (stored.rating, stored.agent, stored.queue, stored.call_id, stored.callerid) == (
        rating,
        "1001",
        "support-en",
        "1795301017.1",
        "34915550123",
    )
    (row,) = read_rows(flow_env.settings.data_dir / "complaints.csv")
    assert row["rating"] == str(rating) and row["agent"] == "1001"
    assert result.route == "hangup"
    low = rating < flow_env.settings.site.survey.threshold
    assert ("centralita/leave-message" in result.heard) == low
    assert result.heard[-1] == "centralita/rating-thanks"


async def test_low_rating_leads_to_the_complaints_voicemail(flow_env: FlowEnv) -> None:
    result = await place_call("127.0.0.1", flow_env.port, survey_caller(["2#", "1"]))
    assert result.heard == [RATE, "centralita/leave-message"]
    assert result.route == "voicemail:600"
    assert [r.rating for r in await flow_env.store.list_ratings()] == [2]
    # The message will name the rated call (app_voicemail writes VM_CATEGORY as category=).
    assert result.variables["VM_CATEGORY"] == SURVEY_VARS["CENTRALITA_CALL_ID"]


async def test_a_rating_without_a_message_sets_no_category(flow_env: FlowEnv) -> None:
    result = await place_call("127.0.0.1", flow_env.port, survey_caller(["2#", None]))
    assert result.route == "hangup"
    assert "VM_CATEGORY" not in result.variables


@pytest.mark.parametrize("bad", ["11", "#", "*5", None])
async def test_invalid_or_missing_rating_is_asked_again(flow_env: FlowEnv, bad: str | None) -> None:
    result = await place_call("127.0.0.1", flow_env.port, survey_caller([bad, "8#"]))
    assert result.heard == [RATE, "centralita/invalid-option", RATE, "centralita/rating-thanks"]
    assert [r.rating for r in await flow_env.store.list_ratings()] == [8]


async def test_silence_every_time_stores_nothing(flow_env: FlowEnv) -> None:
    result = await place_call("127.0.0.1", flow_env.port, survey_caller([None, None, None]))
    assert result.heard[-1] == "centralita/goodbye"
    assert result.route == "hangup"
    assert await flow_env.store.list_ratings() == []


async def test_schedule_writes_a_call_file(flow_env: FlowEnv) -> None:
    before = datetime.now(UTC).timestamp()
    result = await place_call(
        "127.0.0.1",
        flow_env.port,
        Caller(
            script="survey-schedule",
            args=["support-en", "PJSIP/1001", "1795301017.1"],
            callerid="+34915550123",
            language="fr",
            dead=True,  # a hangup handler: the caller is already gone
        ),
    )
    assert result.error is None
    assert not [r for r in result.replies if r.startswith("511")]
    outgoing = flow_env.settings.asterisk.spool_dir / "outgoing"
    (path,) = list(outgoing.iterdir())
    assert list((flow_env.settings.asterisk.spool_dir / "tmp").iterdir()) == []
    call = parse_call_file(path.read_bytes())
    survey = flow_env.settings.site.survey
    assert call["channel"] == f"Local/+34915550123@{OUTBOUND_CONTEXT}"
    assert call["valid"] and call["errors"] == []
    assert (call["context"], call["extension"], call["priority"]) == ("centralita-survey", "s", 1)
    assert call["maxretries"] == survey.max_retries
    assert call["retrytime"] == survey.retry_time_s
    assert call["waittime"] == survey.wait_time_s
    assert call["variables"] == {
        "CENTRALITA_CALL_ID": "1795301017.1",
        "CENTRALITA_AGENT": "1001",
        "CENTRALITA_QUEUE": "support-en",
        "CENTRALITA_CALLER": "+34915550123",
        "CHANNEL(language)": "fr",
    }
    due = os.stat(path).st_mtime
    assert before + survey.delay_s - 1 <= due <= datetime.now(UTC).timestamp() + survey.delay_s


@pytest.mark.parametrize(
    "callerid, args",
    [
        ("anonymous", ["support-en", "PJSIP/1001", "1.1"]),
        ("", ["support-en", "PJSIP/1001", "1.1"]),
        ("+34915550123", ["support-en", "", "1.1"]),  # no agent answered
        ("+34915550123", ["no-such-queue", "PJSIP/1001", "1.1"]),
    ],
)
async def test_no_survey_for_private_callers_or_unanswered_calls(
    flow_env: FlowEnv, callerid: str, args: list[str]
) -> None:
    await place_call(
        "127.0.0.1",
        flow_env.port,
        Caller(
            script="survey-schedule",
            args=args,
            callerid=callerid,
            variables={"MEMBERINTERFACE": ""},
            dead=True,
        ),
    )
    outgoing = flow_env.settings.asterisk.spool_dir / "outgoing"
    assert not outgoing.exists() or list(outgoing.iterdir()) == []


@pytest.mark.parametrize(
    "presentation", [32, 35, 67]
)  # restricted, restricted+screened, unavailable
async def test_no_survey_when_the_caller_withheld_their_number(
    flow_env: FlowEnv, presentation: int
) -> None:
    await place_call(
        "127.0.0.1",
        flow_env.port,
        Caller(
            script="survey-schedule",
            args=["support-en", "PJSIP/1001", "1.1"],
            callerid="+34915550123",
            callingpres=presentation,
            dead=True,
        ),
    )
    outgoing = flow_env.settings.asterisk.spool_dir / "outgoing"
    assert not outgoing.exists() or list(outgoing.iterdir()) == []


async def test_schedule_reads_the_member_and_call_from_the_dead_channel(flow_env: FlowEnv) -> None:
    # As the generated hangup handler calls it: only the queue as argument.
    result = await place_call(
        "127.0.0.1",
        flow_env.port,
        Caller(
            script="survey-schedule",
            args=["support-fr"],
            callerid="0034915550123",
            variables={"MEMBERINTERFACE": "PJSIP/1003"},
            uniqueid="1795309999.7",
            dead=True,
        ),
    )
    assert result.commands == [
        "GET FULL VARIABLE ${MEMBERINTERFACE}",
        "GET FULL VARIABLE ${CHANNEL(linkedid)}",
    ]
    (path,) = list((flow_env.settings.asterisk.spool_dir / "outgoing").iterdir())
    call = parse_call_file(path.read_bytes())
    assert call["variables"]["CENTRALITA_AGENT"] == "1003"
    assert call["variables"]["CENTRALITA_QUEUE"] == "support-fr"
    assert call["variables"]["CENTRALITA_CALL_ID"] == "1795309999.7"
