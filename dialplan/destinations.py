"""Where a call goes: the one model shared by the flows, the config and the CRM's answers.

A destination is written `queue:NAME`, `ivr:NAME`, `customer-id:NAME`, `time:NAME`,
`agent:EXT`, `voicemail:BOX` or `hangup` (`dialplan.model.Destination`). The config names
them by name; a CRM written to the OMniLeads customer-ID interface names them by a type code
and a numeric id, `"X,Y"`:

    1 = queue (Queue.id)          2 = time condition (TimeCondition.id)
    3 = IVR (Ivr.id)              5 = hang up (any id)
    9 = another customer-ID node (CustomerIdNode.id)

`resolve_crm_destination` turns such a reply into a Destination, or None when the reply is
not exactly two non-negative integers, or names an unknown type or id: the flow then takes
the node's failure destination.
"""

from __future__ import annotations

import re

from dialplan.model import DESTINATION_KINDS, HANGUP, Destination, Site

__all__ = [
    "CRM_TYPES",
    "DESTINATION_KINDS",
    "HANGUP",
    "Destination",
    "crm_code",
    "parse_crm_code",
    "resolve_crm_code",
    "resolve_crm_destination",
    "unknown_target",
]

CRM_QUEUE = 1
CRM_TIME = 2
CRM_IVR = 3
CRM_HANGUP = 5
CRM_CUSTOMER_ID = 9

# Type code -> destination kind (the OMniLeads customer-ID interface's codes).
CRM_TYPES: dict[int, str] = {
    CRM_QUEUE: "queue",
    CRM_TIME: "time",
    CRM_IVR: "ivr",
    CRM_HANGUP: "hangup",
    CRM_CUSTOMER_ID: "customer-id",
}

# Exactly "X,Y": ASCII digits only (re.ASCII: no Arabic-Indic digits), at most 9 each so an
# id never becomes a huge integer; spaces (only spaces) around either number are tolerated.
_CRM_CODE = re.compile(r" *([0-9]{1,9}) *, *([0-9]{1,9}) *", re.ASCII)


def parse_crm_code(text: str) -> tuple[int, int] | None:
    """`"1,2"` -> (1, 2); None for anything that is not two non-negative integers."""
    match = _CRM_CODE.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def resolve_crm_code(site: Site, type_code: int, target_id: int) -> Destination | None:
    """The destination a CRM names by type code and id, or None if the site has no such one."""
    kind = CRM_TYPES.get(type_code)
    if kind == "hangup":
        return HANGUP
    if kind == "queue":
        queue = next((q for q in site.queues if q.id == target_id), None)
        return None if queue is None else Destination("queue", queue.name)
    if kind == "time":
        tc = next((t for t in site.time_conditions if t.id == target_id), None)
        return None if tc is None else Destination("time", tc.name)
    if kind == "ivr":
        return Destination("ivr", site.ivr.name) if site.ivr.id == target_id else None
    if kind == "customer-id":
        node = next((n for n in site.customer_id if n.id == target_id), None)
        return None if node is None else Destination("customer-id", node.name)
    return None


def resolve_crm_destination(site: Site, text: str) -> Destination | None:
    """A CRM's `"X,Y"` reply as a Destination; None when it is malformed or unknown."""
    code = parse_crm_code(text)
    if code is None:
        return None
    return resolve_crm_code(site, *code)


def crm_code(site: Site, destination: Destination) -> str | None:
    """The `"X,Y"` a CRM would send for `destination`, or None if it has no code (agent,
    voicemail) or names nothing the site defines."""
    if destination.kind == "hangup":
        return f"{CRM_HANGUP},0"
    if destination.kind == "queue":
        queue = site.queue(destination.target)
        return None if queue is None else f"{CRM_QUEUE},{queue.id}"
    if destination.kind == "time":
        tc = site.time_condition(destination.target)
        return None if tc is None else f"{CRM_TIME},{tc.id}"
    if destination.kind == "ivr":
        return f"{CRM_IVR},{site.ivr.id}" if destination.target == site.ivr.name else None
    if destination.kind == "customer-id":
        node = site.node(destination.target)
        return None if node is None else f"{CRM_CUSTOMER_ID},{node.id}"
    return None


def unknown_target(site: Site, destination: Destination) -> str | None:
    """Why `destination` cannot be followed on this site (the missing target), or None.

    Voicemail boxes are not listed in the config (any extension may have one), so only
    their syntax is checked, by `Destination.parse`.
    """
    kind, target = destination.kind, destination.target
    if kind not in DESTINATION_KINDS:
        return f"{destination} is not a destination kind"
    missing = (
        (kind == "queue" and site.queue(target) is None)
        or (kind == "ivr" and target != site.ivr.name)
        or (kind == "customer-id" and site.node(target) is None)
        or (kind == "time" and site.time_condition(target) is None)
        or (kind == "agent" and site.agent(target) is None)
    )
    return f"{destination} names a {kind} that is not defined" if missing else None
