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
