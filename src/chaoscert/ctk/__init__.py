"""chaoscert as a Chaos Toolkit extension.

Actions (faults and healing) are in `chaoscert.ctk.actions`, probes (workflow
traffic, measurements, verdicts) in `chaoscert.ctk.probes`; both list their
activities in `__all__`. `chaos discover --no-install chaoscert` lists them.
The state one `chaos run` keeps between activities is in
`chaoscert.ctk.session`; journals become reports through `chaoscert.ctk.journal`.
"""

from __future__ import annotations

from typing import Any

from chaoscert import __version__

__all__ = ["discover"]


def discover(discover_system: bool = True) -> dict[str, Any]:
    """The Chaos Toolkit discovery of chaoscert's activities (no system part:
    the platform is named by an experiment's configuration, not found here)."""
    from chaoslib.discovery.discover import (
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    discovery: dict[str, Any] = initialize_discovery_result(
        "chaoscert", __version__, "odoo"
    )
    discovery["activities"].extend(discover_actions("chaoscert.ctk.actions"))
    discovery["activities"].extend(discover_probes("chaoscert.ctk.probes"))
    return discovery
