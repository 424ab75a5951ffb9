"""Who reads the AMI stream besides the call tracker: the agent-state mirror, the
wallboard, the queue-event log for reports, and whatever comes next.

Each part registers its hooks on the app's one `AmiTaps` (`keys.AMI_TAPS`) while the app
starts, before `feed.ami_ctx` opens the AMI connection. The hooks run in the reader's
order, synchronously, so each must be quick; one that raises is logged and the others
still run, as for the tracker (one odd event must not cost the link). A reader that names
the events it reads is called for those only: most of the stream (channels, dials, device
states) concerns none of them, and the reader runs once per event at thousands a second
(bench/wallboard_bench.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable

from ami.protocol import AmiMessage

log = logging.getLogger(__name__)

EventHook = Callable[[AmiMessage], object]
ListHook = Callable[[list[AmiMessage]], object]
LinkHook = Callable[[bool], object]


class AmiTaps:
    """The hooks of every AMI reader, fanned out from the listener's single hooks."""

    def __init__(self) -> None:
        self._events: list[tuple[EventHook, frozenset[str] | None]] = []
        self._by_name: dict[str, tuple[EventHook, ...]] = {}
        self._links: list[LinkHook] = []
        self._resyncs: list[tuple[str, ListHook]] = []

    def add(
        self,
        *,
        on_event: EventHook | None = None,
        events: Collection[str] | None = None,
        on_link: LinkHook | None = None,
        resync: Iterable[tuple[str, ListHook]] = (),
    ) -> None:
        """Register a reader: `on_event` sees every event (only those named in `events`,
        when given), `on_link(True/False)` is told when the link is ready (after the resync
        lists) or lost, and each `(action, hook)` in `resync` is asked for after every login
        (e.g. `QueueStatus`)."""
        if on_event is not None:
            self._events.append((on_event, None if events is None else frozenset(events)))
            self._by_name.clear()
        if on_link is not None:
            self._links.append(on_link)
        self._resyncs.extend(resync)

    @property
    def resyncs(self) -> tuple[tuple[str, ListHook], ...]:
        """Each resync list once per action, its hooks called in registration order."""
        by_action: dict[str, list[ListHook]] = {}
        for action, hook in self._resyncs:
            by_action.setdefault(action, []).append(hook)
        return tuple((action, _fan_out(hooks)) for action, hooks in by_action.items())

    def hooks_for(self, name: str) -> tuple[EventHook, ...]:
        """The hooks that read events called `name`, in registration order."""
        hooks = self._by_name.get(name)
        if hooks is None:
            hooks = tuple(h for h, names in self._events if names is None or name in names)
            if len(self._by_name) < 10_000:  # event names are Asterisk's: a few hundred
                self._by_name[name] = hooks
        return hooks

    def on_event(self, msg: AmiMessage) -> None:
        for hook in self.hooks_for(msg.name):
            try:
                hook(msg)
            except Exception:
                log.exception("AMI event hook %r failed on %s", hook, msg.name)

    def on_link(self, connected: bool) -> None:
        for hook in self._links:
            try:
                hook(connected)
            except Exception:
                log.exception("AMI link hook %r failed", hook)


def _fan_out(hooks: list[ListHook]) -> ListHook:
    def apply(items: list[AmiMessage]) -> None:
        for hook in hooks:
            try:
                hook(items)
            except Exception:
                log.exception("AMI resync hook %r failed", hook)

    return apply
