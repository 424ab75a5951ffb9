"""How Asterisk reads an AGI command line: its tokenizer and its registered command words.

Asterisk's side of the conversation, for the simulator (`agi.simulator`, `agi.testing`);
Centralita's own side is `agi.protocol.encode_command`. Pure functions, no I/O.
"""

from __future__ import annotations


def parse_args(line: str) -> list[str]:
    """Asterisk's AGI tokenizer (res_agi.c parse_args; docs/asterisk-protocol.md#agi-arguments).

    Space and TAB separate arguments outside quotes; `"` toggles quoting and is dropped (after
    whitespace it starts an argument even if empty); `\\` escapes the next character. At most
    127 arguments are kept.
    """
    args: list[str] = []
    current: list[str] = []
    in_word = False
    quoted = False
    escaped = False
    for ch in line:
        if escaped:
            current.append(ch)
            in_word = True
            escaped = False
        elif ch == "\\":
            escaped = True
            in_word = True
        elif ch == '"':
            quoted = not quoted
            in_word = True
        elif ch in " \t" and not quoted:
            if in_word:
                args.append("".join(current))
                current = []
                in_word = False
        else:
            current.append(ch)
            in_word = True
    if in_word:
        args.append("".join(current))
    return args[:127]


# The registered command words (longest first so that `get full variable` beats `get ...`).
COMMANDS: tuple[tuple[str, ...], ...] = tuple(
    sorted(
        (
            tuple(words.split())
            for words in (
                "answer",
                "asyncagi break",
                "channel status",
                "control stream file",
                "database del",
                "database deltree",
                "database get",
                "database put",
                "exec",
                "get data",
                "get full variable",
                "get option",
                "get variable",
                "hangup",
                "noop",
                "receive char",
                "record file",
                "say alpha",
                "say digits",
                "say number",
                "set autohangup",
                "set callerid",
                "set context",
                "set extension",
                "set music",
                "set priority",
                "set variable",
                "stream file",
                "verbose",
                "wait for digit",
            )
        ),
        key=len,
        reverse=True,
    )
)


def command_reads_keys(name: str, args: list[str]) -> bool:
    """Whether command `name` listens for keys: always, or when it has escape digits."""
    if name in ("get data", "wait for digit", "get option"):
        return True
    if name in ("stream file", "control stream file", "say digits", "say number", "say alpha"):
        return len(args) > 1 and args[1] != ""
    return False


def reads_keys(line: str) -> bool:
    """Whether a command line reads the caller's keys (with `keys_per_prompt`: takes an entry)."""
    argv = parse_args(line)
    words = match_command(argv)
    return words is not None and command_reads_keys(" ".join(words), argv[len(words) :])


def match_command(argv: list[str]) -> tuple[str, ...] | None:
    """The registered command words `argv` starts with, without case (res_agi.c find_command)."""
    lowered = [a.lower() for a in argv[:3]]
    for words in COMMANDS:
        if tuple(lowered[: len(words)]) == words:
            return words
    return None
