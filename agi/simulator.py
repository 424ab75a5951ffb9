"""The simulated channel behind `agi.testing`: answers AGI command lines as Asterisk 20 does.

`SimulatedChannel.handle()` takes one command line and returns the lines a real channel
would write back; `COMMAND_HANDLERS` maps each simulated command to its method. `Caller`
scripts the call (keys, hangup, variables), `CallResult` records what the flow did. The
network side (headers, the socket) is `agi.testing`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from agi.command_line import command_reads_keys, match_command, parse_args
from dialplan.names import ROUTE_VAR

# -- Asterisk's exact texts (res_agi.c:4251-4314) ------------------------------------------------
INVALID_COMMAND = "510 Invalid or unknown command"
DEAD_CHANNEL = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_START = "520-Invalid command syntax.  Proper usage follows:"
USAGE_END = "520 End of proper usage."

# Usage bodies as Asterisk sends them (raw XML markup left in,
# docs/asterisk-protocol.md#agi-replies). GET DATA's is recorded in fastagi-ivr.txt; the others are
# the first lines of each command's description.
USAGE_TEXT: dict[str, tuple[str, ...]] = {
    "get data": (
        "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
        "Returns the digits received from the channel at the other end.",
    ),
    "stream file": (
        "Send the given file, allowing playback to be interrupted by the given digits, if any.",
    ),
    "say digits": ("Say a given digit string, returning early if any of the given DTMF digits",),
    "say number": ("Say a given number, returning early if any of the given DTMF digits",),
    "get option": ("Behaves similar to STREAM FILE but used with a timeout option.",),
    "wait for digit": ("Waits up to <replaceable>timeout</replaceable> milliseconds for channel",),
    "set variable": ("Sets a variable to the current channel.",),
    "get variable": ("Returns <literal>0</literal> if <replaceable>variablename</replaceable>",),
    "get full variable": ("Evaluates the given <replaceable>expression</replaceable> against the",),
    "set context": ("Sets the context for continuation upon exiting the application.",),
    "set extension": ("Changes the extension for continuation upon exiting the application.",),
    "set priority": ("Changes the priority for continuation upon exiting the application.",),
    "database get": ("Retrieves an entry in the Asterisk database for a given",),
    "database put": ("Adds or updates an entry in the Asterisk database for a given",),
    "exec": ("Executes <replaceable>application</replaceable> with given",),
    "hangup": ("Hangs up the specified channel. If no channel name is given, hangs",),
}

# Commands allowed on a dead channel: the table's `dead=1` entries (res_agi.c:3911-3958).
DEAD_ALLOWED = frozenset(
    {
        "asyncagi break",
        "database del",
        "database deltree",
        "database get",
        "database put",
        "exec",
        "get full variable",
        "get variable",
        "noop",
        "set variable",
        "verbose",
    }
)

# Applications the simulated Asterisk knows; EXEC of anything else answers -2
# (docs/asterisk-protocol.md#agi-commands).
KNOWN_APPS = frozenset(
    {
        "answer",
        "background",
        "dial",
        "goto",
        "gotoif",
        "hangup",
        "log",
        "mixmonitor",
        "noop",
        "playback",
        "queue",
        "read",
        "ringing",
        "saydigits",
        "saynumber",
        "set",
        "system",
        "verbose",
        "voicemail",
        "voicemailmain",
        "wait",
    }
)

DEFAULT_SOUND_SAMPLES = 8000  # endpos of a prompt played to its end, 1 s at 8 kHz
# Recorded in fastagi-none/ivr.txt and agi-fidelity/ (Asterisk's own gsm prompts).
RECORDED_SOUND_SAMPLES = {"beep": 3520, "hello-world": 11360, "tt-weasels": 23680}


MEDIA_COMMANDS = frozenset(
    {
        "stream file",
        "get data",
        "get option",
        "wait for digit",
        "say digits",
        "say number",
        "say alpha",
        "control stream file",
        "record file",
        "exec",
    }
)


@dataclass
class Caller:
    """One scripted call. Every header can be set; the defaults are those of the traces."""

    script: str = "language"
    args: Sequence[str] = ()
    keys: Sequence[str | None] = ()
    hangup_at: int | None = None
    hangup_after_s: float | None = None
    # Hang up when this event is set (e.g. by a fake CRM when the flow asks it): a hangup at
    # an exact moment between commands, without a clock.
    hangup_on: asyncio.Event | None = None
    callerid: str = "5551234567"
    calleridname: str = "Alice Example"
    language: str = "en"
    channel: str | None = None
    uniqueid: str | None = None
    type: str = "PJSIP"
    version: str = "20.20.1"
    callingpres: int = 0
    callingani2: int = 0
    callington: int = 0
    callingtns: int = 0
    dnid: str = "unknown"
    rdnis: str = "unknown"
    context: str = "incoming"
    extension: str = "s"
    priority: int = 2
    accountcode: str = ""
    threadid: str = "140008372963008"
    server_address: str | None = None  # host[:port] in agi_request; default: where we connect
    variables: Mapping[str, str] = field(default_factory=dict)
    device_states: Mapping[str, str] = field(default_factory=dict)
    database: Mapping[tuple[str, str], str] = field(default_factory=dict)
    missing_sounds: Iterable[str] = ()
    sound_samples: Mapping[str, int] = field(default_factory=dict)
    app_results: Mapping[str, int] = field(default_factory=dict)
    answered: bool = False  # channel state at AGI start (Up after Answer in the dialplan)
    # AGI started on a channel already hung up (a hangup handler): Asterisk runs it in dead
    # mode from the start and never sends HANGUP for it (res_agi.c run_agi: `needhup` is only
    # set by a read on a live channel); commands not allowed on a dead channel answer 511.
    dead: bool = False
    timeout_s: float = 60.0  # bound on the whole call, so a stuck flow cannot hang a test
    # Each command that reads keys takes an entry, and a prompt drops keys that are not its
    # escape digits, as Asterisk does (see the module's docstring).
    keys_per_prompt: bool = False


@dataclass
class CallResult:
    """What the flow did to the call."""

    headers: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)  # every line sent back, HANGUP included
    transcript: list[tuple[str, str]] = field(default_factory=list)  # ("S"|"A", line)
    heard: list[str] = field(default_factory=list)  # prompts played, "digits:123", "number:7"
    variables: dict[str, str] = field(default_factory=dict)
    variables_set: list[tuple[str, str]] = field(default_factory=list)
    apps: list[tuple[str, str]] = field(default_factory=list)
    database: dict[tuple[str, str], str] = field(default_factory=dict)
    language: str = "en"
    context: str | None = None
    extension: str | None = None
    priority: str | None = None
    caller_hung_up: bool = False
    server_hung_up: bool = False  # the flow sent HANGUP
    closed_by_server: bool = False
    error: str | None = None  # the simulator's bound or a broken connection

    @property
    def route(self) -> str | None:
        """The destination the flow chose (ROUTE_VAR), for the dialplan to act on."""
        return self.variables.get(ROUTE_VAR)


_VAR_RE = re.compile(r"\$\{([^${}]*)\}")


class SimulatedChannel:
    """The channel side of one FastAGI session: answers command lines like Asterisk."""

    def __init__(self, caller: Caller, result: CallResult) -> None:
        self.caller = caller
        self.result = result
        self.keys: list[str | None] = list(caller.keys)
        self.index = -1
        self.pressed: str | None = None  # keys_per_prompt: the entry of the running command
        self.up = caller.answered
        self.dead = caller.dead
        self.hangup_notice_due = False
        self.variables: dict[str, str] = dict(caller.variables)
        self.database: dict[tuple[str, str], str] = dict(caller.database)
        self.missing = set(caller.missing_sounds)
        self.samples = {**RECORDED_SOUND_SAMPLES, **caller.sound_samples}
        result.language = caller.language
        result.database = self.database
        result.variables = self.variables

    # -- hangup ------------------------------------------------------------------------------

    @property
    def sighup(self) -> bool:
        # AGISIGHUP defaults on; only an explicit false value silences HANGUP (res_agi.c:4344).
        return self.variables.get("AGISIGHUP", "yes").lower() not in ("no", "false", "0", "off")

    def hang_up(self) -> None:
        """The caller hangs up; Asterisk says `HANGUP` before its next answer."""
        if not self.dead:
            self.dead = True
            self.result.caller_hung_up = True
            self.hangup_notice_due = self.sighup

    def take_hangup_notice(self) -> list[str]:
        if self.hangup_notice_due:
            self.hangup_notice_due = False
            return ["HANGUP"]
        return []

    # -- keys --------------------------------------------------------------------------------

    def _next_entry(self) -> str | None:
        if self.caller.keys_per_prompt:
            return self.pressed  # taken when the command arrived (handle)
        return self.keys.pop(0) if self.keys else None

    def _escape_key(self, escape: str) -> str | None:
        """A prompt with escape digits: the caller's next key interrupts it if allowed."""
        if self.caller.keys_per_prompt:
            # Asterisk drops a key that is not an escape digit (file.c waitstream_core reads
            # it and only returns for one of `breakon`), recorded in unescaped-key.txt.
            pressed = self.pressed or ""
            for position, key in enumerate(pressed):
                if key in escape:
                    rest = pressed[position + 1 :]
                    if rest:
                        self.keys.insert(0, rest)  # typed on after the prompt ended
                    return key
            return None
        if not self.keys or not escape:
            return None
        entry = self.keys[0]
        if entry and entry[0] in escape:
            rest = entry[1:]
            if rest:
                self.keys[0] = rest
            else:
                self.keys.pop(0)
            return entry[0]
        return None

    def _play(self, filename: str) -> bool:
        self.result.heard.append(filename)
        return filename not in self.missing

    def _length(self, filename: str) -> int:
        return self.samples.get(filename, DEFAULT_SOUND_SAMPLES)

    # -- the command loop --------------------------------------------------------------------

    def handle(self, line: str) -> list[str]:
        """Answer one command line; returns the lines Asterisk would write back."""
        self.index += 1
        argv = parse_args(line)
        words = match_command(argv)
        if words is None:
            return [*self.take_hangup_notice(), INVALID_COMMAND]
        name = " ".join(words)
        args = argv[len(words) :]
        if self.caller.keys_per_prompt:
            self.pressed = None
            if command_reads_keys(name, args) and self.keys:
                self.pressed = self.keys.pop(0)
        interrupted = False
        if self.caller.hangup_at == self.index and not self.dead:
            if name in MEDIA_COMMANDS and not (name == "exec" and not self._is_media_app(args)):
                interrupted = True  # the caller hangs up while this command plays or listens
            else:
                self.hang_up()  # gone before the command arrived
        if self.dead and name not in DEAD_ALLOWED:
            return [*self.take_hangup_notice(), DEAD_CHANNEL]
        if interrupted:
            reply = self._interrupted(name, args)
            self.hang_up()
            return reply
        notice = self.take_hangup_notice()
        return [*notice, *self._dispatch(name, args)]

    def _is_media_app(self, args: list[str]) -> bool:
        return bool(args) and args[0].lower() in (
            "playback",
            "background",
            "read",
            "wait",
            "dial",
            "queue",
            "voicemail",
        )

    def _interrupted(self, name: str, args: list[str]) -> list[str]:
        if name in ("stream file", "get option", "control stream file"):
            if args:
                self._play(args[0])
            return ["200 result=-1 endpos=0"]
        if name == "get data" and args:
            self._play(args[0])
        if name == "exec" and args:
            self.result.apps.append((args[0], args[1] if len(args) > 1 else ""))
        if name == "record file":
            return ["200 result=-1 (hangup) endpos=0"]
        return ["200 result=-1"]

    def _usage(self, name: str) -> list[str]:
        body = USAGE_TEXT.get(name)
        if body is None:
            return ["520 Invalid command syntax.  Proper usage not available."]
        return [USAGE_START, *body, USAGE_END]

    def _dispatch(self, name: str, args: list[str]) -> list[str]:
        handler = COMMAND_HANDLERS.get(name)
        if handler is None:
            return [INVALID_COMMAND]  # receive char, record file, control stream file: not modelled
        # argc counts the command's words too, as res_agi.c's handlers see it.
        return handler(self, args, len(args) + len(name.split()))

    # -- one handler per command (COMMAND_HANDLERS); each answers (args, argc) ---------------

    def _answer(self, args: list[str], argc: int) -> list[str]:
        self.up = True
        return ["200 result=0"]

    def _noop(self, args: list[str], argc: int) -> list[str]:
        return ["200 result=0"]

    def _hangup(self, args: list[str], argc: int) -> list[str]:
        if argc > 2:
            return self._usage("hangup")
        if args and args[0] != self.caller.channel and args[0] != self._channel_name():
            return ["200 result=-1"]
        self.dead = True
        self.result.server_hung_up = True
        # `200 result=1` then `HANGUP` in one read (docs/asterisk-protocol.md#agi-hangup).
        return ["200 result=1", "HANGUP"] if self.sighup else ["200 result=1"]

    def _stream_file(self, args: list[str], argc: int) -> list[str]:
        if argc not in (4, 5):
            return self._usage("stream file")
        filename, escape = args[0], args[1]
        if not self._play(filename):
            offset = args[2] if len(args) > 2 else "0"
            return [f"200 result=-1 endpos={offset}"]
        key = self._escape_key(escape)
        length = self._length(filename)
        if key is not None:
            return [f"200 result={ord(key)} endpos={length // 2}"]
        return [f"200 result=0 endpos={length}"]

    def _get_data_command(self, args: list[str], argc: int) -> list[str]:
        if argc < 3:
            return self._usage("get data")
        return [self._get_data(args)]

    def _get_option(self, args: list[str], argc: int) -> list[str]:
        if argc not in (4, 5):
            return self._usage("get option")
        filename, escape = args[0], args[1]
        if not self._play(filename):
            return ["200 result=-1 endpos=0"]
        length = self._length(filename)
        key = self._escape_key(escape)
        if key is not None:
            return [f"200 result={ord(key)} endpos={length // 2}"]
        if self.caller.keys_per_prompt:
            return [f"200 result=0 endpos={length}"]  # its entry had no escape digit
        entry = self._next_entry()  # silence or a key after the prompt
        if entry and entry[0] in escape:
            return [f"200 result={ord(entry[0])} endpos={length}"]
        return [f"200 result=0 endpos={length}"]

    def _wait_for_digit(self, args: list[str], argc: int) -> list[str]:
        if argc != 4:
            return self._usage("wait for digit")
        entry = self._next_entry()
        return [f"200 result={ord(entry[0])}" if entry else "200 result=0"]

    def _say_digits(self, args: list[str], argc: int) -> list[str]:
        if argc != 4:
            return self._usage("say digits")
        return self._say_integer("digits", args)

    def _say_number(self, args: list[str], argc: int) -> list[str]:
        if argc not in (4, 5):
            return self._usage("say number")
        return self._say_integer("number", args)

    def _say_integer(self, kind: str, args: list[str]) -> list[str]:
        if not re.fullmatch(r"-?\d+", args[0]):
            # Both parse their argument with sscanf %d (res_agi.c:2850-2879).
            return self._usage(f"say {kind}")
        self.result.heard.append(f"{kind}:{args[0]}")
        key = self._escape_key(args[1])
        return [f"200 result={ord(key)}" if key else "200 result=0"]

    def _say_alpha(self, args: list[str], argc: int) -> list[str]:
        if argc < 4:
            return self._usage("say alpha")
        self.result.heard.append(f"alpha:{args[0]}")
        key = self._escape_key(args[1])
        return [f"200 result={ord(key)}" if key else "200 result=0"]

    def _get_variable(self, args: list[str], argc: int) -> list[str]:
        if argc != 3:
            return self._usage("get variable")
        value = self._read(args[0])
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _get_full_variable(self, args: list[str], argc: int) -> list[str]:
        if argc not in (4, 5):
            return self._usage("get full variable")
        if argc == 5 and args[1] not in (self.caller.channel, self._channel_name()):
            return ["200 result=0"]
        return [f"200 result=1 ({self._expand(args[0])})"]

    def _set_variable(self, args: list[str], argc: int) -> list[str]:
        if argc != 4:
            return self._usage("set variable")
        self._write(args[0], args[1])
        return ["200 result=1"]

    def _exec(self, args: list[str], argc: int) -> list[str]:
        if argc < 2:
            return self._usage("exec")
        app = args[0]
        data = args[1] if len(args) > 1 else ""
        if app.lower() not in KNOWN_APPS:
            return ["200 result=-2"]
        self.result.apps.append((app, data))
        if app.lower() == "set" and "=" in data:
            # Set() works on a dead channel too (agi-fidelity/*/variables.txt).
            variable, _, value = data.partition("=")
            self._write(variable.strip(), value)
        if self.dead:
            # An application on a dead channel answers what it returns: Playback,
            # Background, Read, NoOp give 0 (agi-fidelity/*/hangup-get-data.txt), Wait
            # gave -1 right after a hangup in fastagi-none.txt (see agi-fidelity/README).
            return ["200 result=-1" if app.lower() == "wait" else "200 result=0"]
        if app.lower() in ("playback", "background"):
            for filename in data.split(",")[0].split("&"):
                self._play(filename)
        return [f"200 result={self.caller.app_results.get(app, 0)}"]

    def _set_context(self, args: list[str], argc: int) -> list[str]:
        if argc != 3:
            return self._usage("set context")
        self.result.context = args[0]
        return ["200 result=0"]

    def _set_extension(self, args: list[str], argc: int) -> list[str]:
        if argc != 3:
            return self._usage("set extension")
        self.result.extension = args[0]
        return ["200 result=0"]

    def _set_priority(self, args: list[str], argc: int) -> list[str]:
        if argc != 3:
            return self._usage("set priority")
        self.result.priority = args[0]
        return ["200 result=0"]

    def _channel_status(self, args: list[str], argc: int) -> list[str]:
        if argc > 3:
            return self._usage("channel status")
        if args and args[0] not in (self.caller.channel, self._channel_name()):
            return ["200 result=-1"]
        return [f"200 result={6 if self.up else 4}"]

    def _database_get(self, args: list[str], argc: int) -> list[str]:
        if argc != 4:
            return self._usage("database get")
        value = self.database.get((args[0], args[1]))
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    def _database_put(self, args: list[str], argc: int) -> list[str]:
        if argc != 5:
            return self._usage("database put")
        self.database[(args[0], args[1])] = args[2]
        return ["200 result=1"]

    def _database_del(self, args: list[str], argc: int) -> list[str]:
        if argc != 4:
            return self._usage("database del")
        return [f"200 result={int(self.database.pop((args[0], args[1]), None) is not None)}"]

    def _database_deltree(self, args: list[str], argc: int) -> list[str]:
        keys = [k for k in self.database if k[0] == (args[0] if args else "")]
        for k in keys:
            del self.database[k]
        # Inverted on purpose: Asterisk 20.20.1 answers 0 when it deleted something
        # (docs/asterisk-protocol.md#agi-commands).
        return ["200 result=0" if keys else "200 result=1"]

    def _verbose(self, args: list[str], argc: int) -> list[str]:
        return ["200 result=1"] if argc >= 2 else self._usage("verbose")

    def _accepted(self, args: list[str], argc: int) -> list[str]:
        return ["200 result=0"]  # set music, set autohangup: no effect to simulate

    def _set_callerid(self, args: list[str], argc: int) -> list[str]:
        return ["200 result=1"]

    def _get_data(self, args: list[str]) -> str:
        filename = args[0]
        max_digits = 1024
        if len(args) > 2:
            try:
                max_digits = int(args[2])
            except ValueError:
                max_digits = 1024
        if not self._play(filename) or max_digits == 0:
            return "200 result=-1"  # missing prompt (docs/asterisk-protocol.md#get-data)
        entry = self._next_entry() or ""
        digits = ""
        for key in entry:
            if key == "#":
                # `#` ends the entry and is not included; `#` first gives an empty result.
                return f"200 result={digits}"
            digits += key
            if len(digits) >= max_digits:
                return f"200 result={digits}"
        return f"200 result={digits} (timeout)"

    # -- variables -------------------------------------------------------------------------

    def _channel_name(self) -> str:
        return self.caller.channel or ""

    def _read(self, name: str) -> str | None:
        if name.endswith(")") and "(" in name:
            function, _, argument = name[:-1].partition("(")
            return self._function(function.upper(), argument)
        return self.variables.get(name)

    def _function(self, function: str, argument: str) -> str | None:
        if function == "CHANNEL":
            return {
                "language": self.result.language,
                "state": "Up" if self.up else "Ring",
                "name": self._channel_name(),
                "uniqueid": self.caller.uniqueid or "",
                # One channel alone: its Linkedid is its own Uniqueid.
                "linkedid": self.variables.get("LINKEDID", self.caller.uniqueid or ""),
            }.get(argument.lower())
        if function == "CALLERID":
            return {"num": self.caller.callerid, "name": self.caller.calleridname}.get(
                argument.lower()
            )
        if function == "DEVICE_STATE":
            return self.caller.device_states.get(argument, "UNKNOWN")
        if function == "DB":
            family, _, key = argument.partition("/")
            return self.database.get((family, key))
        return self.variables.get(f"{function}({argument})")

    def _expand(self, expression: str) -> str:
        for _ in range(20):
            match = _VAR_RE.search(expression)
            if match is None:
                break
            value = self._read(match.group(1)) or ""
            expression = expression[: match.start()] + value + expression[match.end() :]
        return expression

    def _write(self, name: str, value: str) -> None:
        self.result.variables_set.append((name, value))
        bare = name.lstrip("_")  # `_X`/`__X` make X inheritable (pbx_variables.c:1256-1258)
        if bare.upper() == "CHANNEL(LANGUAGE)":
            self.result.language = value
            return
        self.variables[bare] = value


# The simulated command set: command words -> the SimulatedChannel method that answers it. A
# registered command missing here (receive char, record file, control stream file) is not
# modelled and answers 510.
COMMAND_HANDLERS: dict[str, Callable[[SimulatedChannel, list[str], int], list[str]]] = {
    "answer": SimulatedChannel._answer,
    "asyncagi break": SimulatedChannel._noop,
    "channel status": SimulatedChannel._channel_status,
    "database del": SimulatedChannel._database_del,
    "database deltree": SimulatedChannel._database_deltree,
    "database get": SimulatedChannel._database_get,
    "database put": SimulatedChannel._database_put,
    "exec": SimulatedChannel._exec,
    "get data": SimulatedChannel._get_data_command,
    "get full variable": SimulatedChannel._get_full_variable,
    "get option": SimulatedChannel._get_option,
    "get variable": SimulatedChannel._get_variable,
    "hangup": SimulatedChannel._hangup,
    "noop": SimulatedChannel._noop,
    "say alpha": SimulatedChannel._say_alpha,
    "say digits": SimulatedChannel._say_digits,
    "say number": SimulatedChannel._say_number,
    "set autohangup": SimulatedChannel._accepted,
    "set callerid": SimulatedChannel._set_callerid,
    "set context": SimulatedChannel._set_context,
    "set extension": SimulatedChannel._set_extension,
    "set music": SimulatedChannel._accepted,
    "set priority": SimulatedChannel._set_priority,
    "set variable": SimulatedChannel._set_variable,
    "stream file": SimulatedChannel._stream_file,
    "verbose": SimulatedChannel._verbose,
    "wait for digit": SimulatedChannel._wait_for_digit,
}
