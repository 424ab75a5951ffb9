"""Subcommands registered by this module (filled in by its feature)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Nothing registered yet."""
