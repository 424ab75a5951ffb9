"""The settings the running server uses, and how an edited config file reaches it without a
restart.

`centralita serve` reads its file at start. A reload reads it again: on SIGHUP
(`systemctl reload centralita`; `centralita reload` and `centralita member add|edit|remove`
send it too), after every save in /admin, and from /admin's "Apply the file now" button. It
applies at once what can change under running calls, the site, `[console]` and
`[[webhooks]]`: members and their roles, queues, roles, the IVR, languages, time conditions,
callback and survey settings, dispositions, the webhook URLs. Each part of the server that
keeps maps made from the site registers a hook (`LiveSettings.on_reload`) that remakes them
and keeps its live state (an agent's pause, a caller waiting, a call being tracked).

What the server made its sockets, connections and store from waits for a restart, and the
admin pages say so (`Reload.waiting`): `[server]`, `[[asterisk]]`, `[store]`, `[crm]` and
the SIP driver. Until then the running server keeps its values of those, whatever
the file says.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from centralita.settings import Settings, public_secrets_refusal, read_config
from dialplan.validate import ConfigError

log = logging.getLogger("centralita.live")

# The parts of the config that only a restart applies, in the order the admin pages list them.
RESTART_ONLY = ("server", "asterisk", "store", "crm", "sip_driver")


@dataclass(frozen=True)
class Reload:
    """What one reload did: `applied` is False when the file held nothing new for the live
    parts; `waiting` names the restart-only parts in which the file differs."""

    applied: bool
    waiting: tuple[str, ...]


def waiting_for_restart(running: Settings, on_file: Settings) -> tuple[str, ...]:
    """The restart-only parts (RESTART_ONLY) in which the file differs from what runs."""
    differs = {
        "server": running.server != on_file.server,
        "asterisk": running.asterisks != on_file.asterisks,
        "store": running.store != on_file.store,
        "crm": running.site.crm != on_file.site.crm,
        "sip_driver": running.site.sip_driver != on_file.site.sip_driver,
    }
    return tuple(part for part in RESTART_ONLY if differs[part])


def live_part(running: Settings, on_file: Settings) -> Settings:
    """The settings to run with after a reload: the file's site, console and webhooks, with
    the running server's values of everything restart-only."""
    site = replace(on_file.site, crm=running.site.crm, sip_driver=running.site.sip_driver)
    return replace(running, site=site, console=on_file.console, webhooks=on_file.webhooks)


class LiveSettings:
    """The one holder of the running server's settings (`app[SETTINGS].current`), and the
    text of the file they were last read from (`text`: what /admin's audit log diffs an
    applied hand edit against; None for the built-in demo or a file gone)."""

    def __init__(self, settings: Settings, text: str | None = None) -> None:
        self.current = settings
        if text is None and settings.file is not None:
            with contextlib.suppress(OSError):
                text = settings.file.read_text(encoding="utf-8")
        self.text = text
        self._hooks: list[tuple[str, Callable[[Settings], object]]] = []

    def on_reload(self, name: str, hook: Callable[[Settings], object]) -> None:
        """Call `hook(settings)` after each reload that changed the live parts, in the order
        registered. A hook is synchronous and quick (it remakes maps); one that needs I/O
        starts a task."""
        self._hooks.append((name, hook))

    def apply(self, on_file: Settings, text: str | None = None) -> Reload:
        """Run with the live parts of `on_file` (already validated, read from `text`) from
        now on."""
        waiting = waiting_for_restart(self.current, on_file)
        new = live_part(self.current, on_file)
        refusal = public_secrets_refusal(new)
        if refusal:
            # As at start: a member with the demo's published SIP secret on a server that
            # listens beyond loopback is refused, and nothing of the file is applied.
            raise ConfigError(str(on_file.file or "<config>"), "(secrets)", refusal)
        if text is not None:
            self.text = text
        if new == self.current:
            return Reload(applied=False, waiting=waiting)
        self.current = new
        for name, hook in self._hooks:
            try:
                hook(new)
            except Exception:  # one part failing must not keep the others on the old file
                log.exception("reload: %s could not take the new settings", name)
        log.info(
            "reloaded %s: %d members, %d queues, %d roles",
            new.file or "the built-in demo",
            len(new.site.members),
            len(new.site.queues),
            len(new.site.roles),
        )
        return Reload(applied=True, waiting=waiting)

    def reload_file(self) -> Reload:
        """Read the config file again and apply it (ConfigError: nothing applied)."""
        path = self.current.file
        if path is None:
            raise ConfigError(
                "<demo centralita.toml>", "(file)", "the built-in demo has no file to reload"
            )
        return self.apply(*read_config(path))  # as `serve` reads it at start
