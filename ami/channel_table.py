"""The channels and device states a fake Asterisk lists, kept from the events it has sent.

`ami.testing.FakeAmiServer` answers `CoreShowChannels` and `DeviceStateList` from this table,
as Asterisk answers them from its live channels and its device-state cache. Sans-IO: events
in, list items out.
"""

from __future__ import annotations

import time

from ami.protocol import AmiMessage

# The channel block, in Asterisk's order (manager_channels.c:565-640,
# docs/asterisk-protocol.md#ami-events).
CHANNEL_FIELDS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)


class ChannelTable:
    """The channels and device states Asterisk would list, kept from the events seen."""

    def __init__(self) -> None:
        self._channels: dict[str, dict[str, str]] = {}
        self._started: dict[str, float] = {}
        self.devices: dict[str, str] = {}

    def apply(self, msg: AmiMessage) -> None:
        """Update from one event."""
        name = msg.name
        if name == "DeviceStateChange":
            self.devices[msg.value("Device")] = msg.value("State")
            return
        uid = msg.get("Uniqueid")
        # A channel block has Channel, Uniqueid and Linkedid (a Cdr has `UniqueID` but no block).
        if not uid or uid == "none" or not msg.get("Channel") or "Linkedid" not in msg:
            return
        if name == "Hangup":
            self._channels.pop(uid, None)
            self._started.pop(uid, None)
            return
        chan = self._channels.get(uid)
        if chan is None:
            chan = {"BridgeId": "", "Application": "", "ApplicationData": ""}
            self._channels[uid] = chan
            self._started[uid] = time.monotonic()
        for field in CHANNEL_FIELDS:
            value = msg.get(field)
            if value is not None:
                chan[field] = value
        if name == "Newexten":
            chan["Application"] = msg.value("Application")
            chan["ApplicationData"] = msg.value("AppData")
        elif name == "BridgeEnter":
            chan["BridgeId"] = msg.value("BridgeUniqueid")
        elif name == "BridgeLeave":
            chan["BridgeId"] = ""

    def __len__(self) -> int:
        return len(self._channels)

    def core_show_channels(self, action_id: str | None = None) -> list[AmiMessage]:
        """`CoreShowChannel` list items as Asterisk writes them (main/manager.c)."""
        items = []
        now = time.monotonic()
        for uid, chan in self._channels.items():
            headers = [("Event", "CoreShowChannel")]
            if action_id:
                headers.append(("ActionID", action_id))
            headers += [(f, chan.get(f, "")) for f in CHANNEL_FIELDS]
            seconds = int(now - self._started[uid])
            headers += [
                ("BridgeId", chan["BridgeId"]),
                ("Application", chan["Application"]),
                ("ApplicationData", chan["ApplicationData"]),
                ("Duration", f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"),
            ]
            items.append(AmiMessage("event", tuple(headers)))
        return items

    def device_state_list(self, action_id: str | None = None) -> list[AmiMessage]:
        """`DeviceStateChange` list items (res/res_manager_devicestate.c:79-118)."""
        items = []
        for device, state in self.devices.items():
            headers = [("Event", "DeviceStateChange")]
            if action_id:
                headers.append(("ActionID", action_id))
            headers += [("Device", device), ("State", state)]
            items.append(AmiMessage("event", tuple(headers)))
        return items
