"""Asterisk call files: schedule an outbound call by dropping a file into the spool.

docs/asterisk-protocol.md#call-files is the spec (pbx/pbx_spool.c of Asterisk 20). Two facts shape
this module:

* Asterisk watches `<spool>/outgoing` with inotify and reads a file created there at its first
  IN_CLOSE_WRITE, taking its mtime *at that moment* as the due time (queue_file_write 674-687,
  queue_file 573-583). A file written in place can be read half-written, and a future mtime set
  after writing is too late. So the file is written and fsynced in `<spool>/tmp`, its mtime is
  set to the due time, and only then is it `rename()`d into `outgoing/` (one IN_MOVED_TO on a
  complete file, 793-794). tmp/ and outgoing/ must be on the same filesystem: a cross-device
  move is a copy, with the same races (so it is refused here).
* Every line is `Key: Value`, read by parse_line (177-292): `#` starts a comment at line start or
  after a space/TAB (no escape exists), `;` starts one unless written `\\;` (the backslash is
  then removed), trailing and leading blanks (bytes < 33) around the value are trimmed, and a
  line of more than 1022 bytes is skipped whole (apply_outgoing, 1024-byte fgets buffer). One
  encoder (`encode_line`) applies those rules to every key and value: it escapes `;`, and
  refuses CR, LF, NUL and other control characters, a `#` that would start a comment, blanks
  that would be trimmed, and over-long lines, so no value can add a line (`Application:
  System`) or silently lose its tail.

`parse_call_file` reads a call file with the same rules, for tests and for the simulator.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

# apply_outgoing reads with fgets() into a 1024-byte buffer and skips any line that does not
# fit whole with its newline (pbx_spool.c apply_outgoing): at most 1022 bytes before the "\n".
MAX_LINE_BYTES = 1022
# sscanf("%30d") into an int (parse_line 235-260).
INT_MAX = 2**31 - 1
FILE_MODE = 0o660  # Asterisk appends StartRetry/EndRetry lines and unlinks the file.
NAME_PREFIX = "centralita-"

# Channel is split at the first "/" into tech and dest (parse_line 216-224).
TECH_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Setvar splits "name=value" at the first "=" (strsep, 272-280): names may not hold "=".
# Kept to dialplan variable names, with an optional function argument (CHANNEL(language)) and
# the "_"/"__" inheritance prefixes.
VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\([A-Za-z0-9_.,-]*\))?$")
CALLER_NUMBER_RE = re.compile(r"^[0-9+*#]*$")  # ast_isphonenumber's alphabet
KEY_RE = re.compile(r"^[A-Za-z_]+$")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _check_text(what: str, value: str) -> None:
    for ch in value:
        if ch in "\r\n\0":
            raise ValueError(f"{what}: CR, LF and NUL are not allowed in a call file: {value!r}")
        # Other control characters (C0, DEL, C1 such as NEL) and the Unicode line/paragraph
        # separators: Asterisk would keep them, but they have no place in a channel, a caller
        # ID or a variable, and line-based tools (Python's splitlines) would break on some.
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            raise ValueError(f"{what}: control character {ch!r} is not allowed: {value!r}")


def encode_line(key: str, value: str) -> str:
    """One `Key: Value` line (without the newline), or ValueError if Asterisk would misread it.

    `;` is escaped as `\\;` (parse_line 191-199 removes the backslash again, whatever precedes
    it). Refused: CR, LF, NUL and other control characters; a `#` at the start of the value or
    after a space or TAB (a comment, 181-189, with no escape); blanks at either end of the value
    (trimmed, 202 and 210); a line longer than MAX_LINE_BYTES (skipped by apply_outgoing).
    """
    _check_text("key", key)
    _check_text(key, value)
    if not KEY_RE.match(key):
        raise ValueError(f"{key!r} is not a call file key")
    if value and (ord(value[0]) < 33 or ord(value[-1]) < 33):
        raise ValueError(f"{key}: Asterisk trims blanks around the value: {value!r}")
    escaped = value.replace(";", "\\;")
    line = f"{key}: {escaped}"
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            raise ValueError(
                f"{key}: a '#' after a space starts a comment in a call file: {value!r}"
            )
    if len(line.encode("utf-8")) > MAX_LINE_BYTES:
        raise ValueError(f"{key}: line longer than {MAX_LINE_BYTES} bytes is skipped by Asterisk")
    return line


def format_callerid(name: str, number: str) -> str:
    """`"Name" <number>` as ast_callerid_parse reads it: `"` and `\\` in the name are escaped."""
    _check_text("CallerID name", name)
    if not CALLER_NUMBER_RE.match(number):
        raise ValueError(f"CallerID number must be digits, '+', '*' or '#': {number!r}")
    # ast_unescape_quoted (main/utils.c) drops each backslash and keeps the next character.
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{number}>'


def _int(key: str, value: int, minimum: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, not {value!r}")
    if not minimum <= value <= INT_MAX:
        raise ValueError(f"{key} must be between {minimum} and {INT_MAX}, not {value}")
    return str(value)


def _plain(key: str, value: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"{key} must be non-empty without spaces: {value!r}")
    return value


def build_call_file(
    *,
    channel: str,
    context: str,
    extension: str,
    priority: int = 1,
    callerid: str | None = None,
    max_retries: int = 0,
    retry_time_s: int = 300,
    wait_time_s: int = 45,
    variables: Mapping[str, str] | None = None,
    archive: bool = False,
) -> str:
    """The text of a call file that dials `channel` and runs `extension@context`."""
    tech, sep, dest = channel.partition("/")
    if not sep or not TECH_RE.match(tech) or not dest:
        raise ValueError(f"Channel must be Tech/Destination, like PJSIP/1001: {channel!r}")
    lines = [encode_line("Channel", _plain("Channel", channel))]
    if callerid is not None:
        lines.append(encode_line("CallerID", callerid))
    lines += [
        encode_line("MaxRetries", _int("MaxRetries", max_retries, 0)),
        # RetryTime and WaitTime below 1 are replaced by the defaults (parse_line 251-260).
        encode_line("RetryTime", _int("RetryTime", retry_time_s, 1)),
        encode_line("WaitTime", _int("WaitTime", wait_time_s, 1)),
        encode_line("Context", _plain("Context", context)),
        encode_line("Extension", _plain("Extension", extension)),
        encode_line("Priority", _int("Priority", priority, 1)),
    ]
    for name, value in (variables or {}).items():
        _check_text("Setvar name", name)
        if not VAR_NAME_RE.match(name):
            raise ValueError(f"{name!r} is not a variable name (letters, digits, '_', no '=')")
        if not isinstance(value, str):
            raise ValueError(f"Setvar {name}: value must be a string, not {value!r}")
        lines.append(encode_line("Setvar", f"{name}={value}"))
    if archive:
        lines.append(encode_line("Archive", "yes"))
    return "\n".join(lines) + "\n"


def _due_ns(due: datetime) -> int:
    if due.tzinfo is None or due.utcoffset() is None:
        raise ValueError("due must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return (due - _EPOCH) // timedelta(microseconds=1) * 1000


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_problem(spool_dir: Path) -> str | None:
    """Why survey call files would not reach Asterisk from here, or None.

    Asterisk makes `<spool>/outgoing` when it is installed; a missing one means a wrong
    `spool_dir` or no Asterisk on this machine (call files only work on Asterisk's machine).
    """
    out_dir = Path(spool_dir) / "outgoing"
    if not out_dir.is_dir():
        return (
            f"{out_dir} does not exist: survey call files will not reach Asterisk. Set "
            "[asterisk] spool_dir to Asterisk's spool (astspooldir in asterisk.conf), on "
            "the machine that runs Asterisk"
        )
    if not os.access(out_dir, os.W_OK | os.X_OK):
        return (
            f"{out_dir} is not writable by this user: survey call files will fail. Add the "
            "user to Asterisk's group (docs/deploy.md)"
        )
    return None


def spool_dirs(spool_dir: Path) -> tuple[Path, Path]:
    """`(<spool>/tmp, <spool>/outgoing)`, created if missing and checked to share a filesystem."""
    tmp_dir, out_dir = spool_dir / "tmp", spool_dir / "outgoing"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tmp_dir.stat().st_dev != out_dir.stat().st_dev:
        raise OSError(
            errno.EXDEV,
            f"{tmp_dir} and {out_dir} are on different filesystems: a call file must be "
            "renamed into outgoing/, not copied (docs/asterisk-protocol.md#call-files)",
        )
    return tmp_dir, out_dir


def write_call_file(
    spool_dir: Path,
    *,
    due: datetime,
    channel: str,
    context: str,
    extension: str,
    priority: int = 1,
    callerid: str | None,
    max_retries: int,
    retry_time_s: int,
    wait_time_s: int,
    variables: Mapping[str, str],
    archive: bool = False,
) -> Path:
    """Schedule a call at `due`: write the file in tmp/, date it, rename it into outgoing/.

    Returns the file's path in outgoing/. Raises ValueError for a value Asterisk would misread
    (before anything is written) and OSError for a spool that cannot be written.
    """
    due_ns = _due_ns(due)
    data = build_call_file(
        channel=channel,
        context=context,
        extension=extension,
        priority=priority,
        callerid=callerid,
        max_retries=max_retries,
        retry_time_s=retry_time_s,
        wait_time_s=wait_time_s,
        variables=variables,
        archive=archive,
    ).encode("utf-8")
    tmp_dir, out_dir = spool_dirs(Path(spool_dir))
    name = f"{NAME_PREFIX}{due_ns // 1_000_000_000}-{uuid.uuid4().hex}.call"
    tmp_path, out_path = tmp_dir / name, out_dir / name
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # The mtime is the due time (queue_file 583); set after the last write, which
            # would otherwise reset it, and before the rename, after which it is too late.
            os.utime(fd, ns=(due_ns, due_ns))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp_path, out_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    # Principle 4 (nothing is lost): the rename itself survives a crash once the directory
    # entry is on disk.
    _fsync_dir(out_dir)
    return out_path


async def schedule_call(
    spool_dir: Path,
    *,
    due: datetime,
    channel: str,
    context: str,
    extension: str,
    priority: int = 1,
    callerid: str | None,
    max_retries: int,
    retry_time_s: int,
    wait_time_s: int,
    variables: Mapping[str, str],
    archive: bool = False,
) -> Path:
    """`write_call_file` in a worker thread, so that fsync never blocks the event loop."""
    return await asyncio.to_thread(
        write_call_file,
        spool_dir,
        due=due,
        channel=channel,
        context=context,
        extension=extension,
        priority=priority,
        callerid=callerid,
        max_retries=max_retries,
        retry_time_s=retry_time_s,
        wait_time_s=wait_time_s,
        variables=dict(variables),
        archive=archive,
    )


def sweep_tmp(spool_dir: Path, max_age_s: float = 3600.0) -> int:
    """Remove our leftovers in tmp/ (a crash between write and rename); returns how many."""
    removed = 0
    tmp_dir = Path(spool_dir) / "tmp"
    if not tmp_dir.is_dir():
        return 0
    limit = time.time() - max_age_s
    for path in tmp_dir.glob(f"{NAME_PREFIX}*.call"):
        try:
            # ctime, not mtime: the mtime is the (possibly future) due time.
            if path.stat().st_ctime < limit:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


# --------------------------------------------------------------------------- reading


class CallFile(TypedDict):
    """What Asterisk would take from a call file (pbx_spool.c parse_line and apply_outgoing)."""

    channel: str  # "Tech/Dest" as split at the first "/", "" when missing or malformed
    tech: str
    dest: str
    callerid: str  # the raw value
    cid_name: str  # as ast_callerid_split reads it
    cid_num: str
    application: str
    data: str
    context: str
    extension: str
    priority: int
    maxretries: int
    retrytime: int
    waittime: int
    account: str
    codecs: str
    setvar: list[tuple[str, str]]  # in file order; Asterisk sets them in this order
    variables: dict[str, str]  # the same, the last value of each name
    archive: bool
    alwaysdelete: bool
    early_media: bool
    retries: int  # Retry/EndRetry/AbortRetry lines Asterisk appended
    callingpid: int
    unknown: list[str]  # unknown keywords (Asterisk warns and ignores them)
    errors: list[str]  # lines Asterisk would warn about or skip
    valid: bool  # Channel plus Application or Extension; else Asterisk deletes the file


def _fgets_lines(data: bytes) -> list[tuple[int, bytes | None]]:
    """Lines as apply_outgoing sees them: (line number, bytes) or (line number, None) if skipped."""
    out: list[tuple[int, bytes | None]] = []
    pos, lineno, size = 0, 0, MAX_LINE_BYTES + 1  # fgets(buf, 1024) reads at most 1023 bytes
    while pos < len(data):
        end = data.find(b"\n", pos, pos + size)
        chunk = data[pos : end + 1] if end >= 0 else data[pos : pos + size]
        pos += len(chunk)
        eof = end < 0 and len(chunk) < size  # this read ran into the end of the file
        lineno += 1
        text = chunk.split(b"\0", 1)[0]  # strlen() stops at a NUL
        if text and (text.endswith(b"\n") or eof):
            out.append((lineno, text))
            continue
        out.append((lineno, None))
        # The rest of the over-long line is consumed and dropped (apply_outgoing 309-315).
        while pos < len(data):
            end = data.find(b"\n", pos, pos + size)
            chunk = data[pos : end + 1] if end >= 0 else data[pos : pos + size]
            pos += len(chunk)
            rest = chunk.split(b"\0", 1)[0]
            if (rest and rest.endswith(b"\n")) or (end < 0 and len(chunk) < size):
                break
    return out


def _sscanf_int(value: str) -> int | None:
    match = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]{1,30})", value)
    if match is None:
        return None
    number = int(match.group(1))
    return number if -(2**31) <= number <= INT_MAX else None


def _ast_true(value: str) -> bool:
    return value.lower() in {"yes", "true", "y", "t", "1", "on"}


def _skip_blanks(s: str) -> str:
    i = 0
    while i < len(s) and ord(s[i]) < 33:
        i += 1
    return s[i:]


def _trim_blanks(s: str) -> str:
    end = len(s)
    while end > 0 and ord(s[end - 1]) < 33:
        end -= 1
    return s[:end]


def _strip_quoted(s: str) -> str:
    s = _trim_blanks(_skip_blanks(s))
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1]
    if s == '"':  # ast_strip_quoted: the one quote is both the start and the end
        return ""
    return s


def _shrink_phone_number(n: str) -> str:
    out: list[str] = []
    bracketed = 0
    for i, ch in enumerate(n):
        if ch == "[":
            bracketed += 1
            out.append(ch)
        elif ch == "]":
            bracketed -= 1
            out.append(ch)
        elif ch == "-":
            if bracketed:
                out.append(ch)
        elif ch == ".":
            if i == len(n) - 1:
                out.append(ch)
        elif ch not in "( )":
            out.append(ch)
    return "".join(out)


def _unescape_quoted(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 1
            if i >= len(s):
                break
        out.append(s[i])
        i += 1
    return "".join(out)


def split_callerid(value: str) -> tuple[str, str]:
    """(name, number) as Asterisk's ast_callerid_split reads a CallerID value (main/callerid.c)."""
    stripped = _trim_blanks(_skip_blanks(value))
    instr = _strip_quoted(stripped)
    quotes_stripped = instr != stripped
    name: str | None
    location: str | None
    ls = instr.rfind("<")
    if ls >= 0:
        rest = instr[ls + 1 :]
        le = rest.rfind(">")
        location = rest[:le] if le >= 0 else rest
        name = _strip_quoted(instr[:ls])
    else:
        shrunk = _shrink_phone_number(instr)
        if not quotes_stripped and shrunk and set(shrunk) <= set("0123456789*#+"):
            name, location = None, shrunk
        else:
            name, location = _strip_quoted(instr), None
    cid_name = _unescape_quoted(name) if name is not None else ""
    cid_num = _shrink_phone_number(location) if location is not None else ""
    # ast_callerid_split copies into 80-byte buffers.
    return _truncate(cid_name, 79), _truncate(cid_num, 79)


def _truncate(s: str, limit: int) -> str:
    return s.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _strip_comments(line: str) -> str:
    # "#" at line start or after a space/TAB ends the line (parse_line 181-189).
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            line = line[:i]
            break
    # ";" ends the line unless escaped; "\;" becomes ";" (191-199).
    out: list[str] = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == ";":
            if out and out[-1] == "\\":
                out[-1] = ";"
            else:
                break
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_call_file(text: str | bytes) -> CallFile:
    """Read a call file the way Asterisk 20's pbx_spool.c does (parse_line, apply_outgoing)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    result = CallFile(
        channel="", tech="", dest="", callerid="", cid_name="", cid_num="",
        application="", data="", context="", extension="", priority=1,
        maxretries=0, retrytime=300, waittime=45, account="", codecs="",
        setvar=[], variables={}, archive=False, alwaysdelete=True, early_media=False,
        retries=0, callingpid=0, unknown=[], errors=[], valid=False,
    )  # fmt: skip
    for lineno, raw in _fgets_lines(data):
        if raw is None:
            result["errors"].append(f"line {lineno}: longer than {MAX_LINE_BYTES} bytes, skipped")
            continue
        line = _trim_blanks(_strip_comments(raw.decode("utf-8", "replace")))
        if not line:
            continue
        key, colon, rest = line.partition(":")
        if not colon:
            result["errors"].append(f"line {lineno}: syntax error (no ':')")
            continue
        _apply(result, key.lower(), key, _skip_blanks(rest), lineno)
    result["valid"] = bool(
        result["tech"] and result["dest"] and (result["application"] or result["extension"])
    )
    return result


def _apply(result: CallFile, key: str, original: str, value: str, lineno: int) -> None:
    ints = {"maxretries": (0, None), "priority": (1, 1), "retrytime": (300, 1), "waittime": (45, 1)}
    strings = ("application", "data", "context", "extension", "account")
    if key == "channel":
        tech, sep, dest = value.partition("/")
        if sep:
            result["tech"], result["dest"], result["channel"] = tech, dest, value
        else:
            result["errors"].append(f"line {lineno}: Channel should be Tech/Dest")
    elif key == "callerid":
        result["callerid"] = value
        result["cid_name"], result["cid_num"] = split_callerid(value)
    elif key in strings:
        result[key] = value  # type: ignore[literal-required]
    elif key == "codecs":
        result["codecs"] = value
    elif key in ints:
        default, minimum = ints[key]
        number = _sscanf_int(value)
        if number is None or (minimum is not None and number < minimum):
            result["errors"].append(f"line {lineno}: invalid {original}")
            number = default
        result[key] = number  # type: ignore[literal-required]
    elif key == "retry":
        result["retries"] += 1
    elif key == "startretry":
        pid = _sscanf_int(value)
        result["callingpid"] = pid if pid is not None else 0
    elif key in ("endretry", "abortretry"):
        result["callingpid"] = 0
        result["retries"] += 1
    elif key == "delayedretry":
        pass
    elif key in ("setvar", "set"):
        name, eq, var_value = value.partition("=")
        if eq:
            result["setvar"].append((name, var_value))
            result["variables"][name] = var_value
        else:
            result["errors"].append(f"line {lineno}: malformed {original} (no '=')")
    elif key in ("archive", "alwaysdelete", "early_media"):
        result[key] = _ast_true(value)  # type: ignore[literal-required]
    else:
        result["unknown"].append(original)
