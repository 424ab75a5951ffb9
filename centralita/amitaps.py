"""Who reads the AMI stream besides the call tracker: the agent-state mirror, the
wallboard, the queue-event log for reports, and whatever comes next.

Each part registers its hooks on the app's one `AmiTaps` (`keys.AMI_TAPS`) while the app
starts, before `feed.ami_ctx` opens the AMI connection. The hooks run in the reader's
order, synchronously, so each must be quick; one that raises is logged and the others
still run, as for the tracker (one odd event must not cost the link).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ami.protocol import AmiMessage

log = logging.getLogger(__name__)

EventHook = Callable[[AmiMessage], object]
ListHook = Callable[[list[AmiMessage]], object]
LinkHook = Callable[[bool], object]


class AmiTaps:
    """The hooks of every AMI reader, fanned out from the listener's single hooks."""

    def __init__(self) -> None:
        self._events: list[EventHook] = []
        self._links: list[LinkHook] = []
        self._resyncs: list[tuple[str, ListHook]] = []

    def add(
        self,
        *,
        on_event: EventHook | None = None,
        on_link: LinkHook | None = None,
        resync: Iterable[tuple[str, ListHook]] = (),
    ) -> None:
        """Register a reader: `on_event` sees every event, `on_link(True/False)` is told
        when the link is ready (after the resync lists) or lost, and each `(action, hook)`
        in `resync` is asked for after every login (e.g. `QueueStatus`)."""
        if on_event is not None:
            self._events.append(on_event)
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

    def on_event(self, msg: AmiMessage) -> None:
        for hook in self._events:
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
