"""Centralita's call flows, one module per flow, each registered by name in `agi.router.FLOWS`."""

from __future__ import annotations

import importlib

FLOW_MODULES = ("language", "callback", "survey", "customer_id", "manager")


def load_flows() -> None:
    """Import every flow module so that its flows register (idempotent)."""
    for name in FLOW_MODULES:
        importlib.import_module(f"agi.flows.{name}")
