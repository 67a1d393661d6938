"""The catalogue tells fragile deployments from the reference, for the right reason.

Each weakened topology runs on its own stack (own state directory and ports)
and must fail exactly the scenario that exposes its weakness.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaoscert.platforms.local.platform import LocalPlatform
from chaoscert.platforms.local.stack import LocalStack
from tests.stack.conftest import run_catalogue, shifted_topology, write_topology

pytestmark = pytest.mark.stack


@pytest.fixture
def weakened(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Path, Path]]:
    source, offset = request.param
    topology = shifted_topology(offset=offset, name=f"{source}-test", source=source)
    # Under /var/tmp: the database user cannot reach pytest's private tmp_path.
    state_dir = Path(f"/var/tmp/chaoscert-test-{source}")
    path = write_topology(tmp_path / f"{source}.json", topology)
    try:
        yield path, state_dir
    finally:
        LocalStack(topology, state_dir).down()
        shutil.rmtree(state_dir, ignore_errors=True)


def assert_healed_after_a_failed_scenario(topology: Path, state_dir: Path) -> None:
    """A scenario whose assertion failed leaves nothing injected behind."""
    platform = LocalPlatform(topology, state_dir)
    assert not platform.layout.live_faults_file.exists()
    assert not any(platform.stack.group(n).frozen() for n in platform.layout.nodes())
    platform.wait_steady(180)


@pytest.mark.parametrize("weakened", [("async-replication", 14000)], indirect=True)
def test_async_replication_loses_acknowledged_dispatches(
    weakened: tuple[Path, Path], tmp_path: Path
) -> None:
    done, results = run_catalogue(
        *weakened,
        tmp_path / "reports",
        "primary_crashes_while_replication_lags",
    )

    assert done.returncode == 1, done.stdout[-2000:]
    [scenario] = results.scenarios
    assert scenario.status == "failed"
    assert "acknowledged dispatch writes were lost" in (scenario.error or "")
    dispatch = next(w for w in scenario.workflows if w.name == "dispatch")
    assert dispatch.lost_writes > 0
    assert dispatch.verdict == "fail"
    assert any("lost" in reason for reason in dispatch.reasons)
    assert_healed_after_a_failed_scenario(*weakened)
    # How often the forced condition exposed the loss, for the record.
    print(
        f"async replication: {dispatch.lost_writes} of"
        f" {dispatch.acknowledged_writes} acknowledged dispatches lost"
    )


@pytest.mark.parametrize("weakened", [("single-ingress", 16000)], indirect=True)
def test_single_ingress_fails_tier1_when_its_node_is_lost(
    weakened: tuple[Path, Path], tmp_path: Path
) -> None:
    done, results = run_catalogue(
        *weakened,
        tmp_path / "reports",
        "target_fails and application and hangs",
    )

    assert done.returncode == 1, done.stdout[-2000:]
    [scenario] = results.scenarios
    assert scenario.status == "failed"
    verdicts = {w.name: w for w in scenario.workflows}
    for name in ("warehouse_scanning", "dispatch"):
        assert verdicts[name].verdict == "fail"
        assert verdicts[name].max_outage_s > verdicts[name].slo.max_outage_s
        assert verdicts[name].lost_writes == 0
    assert verdicts["procurement_approval"].verdict == "pass"
    assert verdicts["invoice_posting"].verdict == "pass"
    assert_healed_after_a_failed_scenario(*weakened)
