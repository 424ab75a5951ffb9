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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from test_web_support import WebEnv, console_env

from ami.cdr import CallRecord

SPOOL_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "voicemail-spool"
RATE = 8000
# The complaint in the fixture's INBOX/msg0000.txt: its category is this call's Linkedid.
CALL_ID = "1795943641.12"
CALLER = "600333444"
# INBOX/msg0001.txt carries no category (left before the flow set VM_CATEGORY).
LEGACY_CALLER = "600555666"
LEGACY_ORIGTIME = 1795948831
AGENT = "1002"  # John Smith, role agent
QUALITY = "1200"  # role quality
SUPERVISOR = "1001"  # Amira Haddad


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


@dataclass
class QualityEnv:
    env: WebEnv
    box: Path
    recordings: Path
    rating_id: int
    message_wav: bytes
    recording_wav: bytes


@asynccontextmanager
async def quality_env(tmp_path: Path, seconds: float = 3.0) -> AsyncIterator[QualityEnv]:
    """The app (tests/test_web_support.py console_env) with the spool fixture in its
    `spool_dir`, `recordings_dir` in tmp_path, two low ratings (the first with a message in
    box 600 and a contact for its caller), two call records, and the first one's recording."""
    recordings = tmp_path / "monitor"

    def edit(text: str) -> str:
        return text.replace(
            'recordings_dir = "/var/spool/asterisk/monitor"', f'recordings_dir = "{recordings}"'
        )

    async with console_env(tmp_path, edit=edit) as env:
        box = lay_out_spool(env.settings.asterisk.spool_dir, seconds)
        store = env.store
        await store.create_contact(name="Lucía Fernández", numbers=[CALLER])
        rated = await store.add_rating(
            callerid=CALLER, agent=AGENT, queue="support-en", rating=2, call_id=CALL_ID
        )
        await store.add_rating(
            callerid="600999000", agent="1003", queue="support-fr", rating=1, call_id="1795.1"
        )
        await store.upsert_cdr(call_record(CALL_ID, "2026-11-29 09:10:00", AGENT))
        await store.upsert_cdr(call_record("1795943999.20", "2026-11-29 09:30:00", "1003"))
        recording = write_wav(recordings / f"{CALL_ID}.wav", seconds=seconds)
        yield QualityEnv(
            env, box, recordings, rated.id, (box / "INBOX/msg0000.wav").read_bytes(), recording
        )
