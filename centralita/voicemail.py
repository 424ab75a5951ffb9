"""Asterisk's voicemail spool, read for the complaints box, and its messages matched to ratings.

app_voicemail (file storage) keeps a box's messages in `<spool>/voicemail/<context>/<box>/
<folder>/msgNNNN.<format>`: make_dir and make_file in apps/app_voicemail.c
(`VM_SPOOL_DIR` is `ast_config_AST_SPOOL_DIR` + "/voicemail/", load_config), the folders
those of `mailbox_folders` (INBOX, Old after a message was heard, ...), the number four
digits. Next to each recording, `msgNNNN.txt` holds the message's facts as a config file:
a `[message]` section of `key=value` lines (leave_voicemail's fprintf), `;` comment lines
above it. What Centralita reads from it:

- `callerid`: the channel's caller ID, merged by ast_callerid_merge as `"Name" <number>`,
  a bare number, or "Unknown";
- `origtime`: the Unix time the message began (time(NULL) when the .txt was written, just
  before the beep);
- `category`: the channel's `VM_CATEGORY` variable; flow `survey` sets it to the rated
  call's id, so a complaint's message names the rating it belongs to;
- `callerchan`, `duration` (seconds, appended once the recording ends), `msg_id`.

voicemail.conf's `format = wav` (conf_templates/voicemail.conf.j2) makes the recording
`msgNNNN.wav`, 16-bit PCM that every browser plays.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from centralita.store.records import Rating

# app_voicemail.c mailbox_folders (file storage), less "Deleted" (where `backupdeleted` keeps
# what someone deleted on the phone: deleted is deleted here too); "tmp" holds messages still
# being recorded and is not one.
FOLDERS = (
    "INBOX",
    "Old",
    "Work",
    "Family",
    "Friends",
    "Cust1",
    "Cust2",
    "Cust3",
    "Cust4",
    "Cust5",
    "Urgent",
)
MESSAGE_RE = re.compile(r"msg([0-9]{4})\.txt")  # make_file: "%s/msg%04d"
AUDIO_EXTENSION = ".wav"
# A .txt is a few hundred bytes; anything much bigger is not one of app_voicemail's.
MAX_TXT_BYTES = 16_384
# Fallback match (a message left before flow `survey` set VM_CATEGORY): the message must
# begin within this many seconds after the rating was stored (the leave-message prompt, one
# key, the beep), or a little before it when the two clocks differ by a second or two.
MATCH_WINDOW_S = 300
CLOCK_SKEW_S = 5
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")  # a box or context name, never a path


@dataclass(frozen=True)
class Message:
    """One voicemail message: where it is and what its .txt says."""

    folder: str
    number: int
    txt: Path
    audio: Path | None  # msgNNNN.wav, None when only other formats exist
    callerid: str
    caller_number: str
    origtime: int | None
    category: str
    callerchan: str
    duration: int | None
    msg_id: str

    @property
    def name(self) -> str:
        """`INBOX/msg0000`: the message within its box (for the audit log)."""
        return f"{self.folder}/msg{self.number:04d}"


def parse_message(text: str) -> dict[str, str]:
    """The `[message]` section of a .txt as a dict (lowercase keys, blanks trimmed).

    Lines starting with `;` are comments (main/config.c); the first `=` splits a line, as
    config.c's process_text_line does, so a caller name holding `=` stays whole.
    """
    fields: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        key, sep, value = line.partition("=")
        if sep and section == "message":
            fields[key.strip().lower()] = value.strip()
    return fields


def caller_number(callerid: str) -> str:
    """The number in a caller ID as ast_callerid_merge writes it: `"Name" <600111222>`,
    `600111222`, or "Unknown" (no number: empty)."""
    match = re.search(r"<([^<>]*)>\s*$", callerid)
    number = match.group(1) if match else callerid
    number = number.strip()
    return number if re.fullmatch(r"[0-9+*#]+", number) else ""


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def box_dir(spool_dir: Path, context: str, box: str) -> Path:
    """`<spool>/voicemail/<context>/<box>` (make_dir), for names from the config only."""
    for what, name in (("context", context), ("box", box)):
        if not NAME_RE.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"voicemail {what} {name!r} is not a plain name")
    return spool_dir / "voicemail" / context / box


def read_message(txt: Path, folder: str, number: int) -> Message | None:
    """One message from its .txt; None when it cannot be read (gone, not a message)."""
    try:
        if txt.stat().st_size > MAX_TXT_BYTES:
            return None
        text = txt.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # moved or deleted by VoiceMailMain while we looked
    fields = parse_message(text)
    if not fields:
        return None
    audio = txt.with_suffix(AUDIO_EXTENSION)
    callerid = fields.get("callerid", "")
    return Message(
        folder=folder,
        number=number,
        txt=txt,
        audio=audio if audio.is_file() else None,
        callerid=callerid,
        caller_number=caller_number(callerid),
        origtime=_int_or_none(fields.get("origtime")),
        category=fields.get("category", ""),
        callerchan=fields.get("callerchan", ""),
        duration=_int_or_none(fields.get("duration")),
        msg_id=fields.get("msg_id", ""),
    )


def read_box(spool_dir: Path, context: str, box: str) -> list[Message]:
    """Every message of a box, in every folder, oldest first (blocking: run it in a thread)."""
    base = box_dir(spool_dir, context, box)
    messages = []
    for folder in FOLDERS:
        try:
            names = sorted(p.name for p in (base / folder).iterdir())
        except OSError:
            continue  # app_voicemail makes a folder the first time it is used
        for name in names:
            found = MESSAGE_RE.fullmatch(name)
            if found:
                message = read_message(base / folder / name, folder, int(found.group(1)))
                if message is not None:
                    messages.append(message)
    messages.sort(key=lambda m: (m.origtime or 0, m.folder, m.number))
    return messages


def _digits(number: str) -> str:
    return "".join(c for c in number if c.isdigit())


def _epoch(created_at: str) -> int | None:
    try:
        return int(datetime.fromisoformat(created_at).timestamp())
    except ValueError:
        return None


def _near(rating: Rating, message: Message) -> bool:
    """The fallback's test: the same caller, and the message begun just after the rating."""
    stored = _epoch(rating.created_at)
    number = _digits(rating.callerid)
    if stored is None or message.origtime is None or not number:
        return False
    if _digits(message.caller_number) != number:
        return False
    return -CLOCK_SKEW_S <= message.origtime - stored <= MATCH_WINDOW_S


def match_messages(ratings: Sequence[Rating], messages: Iterable[Message]) -> dict[int, Message]:
    """The message each rating's caller left, by rating id.

    Why the match is safe: flow `survey` sets `VM_CATEGORY` to the rated call's id (its
    Linkedid, `Rating.call_id`) just before the dialplan runs VoiceMail, and app_voicemail
    writes that variable into the .txt as `category=` (leave_voicemail). A call id is
    unique, and one call has one survey, so a category equal to a rating's call id (with
    the same caller, when both numbers are known) names that rating and no other.

    Messages without a category (left before the flow set it) fall back to the caller's
    number and the time: same number, begun within MATCH_WINDOW_S after the rating was
    stored. That is only taken when it is unambiguous both ways (one such message for the
    rating, and that message near no other rating): two surveys of one caller minutes
    apart show no message rather than perhaps the wrong one.
    """
    pool = list(messages)
    found: dict[int, Message] = {}
    by_call: dict[str, list[Rating]] = {}
    for rating in ratings:
        if rating.call_id:
            by_call.setdefault(rating.call_id, []).append(rating)
    for message in pool:
        owners = by_call.get(message.category, []) if message.category else []
        for rating in owners:
            rated_number = _digits(rating.callerid)
            left_number = _digits(message.caller_number)
            if rated_number and left_number and rated_number != left_number:
                continue  # not the caller who was asked: never theirs
            found.setdefault(rating.id, message)
            break
    unlabelled = [m for m in pool if not m.category]
    waiting = [r for r in ratings if r.id not in found]
    for rating in waiting:
        candidates = [m for m in unlabelled if _near(rating, m)]
        if len(candidates) != 1:
            continue
        (message,) = candidates
        if sum(1 for other in waiting if _near(other, message)) == 1:
            found[rating.id] = message
    return found
