"""Every name the rendered Asterisk config shares with the code: contexts and channel variables.

Each name is spelled here once. The templates in conf_templates/ receive them from
dialplan/render.py as `names` (`{{ names.OUTBOUND_CONTEXT }}`; the `ref` filter writes a
variable's value, `{{ names.ROUTE_VAR|ref }}` is `${CENTRALITA_ROUTE}`), and the code imports
them: the flows set and read the variables, the call files and AMI Originate name the
contexts, the tracker recognises them in AMI events. Renaming one here renames it everywhere;
tests/golden pins what the dialplan looks like.

This module imports nothing, so agi/, ami/ and the app can all use it.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------- contexts
# The dialplan contexts of extensions.conf (docs/admin.md describes each one).

# Dispatches on the route a flow chose (ROUTE_VAR).
ROUTE_CONTEXT: Final = "centralita-route"
# Where a call goes when FastAGI is unreachable or a route is invalid.
FALLBACK_CONTEXT: Final = "centralita-fallback"
HANGUP_CONTEXT: Final = "centralita-hangup"
# The language menu (flow `language`), one extension: the IVR's name.
IVR_CONTEXT: Final = "centralita-ivr"
# Customer-ID nodes (flow `customer-id`), one extension per node.
CUSTOMER_ID_CONTEXT: Final = "centralita-customer-id"
# The returning-caller entry point (flow `manager`).
MANAGER_CONTEXT: Final = "centralita-manager"
# Time conditions, one extension per condition.
TIME_CONTEXT: Final = "centralita-time"
# Per-language queues, one extension per queue.
QUEUE_CONTEXT: Final = "centralita-queue"
# Gosub: the recording notice and MixMonitor, once per call.
RECORD_CONTEXT: Final = "centralita-record"
# Gosub: pushes the survey hangup handler, once per call.
SURVEY_ARM_CONTEXT: Final = "centralita-survey-arm"
# The hangup handler that runs flow `survey-schedule`.
SURVEY_SCHEDULE_CONTEXT: Final = "centralita-survey-schedule"
# Nobody answered in the queue: flow `callback`.
CALLBACK_CONTEXT: Final = "centralita-callback"
# A route straight to one agent, one extension per agent.
AGENT_CONTEXT: Final = "centralita-agent"
# A route to a voicemail box, one extension per box.
VOICEMAIL_CONTEXT: Final = "centralita-voicemail"
# Where the survey call file lands: flow `survey`.
SURVEY_CONTEXT: Final = "centralita-survey"
# Click-to-dial and every call to a customer: AMI Originate and the survey call file's
# `Local/<number>@` channel run it with the customer's number as the extension.
OUTBOUND_CONTEXT: Final = "centralita-outbound"
# Listen-in, whisper and barge: AMI Originate rings a supervisor's own phone into it, one
# extension per mode (SPY_MODES), with the agent's channel in SPY_TARGET_VAR. No role's
# context includes it or jumps to it: only Centralita's AMI user reaches it, after checking
# on the server that the member is a supervisor (centralita/web/supervise.py).
SPY_CONTEXT: Final = "centralita-spy"
# The agents' phones (the SIP endpoints' `context`): what an agent dials, transfers included.
# Every role has a context of its own ([[roles]] context, dialplan/roles.py); this one is the
# implicit role of a config without roles, and the demo's `agent` role names it too.
PHONES_CONTEXT: Final = "agents"
# A role's context must not start with this (Centralita's own contexts above do).
OWN_CONTEXT_PREFIX: Final = "centralita-"
# Contexts extensions.conf defines for itself or Asterisk reserves: never a role's.
INCOMING_CONTEXT: Final = "incoming"
# voicemail.conf's context of the boxes (`VoiceMail(1001@VoiceMail)`, `mailboxes = ...`).
MAILBOX_CONTEXT: Final = "VoiceMail"

# --------------------------------------------------------------------------- channel variables
# Every variable Centralita sets on a channel starts with this prefix; the tracker keeps the
# VarSet events of those only (ami/tracker.py).
VARIABLE_PREFIX: Final = "CENTRALITA_"

# ------------------------------------------------------------------------------- AMI events
# Every event `centralita serve` reads from AMI (the call tracker's handlers, `Cdr`, the
# agent-state mirror's, the wallboard's and the queue-event log's), plus the VarSet events of
# VARIABLE_PREFIX variables. manager.conf's runtime user gets an include `eventfilter` for each
# (conf_templates/manager.conf.j2): Asterisk sends it nothing else (main/manager.c
# should_send_event), about half the events of a queue call (no Newexten, Newstate, other
# VarSets...). tests/test_ami_eventfilter.py checks each reader's names are in here.
AMI_EVENTS: Final = frozenset(
    {
        "AgentCalled",
        "AgentComplete",
        "AgentConnect",
        "AgentRingNoAnswer",
        "AttendedTransfer",
        "BlindTransfer",
        "BridgeDestroy",
        "BridgeEnter",
        "BridgeLeave",
        "Cdr",
        "DeviceStateChange",
        "DialBegin",
        "DialEnd",
        "Hangup",
        "NewCallerid",
        "NewConnectedLine",
        "Newchannel",
        "OriginateResponse",
        "QueueCallerAbandon",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueMemberAdded",
        "QueueMemberPause",
        "QueueMemberPaused",
        "QueueMemberRemoved",
        "QueueMemberStatus",
    }
)
# Of DEVICE_STATE_EVENT, the app reads the state of phones only: the tracker's device table
# (ami/tracker.py), read for agents' and supervisors' devices (`PJSIP/1001` or `SIP/1001`:
# Site.device) by centralita/asterisks.py and centralita/web/supervise.py. Most of a queue
# call's DeviceStateChange events are of app_queue's `Queue:NAME` and `Queue:NAME_avail`
# devices (apps/app_queue.c) and of its Local channels (7 of 9 in
# asterisk-traces/ami-queue-sip-call.txt): manager.conf keeps only those whose `Device`
# starts with the SIP driver's prefix (conf_templates/manager.conf.j2).
DEVICE_STATE_EVENT: Final = "DeviceStateChange"

# Where the call goes next, set by a flow (queue:NAME, agent:EXT, voicemail:BOX, ivr:NAME,
# customer-id:NAME, time:NAME, callback, manager or hangup) and read by ROUTE_CONTEXT.
ROUTE_VAR: Final = "CENTRALITA_ROUTE"
# ROUTE_VAR cut at its `:`, by ROUTE_CONTEXT.
ROUTE_KIND_VAR: Final = "CENTRALITA_ROUTE_KIND"
ROUTE_TARGET_VAR: Final = "CENTRALITA_ROUTE_TARGET"
# The queue the caller is in (set by the queue context and by flow `language`); the survey
# call file carries it to flow `survey`.
QUEUE_VAR: Final = "CENTRALITA_QUEUE"
# The agent a returning caller is routed to (flow `manager`); the survey call file carries
# the agent who answered.
AGENT_VAR: Final = "CENTRALITA_AGENT"
# The survey call file: the customer's number and the call being rated.
CALLER_VAR: Final = "CENTRALITA_CALLER"
CALL_ID_VAR: Final = "CENTRALITA_CALL_ID"
# The customer ID a caller typed (flow `customer-id`), for the screen pop.
CUSTOMER_ID_VAR: Final = "CENTRALITA_CUSTOMER_ID"
# Click-to-dial: the number AMI Originate dials, so the tracker knows the customer.
DIAL_VAR: Final = "CENTRALITA_DIAL"
# Click-to-dial with the caller ID withheld.
PRIVATE_VAR: Final = "CENTRALITA_PRIVATE"
# SPY_CONTEXT: the agent's channel ChanSpy listens to (`PJSIP/1002-0000000a`), set by the
# supervisor's Originate.
SPY_TARGET_VAR: Final = "CENTRALITA_SPY_TARGET"
# OUTBOUND_CONTEXT: the dialled extension filtered to digits, +, * and #.
NUMBER_VAR: Final = "CENTRALITA_NUMBER"
# "1" when the caller's queue runs the post-call survey.
SURVEY_VAR: Final = "CENTRALITA_SURVEY"
# "1" once the survey hangup handler is pushed / once MixMonitor runs (once per call).
SURVEY_ARMED_VAR: Final = "CENTRALITA_SURVEY_ARMED"
RECORDING_VAR: Final = "CENTRALITA_RECORDING"
# The global fallback destination (for people reading the dialplan) and the count of times a
# call reached FALLBACK_CONTEXT.
FALLBACK_VAR: Final = "CENTRALITA_FALLBACK"
FALLBACKS_VAR: Final = "CENTRALITA_FALLBACKS"
# Today's date in a time condition's zone, compared with its holidays.
TODAY_VAR: Final = "CENTRALITA_TODAY"


# SPY_CONTEXT's extensions: what the supervisor does (the ChanSpy options are in
# dialplan/render.py SPY_OPTIONS).
SPY_MODES: Final = ("listen", "whisper", "barge")


def ref(variable: str) -> str:
    """The dialplan expression for a variable's value: `${NAME}`."""
    return "${" + variable + "}"


def template_names() -> dict[str, str]:
    """Every name above, by its Python name: what the templates see as `names`."""
    return {
        key: value
        for key, value in globals().items()
        if key.isupper() and (key.endswith(("_CONTEXT", "_VAR")) or key == "VARIABLE_PREFIX")
    }
