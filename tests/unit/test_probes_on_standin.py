"""The probes, written for Odoo 17, against the stand-in over real PostgreSQL."""

from __future__ import annotations

import time

import pytest

from chaoscert.probes.engine import ProbeSession
from chaoscert.probes.workflows import WORKFLOWS
from tests.conftest import ADMIN_LOGIN, DB_NAME


@pytest.mark.parametrize("workflow", sorted(WORKFLOWS))
def test_each_workflow_succeeds_and_its_writes_read_back(
    standin_url: str, admin_password: str, workflow: str
) -> None:
    with ProbeSession(
        standin_url,
        DB_NAME,
        ADMIN_LOGIN,
        admin_password,
        [workflow],
        rate_hz=5.0,
        timeout_s=5.0,
    ) as probes:
        probes.start()
        time.sleep(2.0)
        samples = probes.stop()[workflow]
        checks = probes.verify_writes(timeout_s=30)

    failed = [s for s in samples if not s.ok]
    assert len(samples) >= 5
    assert not failed, f"{failed[0].error_kind}: {failed[0].error}"
    if WORKFLOWS[workflow].write_model is not None:
        check = checks[workflow]
        assert check.acknowledged == len(samples)
        assert check.verified == check.acknowledged
        assert check.lost == []


def test_a_validated_picking_set_back_counts_as_lost(
    standin_url: str, admin_password: str, postgres_dsn: str
) -> None:
    import psycopg

    with ProbeSession(
        standin_url, DB_NAME, ADMIN_LOGIN, admin_password, ["dispatch"], rate_hz=5.0
    ) as probes:
        probes.start()
        time.sleep(1.0)
        probes.stop()
        ids = probes.ledger.ids("dispatch")
        # A failover that lost only the validating commit leaves the picking
        # behind, not done: the acknowledged dispatch did not survive.
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                "UPDATE stock_picking SET state = 'assigned' WHERE id = %s", (ids[0],)
            )
        check = probes.verify_writes(timeout_s=30)["dispatch"]

    assert check.lost == [ids[0]]
    assert check.verified == len(ids) - 1
