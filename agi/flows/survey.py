"""Flows `survey-schedule` and `survey`: the post-call rating.

`survey-schedule` runs from the hangup handler of an answered queue call (arg 1 queue, arg 2
the member interface that answered, arg 3 the call's Linkedid; missing ones are read from the
channel). It writes an Asterisk call file due `delay_s` later, through the context.

`survey` runs on that outbound call: it asks for a rating from 0 to 10 (`10` takes two digits,
`#` ends the entry), asks again on a missing or invalid entry a bounded number of times,
stores the rating, then appends it to complaints.csv. Below the threshold the caller may press
1 to leave a message: the flow sets VM_CATEGORY to the rated call's id (so the message
names it) and routes to `voicemail:<box>`, and the dialplan runs VoiceMail.
"""

from __future__ import annotations

from agi.flows.common import PROMPT_GOODBYE, PROMPT_INVALID, route
from agi.flows.context import FlowContext, RatingEntry, SurveyRequest
from agi.router import flow
from agi.session import AgiSession
from dialplan.names import AGENT_VAR, CALL_ID_VAR, CALLER_VAR, QUEUE_VAR

PROMPT_RATE = "centralita/rate-call"
PROMPT_THANKS = "centralita/rating-thanks"
PROMPT_LEAVE_MESSAGE = "centralita/leave-message"
PROMPTS = (PROMPT_RATE, PROMPT_THANKS, PROMPT_LEAVE_MESSAGE, PROMPT_INVALID, PROMPT_GOODBYE)


# The presentation bits of agi_callingpres (include/asterisk/callerid.h AST_PRES_RESTRICTION:
# 0x20 restricted, 0x40 unavailable): a caller who withheld their number is not called back.
PRESENTATION_WITHHELD = 0x60
# The channel variable app_voicemail copies into a message's `category=` (leave_voicemail).
MESSAGE_CATEGORY_VAR = "VM_CATEGORY"


def _extension_of(interface: str) -> str:
    """`PJSIP/1001` or `SIP/1001-0000002a` -> `1001`."""
    _, _, rest = interface.partition("/")
    return rest.split("-", 1)[0].split("@", 1)[0]


@flow("survey-schedule")
async def survey_schedule_flow(session: AgiSession, context: FlowContext) -> None:
    """Schedule the survey call for the call that just ended (a hangup handler)."""
    request = session.request
    queue = request.arg(1)
    interface = request.arg(2) or await session.get_full_variable("${MEMBERINTERFACE}")
    call_id = request.arg(3) or await session.get_full_variable("${CHANNEL(linkedid)}")
    call_id = call_id or request.uniqueid
    agent = _extension_of(interface)
    if not agent:
        session.log.info("no agent answered; no survey")
        return
    queue_model = context.site.queue(queue)
    if queue_model is None or not queue_model.survey:
        session.log.info("queue %r has no survey", queue)
        return
    if request.callingpres & PRESENTATION_WITHHELD:
        session.log.info("caller withheld their number; no survey")
        return
    scheduled = await context.schedule_survey(
        SurveyRequest(
            callerid=request.callerid,
            call_id=call_id,
            agent=agent,
            queue=queue,
            language=request.language,
            uniqueid=request.uniqueid,
        )
    )
    session.log.info("survey for %s %s", call_id, "scheduled" if scheduled else "skipped")


def _rating(digits: str) -> int | None:
    if digits.isdigit() and len(digits) <= 2 and int(digits) <= 10 and digits == str(int(digits)):
        return int(digits)
    return None


@flow("survey")
async def survey_flow(session: AgiSession, context: FlowContext) -> None:
    """Ask for a 0-10 rating; below the threshold offer the complaints voicemail."""
    settings = context.site.survey
    callerid = await session.get_variable(CALLER_VAR) or session.request.dnid
    call_id = await session.get_variable(CALL_ID_VAR) or session.request.uniqueid
    agent = await session.get_variable(AGENT_VAR) or ""
    queue = await session.get_variable(QUEUE_VAR) or ""
    await session.answer()
    timeout_ms = settings.timeout_s * 1000
    for _ in range(settings.retries):
        data = await session.get_data(PROMPT_RATE, timeout_ms, 2)
        rating = _rating(data.digits)
        if rating is None:
            await session.stream_file(PROMPT_INVALID)
            continue
        await context.save_rating(
            RatingEntry(callerid=callerid, agent=agent, queue=queue, rating=rating, call_id=call_id)
        )
        if rating < settings.threshold:
            choice = await session.get_data(PROMPT_LEAVE_MESSAGE, timeout_ms, 1)
            if choice.digits == "1":
                # app_voicemail writes VM_CATEGORY into the message's .txt as `category=`
                # (leave_voicemail): the message then names the rated call, and /complaints
                # plays it beside this rating (centralita/voicemail.py match_messages).
                await session.set_variable(MESSAGE_CATEGORY_VAR, call_id)
                await route(session, f"voicemail:{settings.voicemail_box}")
                return
        await session.stream_file(PROMPT_THANKS)
        await route(session, "hangup")
        return
    await session.stream_file(PROMPT_GOODBYE)
    await route(session, "hangup")
