"""The console's ring alert, `static/ring.wav`, made here so that its licence is ours.

A soft two-note chime (E6 then C6, each with a quick attack and an exponential decay),
16-bit mono at 22,050 Hz, about 0.9 s: short enough to repeat while a call rings and
small enough (~40 KB) to load with the page. `python -m centralita.web.ringtone` rewrites the
file; a test checks that the committed file is what this module makes.
"""

from __future__ import annotations

import io
import math
import struct
import sys
import wave
from pathlib import Path

RATE = 22_050
# (frequency in Hz, start in s, length in s): two notes a major third apart.
NOTES = ((1318.51, 0.0, 0.45), (1046.50, 0.32, 0.58))
LENGTH_S = 0.9
PEAK = 0.42  # of full scale: an alert, not an alarm
PATH = Path(__file__).parent / "static" / "ring.wav"


def samples() -> list[int]:
    """The chime as 16-bit samples."""
    count = int(RATE * LENGTH_S)
    out = []
    for i in range(count):
        t = i / RATE
        value = 0.0
        for freq, start, length in NOTES:
            local = t - start
            if 0.0 <= local < length:
                attack = min(1.0, local / 0.008)  # 8 ms: no click at the onset
                release = min(1.0, (length - local) / 0.03)  # 30 ms fade: no click at the end
                decay = math.exp(-5.0 * local)
                # A touch of the octave above makes it a chime rather than a beep.
                tone = math.sin(2 * math.pi * freq * local) + 0.25 * math.sin(
                    4 * math.pi * freq * local
                )
                value += attack * release * decay * tone / 1.25
        out.append(round(max(-1.0, min(1.0, value * PEAK)) * 32767))
    return out


def build() -> bytes:
    """The WAV file's bytes (deterministic: no timestamp in a WAV header)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        data = samples()
        wav.writeframes(struct.pack(f"<{len(data)}h", *data))
    return buffer.getvalue()


def main() -> None:
    """Write static/ring.wav."""
    PATH.write_bytes(build())
    sys.stdout.write(f"wrote {PATH} ({PATH.stat().st_size} bytes)\n")


if __name__ == "__main__":
    main()
