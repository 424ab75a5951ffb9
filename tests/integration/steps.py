"""Following one call's dialog with a flow: each answer goes to the question it belongs to."""

from __future__ import annotations

from ami.protocol import AmiMessage

from .people import Call


class Menu:
    """Follows one call's AGI commands in order, so each answer goes to the right question."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.position = call.mark

    async def next(self, command: str, prompt: str = "") -> AmiMessage:
        """Wait for the next `command` (with `prompt` in it) after the previous one."""
        ami = self.call.ami
        event = await ami.wait_for(
            lambda m: (
                m.name == "AGIExecStart"
                and m.get("Channel") == self.call.near
                and (m.get("Command") or "").upper().startswith(command)
                and prompt in (m.get("Command") or "")
            ),
            after=self.position,
        )
        self.position = ami.events.index(event, self.position) + 1
        return event

    async def answer(self, prompt: str, keys: str) -> None:
        """When the flow asks with GET DATA `prompt`, press `keys`."""
        await self.next("GET DATA", prompt)
        await self.call.press(keys)
