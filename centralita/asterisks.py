"""The Asterisk servers Centralita follows: one AMI link (listener + call tracker) each.

`[asterisk]` is one server; `[[asterisk]]` lists several
(docs/cluster.md#several-asterisk-servers). Every link feeds the same pop bridge, webhook
sender, call-record writer and AMI taps (`centralita/feed.py`); this module answers the
questions that need to know which server is which:

* `for_agent(extension)`: where to send an action on the agent's phone (click-to-dial,
  QueueAdd): the one server that hosts the agent (`[[asterisk]] agents`), or, when several
  may, the one its device is registered on, read from the tracker's device states
  (`DeviceStateList` after each login, then `DeviceStateChange`). A PJSIP endpoint without a
  reachable contact is `UNAVAILABLE` and one this server lacks `INVALID` (channels/chan_pjsip.c
  chan_pjsip_devicestate); a chan_sip peer without an address is `UNAVAILABLE` too
  (channels/chan_sip.c sip_devicestate);
* `hosting(extension)`: every server that may carry the agent's queue membership (pause);
* `for_call(uniqueid)`: the server that carried a call, from the trackers that saw its
  channels (survey call files go to that server's spool).

`SharedTaps` fans the servers' streams into the app's one `AmiTaps`: events go straight
through; a list asked after a login (QueueStatus...) is merged with the other servers'
current lists, so one server's reconnect does not wipe the agents of another; the link is
"up" while every server is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ami.client import AmiError, AmiListener
from ami.protocol import AmiMessage
from ami.tracker import CallTracker
from centralita.amitaps import AmiTaps, LinkHook, ListHook
from centralita.settings import AsteriskSettings

log = logging.getLogger("centralita.asterisks")

# Device states of a phone that cannot ring here (include/asterisk/devicestate.h): not
# registered (UNAVAILABLE), not a device of this server (INVALID), or nothing known.
NOT_REGISTERED = frozenset({"UNAVAILABLE", "INVALID", "UNKNOWN", ""})


def registered(state: str | None) -> bool:
    """True when a device state says the phone is registered (can ring)."""
    return state is not None and state.upper() not in NOT_REGISTERED


class NoServer(Exception):
    """No server can take an action for the agent: `status` (409/503), `code` and why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class KnownCalls(CallTracker):
    """A tracker that can say whether it saw a channel (live or hung up)."""

    def saw_channel(self, uniqueid: str) -> bool:
        """True when this server's stream carried the channel `uniqueid` (live, or among
        the recently hung-up channels the tracker remembers)."""
        return uniqueid in self._channels or uniqueid in self._gone

    def saw_call(self, linkedid: str) -> bool:
        """True when a live channel of the call `linkedid` is on this server."""
        return linkedid in self._members


@dataclass
class AsteriskLink:
    """One Asterisk server: its settings and its AMI listener (whose tracker is its own)."""

    settings: AsteriskSettings
    listener: AmiListener

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def connected(self) -> bool:
        return bool(self.listener.connected)

    @property
    def tracker(self) -> CallTracker:
        return self.listener.tracker

    def saw(self, uniqueid: str) -> bool:
        tracker = self.listener.tracker
        if isinstance(tracker, KnownCalls):
            return tracker.saw_channel(uniqueid) or tracker.saw_call(uniqueid)
        return False

    def health(self) -> dict[str, object]:
        listener = self.listener
        return {
            "name": self.name,
            "connected": self.connected,
            "host": listener.host,
            "port": listener.port,
            "error": None if listener.connected else listener.last_error,
        }


class Asterisks:
    """The set of servers, in config order (the first is `first`)."""

    def __init__(self, links: Sequence[AsteriskLink], device_of: Callable[[str], str]) -> None:
        if not links:
            raise ValueError("at least one Asterisk server")
        self.links = tuple(links)
        self._device_of = device_of

    def __iter__(self) -> Iterator[AsteriskLink]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    @property
    def first(self) -> AsteriskLink:
        return self.links[0]

    @property
    def several(self) -> bool:
        return len(self.links) > 1

    def by_name(self, name: str) -> AsteriskLink | None:
        return next((link for link in self.links if link.name == name), None)

    @property
    def all_connected(self) -> bool:
        return all(link.connected for link in self.links)

    @property
    def any_connected(self) -> bool:
        return any(link.connected for link in self.links)

    def hosting(self, extension: str) -> tuple[AsteriskLink, ...]:
        """The servers whose config lets the agent's phone live there."""
        return tuple(link for link in self.links if link.settings.hosts(extension))

    def registered_on(self, extension: str) -> tuple[AsteriskLink, ...]:
        """The connected servers on which the agent's device is registered now."""
        device = self._device_of(extension)
        return tuple(
            link
            for link in self.hosting(extension)
            if link.connected and registered(link.tracker.device_state(device))
        )

    def for_agent(self, extension: str) -> AsteriskLink:
        """The server for an action on the agent's phone; raises NoServer (503 `ami_down`
        when it is not connected, 409/503 `not_registered` when the phone is registered on
        no connected server)."""
        hosts = self.hosting(extension)
        if len(hosts) == 1:
            # One server hosts the agent: the action goes there, whatever the device says
            # (as with one Asterisk; Asterisk itself answers for a phone that is away).
            link = hosts[0]
            if not link.connected:
                where = f" {link.name!r}" if self.several else ""
                raise NoServer(503, "ami_down", f"Asterisk{where} is not connected")
            return link
        found = self.registered_on(extension)
        if found:
            return found[0]
        down = [link.name for link in hosts if not link.connected]
        device = self._device_of(extension)
        if len(down) == len(hosts):
            raise NoServer(503, "ami_down", "no Asterisk server is connected")
        if down:
            raise NoServer(
                503,
                "not_registered",
                f"{device} is registered on no connected Asterisk server "
                f"(not connected: {', '.join(down)})",
            )
        raise NoServer(
            409,
            "not_registered",
            f"{device} is not registered on any Asterisk server "
            f"({', '.join(link.name for link in hosts)})",
        )

    def for_call(self, *ids: str) -> AsteriskLink | None:
        """The server that carried the call whose channel Uniqueid or Linkedid is among
        `ids`; None when no tracker saw it (AMI was away during the whole call)."""
        if not self.several:
            return self.first
        for call_id in ids:
            if not call_id:
                continue
            seen = [link for link in self.links if link.saw(call_id)]
            if seen:
                if len(seen) > 1:
                    # Two servers made the same Uniqueid: asterisk.conf `systemname` (which
                    # prefixes every Uniqueid, main/channel.c __ast_channel_alloc_ap) tells them
                    # apart; docs/cluster.md asks for one per server.
                    log.warning(
                        "call %s was seen on %s: set a distinct systemname in each server's "
                        "asterisk.conf",
                        call_id,
                        ", ".join(link.name for link in seen),
                    )
                return seen[0]
        return None

    def health(self) -> dict[str, object]:
        """The `ami` part of /healthz: every server's link."""
        servers = [link.health() for link in self.links]
        body: dict[str, object] = {"connected": self.all_connected}
        if not self.several:
            body.update({k: v for k, v in servers[0].items() if k != "name"})
        body["servers"] = servers
        return body


class SharedTaps:
    """Several servers' streams into one `AmiTaps` (see the module docstring)."""

    def __init__(self, taps: AmiTaps, names: Sequence[str]) -> None:
        self.taps = taps
        self._names = tuple(names)
        self._hooks = dict(taps.resyncs)
        self._up = dict.fromkeys(self._names, False)
        # Each server's latest list per action, while its link is up.
        self._lists: dict[str, dict[str, list[AmiMessage]]] = {n: {} for n in self._names}
        self._listeners: dict[str, AmiListener] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, name: str, listener: AmiListener) -> None:
        """Know `name`'s listener, to ask it for a fresh list when another server resyncs."""
        self._listeners[name] = listener

    def on_link(self, name: str) -> LinkHook:
        def told(connected: bool) -> None:
            self._up[name] = connected
            if not connected:
                self._lists[name].clear()
            self.taps.on_link(all(self._up.values()))

        return told

    def resync(self, name: str) -> tuple[tuple[str, ListHook], ...]:
        """The per-server resync hooks: keep the list, apply the merge, refresh the others."""

        def hook_for(action: str) -> ListHook:
            def apply(items: list[AmiMessage]) -> None:
                self._keep(name, action, items)
                self._refresh_others(name, action)

            return apply

        return tuple((action, hook_for(action)) for action in self._hooks)

    def _keep(self, name: str, action: str, items: list[AmiMessage]) -> None:
        self._lists[name][action] = items
        merged = [item for n in self._names for item in self._lists[n].get(action, ())]
        self._hooks[action](merged)

    def _refresh_others(self, name: str, action: str) -> None:
        """The other servers' lists were taken at their own login: ask each again, so the
        merge holds their state of now (applied in their stream order: on_complete)."""
        for other, listener in self._listeners.items():
            if other == name or not listener.connected or action not in self._lists[other]:
                continue
            task = asyncio.create_task(self._ask(other, listener, action))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _ask(self, name: str, listener: AmiListener, action: str) -> None:
        try:
            await listener.list_action(
                action, on_complete=lambda items: self._keep(name, action, items)
            )
        except (AmiError, OSError, ValueError) as exc:
            log.warning("AMI %s on %s after another server's login: %s", action, name, exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
