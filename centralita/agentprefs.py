"""Each agent's console preferences, kept in the database so they follow the agent.

    prefs = await load_preferences(store, "1001", default_language="ar")
    prefs = await save_preferences(store, "1001", {"ui_language": "fr"}, default_language="ar")

Stored as one JSON object per agent in `agent_preferences` (store migration 4,
`centralita/store/desk.py`). Only what
`validate_preferences` accepts is ever written; a stored value this version does not know
(written by a later one) is ignored on reading, never an error.
"""

from __future__ import annotations

import json
from typing import TypedDict

from centralita.store import StoreBackend

UI_LANGUAGES = ("en", "fr", "ar")
ALERTS = ("sound", "notification", "title")


class Alerts(TypedDict):
    sound: bool
    notification: bool
    title: bool


class Preferences(TypedDict):
    ui_language: str
    alerts: Alerts


class PreferenceError(ValueError):
    """A preference the console cannot take; `field` names it (e.g. `alerts.sound`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def defaults(default_language: str) -> Preferences:
    """An agent's preferences before they chose anything: the config's language if the
    console speaks it (else English), every alert on."""
    language = default_language if default_language in UI_LANGUAGES else "en"
    return {"ui_language": language, "alerts": {"sound": True, "notification": True, "title": True}}


def validate_preferences(current: Preferences, changes: object) -> Preferences:
    """`current` with `changes` (a JSON object: `ui_language`, `alerts`) applied; raises
    PreferenceError naming the first field that is wrong or unknown."""
    if not isinstance(changes, dict):
        raise PreferenceError("", "the preferences must be a JSON object")
    result: Preferences = {"ui_language": current["ui_language"], "alerts": {**current["alerts"]}}
    for key, value in changes.items():
        if key == "csrf":
            continue  # the form-posted CSRF token, checked before
        if key == "ui_language":
            if value not in UI_LANGUAGES:
                raise PreferenceError(
                    "ui_language", f"ui_language must be one of {', '.join(UI_LANGUAGES)}"
                )
            result["ui_language"] = str(value)
        elif key == "alerts":
            if not isinstance(value, dict):
                raise PreferenceError("alerts", "alerts must be an object of true/false values")
            for name, flag in value.items():
                if name not in ALERTS:
                    raise PreferenceError(
                        f"alerts.{name}", f"unknown alert {name!r} ({', '.join(ALERTS)})"
                    )
                if not isinstance(flag, bool):
                    raise PreferenceError(f"alerts.{name}", f"alerts.{name} must be true or false")
                result["alerts"][name] = flag  # type: ignore[literal-required]
        else:
            raise PreferenceError(str(key), f"unknown preference {key!r}")
    return result


def _from_stored(text: str, base: Preferences) -> Preferences:
    try:
        data = json.loads(text)
    except ValueError:
        return base
    if not isinstance(data, dict):
        return base
    known = {k: v for k, v in data.items() if k in ("ui_language", "alerts")}
    if isinstance(known.get("alerts"), dict):
        known["alerts"] = {k: v for k, v in known["alerts"].items() if k in ALERTS}
    try:
        return validate_preferences(base, known)
    except PreferenceError:
        return base


async def load_preferences(
    store: StoreBackend, extension: str, *, default_language: str
) -> Preferences:
    """The agent's stored preferences over the defaults."""
    base = defaults(default_language)
    stored = await store.agent_preferences(extension)
    return _from_stored(stored, base) if stored is not None else base


async def save_preferences(
    store: StoreBackend, extension: str, changes: object, *, default_language: str
) -> Preferences:
    """Apply `changes` to the agent's preferences and store them (PreferenceError first,
    with nothing stored, when a field is wrong)."""
    current = await load_preferences(store, extension, default_language=default_language)
    result = validate_preferences(current, changes)
    await store.set_agent_preferences(extension, json.dumps(result, separators=(",", ":")))
    return result
