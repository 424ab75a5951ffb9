"""Which optional C modules run: agi/_speedups.c (agi/cores.py) and agi/_headerblock.c
(agi/protocol.py), built by setup.py when the machine has a C compiler.

`CENTRALITA_NO_SPEEDUPS=1` runs their pure-Python twins instead, as on a machine where they
were not built (`make test` runs the FastAGI tests that way too). This module imports nothing
of the package, so the sans-IO protocol module can use it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

WANTED = os.environ.get("CENTRALITA_NO_SPEEDUPS", "") in ("", "0")


def load(name: str) -> ModuleType | None:
    """The built C module `agi.<name>` when wanted, else None."""
    if not WANTED:
        return None
    try:
        return importlib.import_module(f"agi.{name}")
    except ImportError:  # not built: no C compiler when Centralita was installed
        return None
