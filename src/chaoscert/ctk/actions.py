"""Chaos Toolkit actions: inject chaoscert's faults and heal them.

Every action takes the experiment's `configuration` (chaoscert_* keys: the
platform, topology or target, state directory, SLO file, reports directory)
and `secrets` (for a kubernetes target: odoo_login and odoo_password). The
first activity of a run takes the platform for it; every fault injected is
healed by `heal_faults` (put it in the rollbacks too), and on SIGINT,
SIGTERM or exit of the `chaos` process. Targets name a node, a zone or a
role: "primary" (the node or zone of the Postgres primary), "replica" (a node
holding only a Postgres replica), "app" (an application node).
"""

from __future__ import annotations

from typing import Any

from chaoscert.ctk.session import session
from chaoscert.platforms.base import FaultHandle

__all__ = [
    "crash_node",
    "crash_zone",
    "hang_node",
    "hang_zone",
    "heal_faults",
    "inject_fault",
    "kill_app_replica",
    "kill_ingress_replica",
    "lose_etcd_members",
    "scale_workflow_rate",
    "stall_replication_then_crash_primary",
    "switch_over_primary",
]

Configuration = dict[str, Any] | None
Secrets = dict[str, Any] | None


def inject_fault(
    kind: str,
    target: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Inject fault `kind` (a name the platform knows: node_hang, zone_crash,
    database_switchover, dcs_quorum_loss...) on `target`; returns what was hit
    and when (UTC). It stays until healed."""
    return _described(session(configuration, secrets).inject(kind, target))


def hang_node(
    target: str = "primary",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Freeze every process of a node (it answers nothing) until healed."""
    return inject_fault("node_hang", target, configuration, secrets)


def crash_node(
    target: str = "primary",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Kill every process of a node at once; it stays down until healed."""
    return inject_fault("node_crash", target, configuration, secrets)


def hang_zone(
    target: str = "primary",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Freeze every node of a zone (default: the Postgres primary's) until healed."""
    return inject_fault("zone_hang", target, configuration, secrets)


def crash_zone(
    target: str = "primary",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Kill every node of a zone (default: the Postgres primary's) until healed."""
    return inject_fault("zone_crash", target, configuration, secrets)


def switch_over_primary(
    target: str = "replica",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Planned switchover of the Postgres primary to `target` (a node, or
    "replica": the best standby); returns once a new primary leads."""
    return inject_fault("database_switchover", target, configuration, secrets)


def kill_ingress_replica(
    target: str = "", configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """SIGKILL one ingress replica (on node `target`, default the first)."""
    return inject_fault("ingress_replica_kill", target, configuration, secrets)


def kill_app_replica(
    target: str = "", configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """SIGKILL one app replica (on node `target`, default the first)."""
    return inject_fault("app_replica_kill", target, configuration, secrets)


def lose_etcd_members(
    count: int = 1, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Stop `count` etcd members (1: a quorum is left; 2 of 3: quorum lost),
    avoiding the node of the Postgres primary, until healed."""
    kind = "dcs_member_loss" if int(count) == 1 else "dcs_quorum_loss"
    return inject_fault(kind, "", configuration, secrets)


def stall_replication_then_crash_primary(
    stall_s: float = 2.0, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Stop the primary's WAL senders for `stall_s` seconds while writes go on,
    then crash the primary's node: asynchronous replication loses the commits
    acknowledged meanwhile, synchronous or quorum commit makes them wait."""
    ctk = session(configuration, secrets)
    run = ctk.current()
    run.stall_replication_then_crash_primary(float(stall_s))
    return {"faults": [_described(handle) for handle in run.faults[-2:]]}


def scale_workflow_rate(
    workflow: str,
    factor: float,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Probe `workflow` at `factor` times its configured rate from now on (a
    shift-change burst); returns the new rate in attempts per second."""
    run = session(configuration, secrets).current()
    run.scale_rate(workflow, float(factor))
    return {"workflow": workflow, "rate_hz": run.options.rate_of(workflow) * factor}


def heal_faults(
    steady_within_s: float = 0.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Heal every fault this run left live (idempotent: nothing live, nothing
    done). With `steady_within_s` > 0, then wait at most that long for the
    platform's steady state (as a rollback should); returns what was healed
    and the seconds waited."""
    ctk = session(configuration, secrets)
    healed = ctk.heal()
    steady_after_s = None
    if float(steady_within_s) > 0:
        steady_after_s = round(ctk.platform.wait_steady(float(steady_within_s)), 1)
        ctk.platform.event("platform", f"steady state after {steady_after_s} s")
    return {"healed": healed, "steady_after_s": steady_after_s}


def _described(handle: FaultHandle) -> dict[str, Any]:
    return {
        "kind": handle.kind,
        "target": handle.target,
        "injected_at": handle.injected_at,
    }
