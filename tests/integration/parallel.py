"""Run the integration suite on every combination at once: one pytest process per combination.

`make test` calls this after the unit suite. Each combination (an install and a SIP driver,
see asterisk.py) gets its own pytest process, Asterisk, Centralita and ports, so they run side
by side; their outputs are printed one after the other, each ending with its counts. Without
CENTRALITA_ASTERISK, one pytest run deselects the suite and says how to get an Asterisk.

    python tests/integration/parallel.py [pytest arguments...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from integration.asterisk import ONLY_VAR, targets_from_env  # noqa: E402
from integration.site import PORT_SLOT_VAR  # noqa: E402


def main(extra: list[str]) -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "asterisk", str(HERE), *extra]
    targets = targets_from_env()
    if not targets:
        return subprocess.call(command)
    runs = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="centralita-integration-") as scratch:
        for slot, target in enumerate(targets):
            log = Path(scratch) / f"{target.name}.log"
            process = subprocess.Popen(
                [*command, "-p", "no:cacheprovider", f"--basetemp={scratch}/{target.name}"],
                # Ports of its own: see site.py `_free_port`.
                env={**os.environ, ONLY_VAR: target.name, PORT_SLOT_VAR: f"{slot}/{len(targets)}"},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            runs.append((target.name, process, log))
        failed = []
        for name, process, log in runs:
            code = process.wait()
            print(f"\n===== integration suite on Asterisk {name} (exit {code}) =====", flush=True)
            sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
            if code != 0:
                failed.append(name)
    print(
        f"\nintegration suite: {len(runs)} combinations in {time.monotonic() - started:.0f} s; "
        + (f"FAILED on {', '.join(failed)}" if failed else "all passed")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
