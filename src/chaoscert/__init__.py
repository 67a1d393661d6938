"""chaoscert: chaos and failover certification for Odoo logistics workflows."""

from typing import Any

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Chaos Toolkit's entry point for `chaos discover chaoscert`."""
    from chaoscert.ctk import discover as discover_activities

    return discover_activities(discover_system)
