"""How faults read in sentences of the report."""

from __future__ import annotations

import re

from chaoscert.results import FaultResult

# How each fault kind reads after "when" in a headline; {target} is filled in.
# Targets name what was hit ("node c1 (Postgres leader)", "zone zone-b (b1, b2)").
_FAULT_PHRASES = {
    "node hang": "{target} hung",
    "node crash": "{target} crashed",
    "zone hang": "{target} hung",
    "zone crash": "{target} crashed",
    "database primary hang": "the node holding the Postgres primary hung",
    "database primary crash": "the node holding the Postgres primary crashed",
    "database switchover": "the Postgres primary was switched over ({target})",
    "ingress replica kill": "the {target} was killed",
    "app replica kill": "the {target} was killed",
    "dcs member loss": "{target} was lost",
    "dcs quorum loss": "the DCS lost its quorum ({target} lost)",
    "replication stall": "replication stalled ({target})",
}


def fault_phrase(fault: FaultResult) -> str:
    """``the node holding the Postgres primary hung``, for a headline."""
    kind = re.sub(r"[-_\s]+", " ", fault.kind).strip().lower()
    template = _FAULT_PHRASES.get(kind, f"{fault.kind} hit {{target}}")
    phrase = template.format(target=fault.target)
    together = [str(item) for item in fault.details.get("together_with", [])]
    if together:
        phrase += ", then " + ", ".join(t.replace("_", " ") for t in together)
    return phrase
