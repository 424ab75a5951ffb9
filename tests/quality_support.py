"""Helpers for the quality tests (no tests here): the voicemail spool fixture with real WAV
files, a MixMonitor recording, and a call record to find it by.

tests/fixtures/voicemail-spool is laid out as Asterisk's spool (`voicemail/VoiceMail/600/
INBOX/msg0000.txt` ..., app_voicemail.c make_dir/make_file); the .txt files are as
leave_voicemail writes them. The audio is made here with the `wave` module: 8 kHz 16-bit
mono PCM, what `format = wav` and MixMonitor's .wav write.
"""

from __future__ import annotations

import math
import shutil
import struct
import wave
from datetime import datetime
from pathlib import Path

from ami.cdr import CallRecord

SPOOL_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "voicemail-spool"
RATE = 8000
# The complaint in the fixture's INBOX/msg0000.txt: its category is this call's Linkedid.
CALL_ID = "1795943641.12"
CALLER = "600333444"
# INBOX/msg0001.txt carries no category (left before the flow set VM_CATEGORY).
LEGACY_CALLER = "600555666"
LEGACY_ORIGTIME = 1795948831


def write_wav(path: Path, seconds: float = 3.0, pitch_hz: float = 440.0) -> bytes:
    """A tone as an 8 kHz 16-bit mono WAV file; returns the file's bytes."""
    frames = b"".join(
        struct.pack("<h", int(9000 * math.sin(2 * math.pi * pitch_hz * i / RATE)))
        for i in range(int(seconds * RATE))
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return path.read_bytes()


def lay_out_spool(spool_dir: Path, seconds: float = 3.0) -> Path:
    """Copy the fixture spool into `spool_dir` with a WAV beside every message; returns the
    complaints box's folder (`<spool>/voicemail/VoiceMail/600`)."""
    shutil.copytree(SPOOL_FIXTURE, spool_dir, dirs_exist_ok=True)
    box = spool_dir / "voicemail" / "VoiceMail" / "600"
    for pitch, txt in enumerate(sorted(box.glob("*/msg*.txt"))):
        write_wav(txt.with_suffix(".wav"), seconds, 330.0 + 110 * pitch)
    return box


def call_record(uniqueid: str, start: str, agent: str, src: str = CALLER) -> CallRecord:
    """An answered queue call's record (the caller's channel: its Uniqueid names the
    recording MixMonitor wrote)."""
    begin = datetime.fromisoformat(start)
    return CallRecord(
        uniqueid=uniqueid,
        linkedid=uniqueid,
        src=src,
        dst="300",
        dcontext="centralita-queue",
        clid=f'"Customer" <{src}>',
        channel=f"PJSIP/trunk-{uniqueid}",
        dstchannel=f"PJSIP/{agent}-00000001",
        lastapp="Queue",
        start=begin,
        answer=begin,
        end=begin,
        duration=65,
        billsec=60,
        disposition="ANSWERED",
    )
