"""The probe engine's schedule, bounds, ledger and workflows, on real loopback HTTP.

Timing assertions are deliberately loose so they hold on a busy 2-core machine.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from chaoscert.errors import ComponentError, ConfigError, TransportError
from chaoscert.odoo import OdooClient
from chaoscert.probes.engine import LOOP_GRACE_S, ProbeSession
from chaoscert.probes.ledger import Ledger, LedgerCheck, verify
from chaoscert.probes.samples import Sample
from chaoscert.probes.workflows import WORKFLOWS, get_workflow
from tests.unit.fake_odoo import DB, LOGIN, PASSWORD, FakeOdoo


@pytest.fixture
def odoo() -> Iterator[FakeOdoo]:
    with FakeOdoo() as fake:
        yield fake


def session(odoo: FakeOdoo, workflows: list[str], **options: float) -> ProbeSession:
    return ProbeSession(odoo.url, DB, LOGIN, PASSWORD, workflows, **options)  # type: ignore[arg-type]


def run_for(probes: ProbeSession, seconds: float) -> dict[str, list[Sample]]:
    probes.start()
    time.sleep(seconds)
    return probes.stop()


def test_registry_knows_the_four_workflows():
    assert set(WORKFLOWS) == {
        "warehouse_scanning",
        "dispatch",
        "procurement_approval",
        "invoice_posting",
    }
    with pytest.raises(ConfigError, match="unknown workflow 'picking'"):
        get_workflow("picking")


def test_invalid_session_arguments_are_refused(odoo: FakeOdoo):
    with pytest.raises(ConfigError):
        session(odoo, ["nope"])
    with pytest.raises(ValueError, match="dispatch"):
        ProbeSession(odoo.url, DB, LOGIN, PASSWORD, ["dispatch"], rate_hz={})


def test_scanning_succeeds_against_a_healthy_server(odoo: FakeOdoo):
    with session(odoo, ["warehouse_scanning"], rate_hz=10.0) as probes:
        probes.prepare()
        samples = run_for(probes, 1.0)["warehouse_scanning"]

    assert len(samples) >= 6
    assert all(sample.ok and sample.write_id is None for sample in samples)
    assert [s.seq for s in samples] == sorted(s.seq for s in samples)
    lookups = odoo.calls("/web/dataset/call_kw/product.product.search_read")
    codes = {tuple(seen.params["args"][0][0]) for seen in lookups[1:]}
    assert codes == {
        ("barcode", "=", "4006381333931"),
        ("barcode", "=", "5901234123457"),
    }


def test_schedule_is_kept_while_the_server_hangs(odoo: FakeOdoo):
    timeout_s = 0.5
    with session(
        odoo, ["warehouse_scanning"], rate_hz=10.0, timeout_s=timeout_s
    ) as probes:
        probes.prepare()
        odoo.mode = "hang"
        probes.start()
        time.sleep(2.0)
        stopping = time.monotonic()
        samples = probes.stop()["warehouse_scanning"]
        stop_s = time.monotonic() - stopping

    assert len(samples) >= 12, f"only {len(samples)} attempts started in 2 s at 10 Hz"
    assert all(s.error_kind == "timeout" for s in samples), {
        s.error_kind for s in samples
    }
    longest = max(s.latency_s for s in samples)
    assert longest < timeout_s + 0.5, f"an attempt lasted {longest:.2f} s"
    starts = [s.start_mono for s in samples]
    widest = max(b - a for a, b in itertools.pairwise(starts))
    assert widest < 0.5, f"the schedule stalled {widest:.2f} s (interval 0.1 s)"
    assert stop_s < timeout_s + 1.5


def test_attempts_beyond_max_in_flight_are_recorded_as_saturated(odoo: FakeOdoo):
    with session(
        odoo, ["warehouse_scanning"], rate_hz=20.0, timeout_s=1.0, max_in_flight=2
    ) as probes:
        probes.prepare()
        odoo.mode = "hang"
        samples = run_for(probes, 1.5)["warehouse_scanning"]

    saturated = [s for s in samples if s.error_kind == "saturated"]
    started = [s for s in samples if s.error_kind != "saturated"]
    assert len(saturated) >= 10, f"{len(saturated)} saturated of {len(samples)}"
    assert all(not s.ok and s.latency_s == 0 for s in saturated)
    assert all(abs(s.slip_s) < 0.5 for s in saturated), "saturation must not queue"
    for sample in started:
        running = sum(
            other.start_mono <= sample.start_mono < other.end_mono for other in started
        )
        assert running <= 2, f"{running} attempts in flight, limit 2"


def test_failures_are_classified_and_recovery_is_seen(odoo: FakeOdoo):
    with session(odoo, ["warehouse_scanning"], rate_hz=10.0) as probes:
        probes.prepare()
        odoo.target = "/web/dataset"
        probes.start()
        for mode in ("jsonrpc_error", "http_502", "reset", "ok"):
            odoo.mode = mode
            time.sleep(0.6)
        samples = probes.stop()["warehouse_scanning"]

    kinds = [s.error_kind for s in samples]
    assert {"jsonrpc", "http_5xx", "reset"} <= set(kinds), kinds
    assert samples[-1].ok, "the probe sees the server recover"
    jsonrpc = next(s for s in samples if s.error_kind == "jsonrpc")
    assert jsonrpc.error.startswith("odoo.exceptions.UserError")


def test_blocked_loop_skips_and_counts_missed_slots(odoo: FakeOdoo):
    with session(odoo, ["warehouse_scanning"], rate_hz=10.0) as probes:
        probes.prepare()
        probes.start()
        time.sleep(0.3)
        # Block the probe loop for 0.8 s, as a stalled process would.
        probes._loop.call_soon_threadsafe(time.sleep, 0.8)
        time.sleep(1.5)
        samples = probes.stop()["warehouse_scanning"]
        slipped = probes.slipped["warehouse_scanning"]

    assert slipped >= 4, f"{slipped} slots counted as slipped"
    starts = [s.start_mono for s in samples]
    bunched = sum(b - a < 0.03 for a, b in itertools.pairwise(starts))
    assert bunched <= 1, "missed slots must not be made up in a burst"
    assert len(samples) + slipped >= 15


def test_set_rate_changes_the_interval(odoo: FakeOdoo):
    with session(odoo, ["warehouse_scanning"], rate_hz=2.0) as probes:
        probes.prepare()
        probes.start()
        time.sleep(1.0)
        changed = time.monotonic()
        probes.set_rate("warehouse_scanning", 20.0)
        time.sleep(1.0)
        samples = probes.stop()["warehouse_scanning"]

    before = [s for s in samples if s.scheduled_mono < changed]
    after = [s for s in samples if s.scheduled_mono >= changed]
    assert len(before) <= 4
    assert len(after) >= 12, f"{len(after)} attempts in 1 s at 20 Hz"


def test_dispatch_writes_are_ledgered_and_read_back(odoo: FakeOdoo):
    with session(odoo, ["dispatch"], rate_hz=5.0) as probes:
        probes.prepare()
        samples = run_for(probes, 1.0)["dispatch"]
        ids = probes.ledger.ids("dispatch")
        healthy = probes.verify_writes()["dispatch"]
        odoo.forget("stock.picking", ids[1])
        damaged = probes.verify_writes()

    assert samples and all(s.ok for s in samples), [s.error for s in samples]
    assert ids == [s.write_id for s in samples]
    assert healthy == LedgerCheck(acknowledged=len(ids), verified=len(ids), lost=[])
    assert damaged["dispatch"].lost == [ids[1]]
    assert damaged["dispatch"].verified == len(ids) - 1

    create = odoo.calls("/jsonrpc")
    sent = [c.params["args"] for c in create if c.params["method"] == "execute_kw"]
    picking = next(a[5][0] for a in sent if a[3:5] == ["stock.picking", "create"])
    assert picking["picking_type_id"] == 7
    assert (picking["location_id"], picking["location_dest_id"]) == (8, 5)
    command, zero, move = picking["move_ids"][0]
    assert (command, zero) == (0, 0)
    assert move["product_id"] == 2, "the consumable is preferred"
    assert move["product_uom"] == 1 and move["product_uom_qty"] == 1.0
    steps = [a[4] for a in sent if a[3] == "stock.picking" and a[4] != "search_read"]
    assert steps[:4] == ["create", "action_confirm", "action_assign", "button_validate"]


def test_validation_answering_a_wizard_is_not_acknowledged(odoo: FakeOdoo):
    odoo.validate_result = {
        "type": "ir.actions.act_window",
        "res_model": "stock.backorder.confirmation",
    }
    with session(odoo, ["dispatch"], rate_hz=5.0) as probes:
        probes.prepare()
        samples = run_for(probes, 0.6)["dispatch"]
        checks = probes.verify_writes()

    assert samples and all(s.error_kind == "workflow" for s in samples)
    assert "not validated" in samples[0].error
    assert checks["dispatch"] == LedgerCheck(0, 0, [])


def test_prepare_is_bounded(odoo: FakeOdoo):
    odoo.mode = "hang"
    with session(odoo, ["dispatch"], timeout_s=10.0) as probes:
        started = time.monotonic()
        with pytest.raises(ComponentError, match=r"within 0\.5 s"):
            probes.prepare(timeout_s=0.5)

        assert time.monotonic() - started < 3.0


def test_password_never_shows_in_session_repr_or_logs(
    odoo: FakeOdoo, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    with session(odoo, ["warehouse_scanning", "dispatch"], rate_hz=5.0) as probes:
        probes.prepare()
        run_for(probes, 0.5)
        probes.verify_writes()
        text = repr(probes) + str(probes) + repr(vars(probes))

    messages = [record.getMessage() for record in caplog.records]
    assert any("probes started" in message for message in messages)
    assert any("stopped" in message for message in messages)
    assert PASSWORD not in text
    assert not [message for message in messages if PASSWORD in message]


def test_ledger_appends_from_many_threads():
    ledger = Ledger()

    def append(base: int) -> None:
        for offset in range(500):
            ledger.record("dispatch", base + offset)

    threads = [threading.Thread(target=append, args=(n * 1000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ledger.ids("dispatch"))) == 4000
    assert ledger.counts() == {"dispatch": 4000}


def test_verify_reads_in_batches_and_reports_missing_ids(odoo: FakeOdoo):
    odoo.records["stock.picking"] = {i: {"id": i} for i in (11, 12, 14, 15, 16)}

    async def main() -> LedgerCheck:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = OdooClient(http, odoo.url, DB, LOGIN, PASSWORD)
            return await verify(
                client, "stock.picking", [16, 11, 12, 13, 14, 15, 11], 2
            )

    check = asyncio.run(main())

    assert check == LedgerCheck(acknowledged=6, verified=5, lost=[13])
    reads = [c for c in odoo.calls("/jsonrpc") if c.params["method"] == "execute_kw"]
    assert len(reads) == 3
    assert reads[0].params["args"][5] == [[["id", "in", [11, 12]]]]


def test_verify_retries_transport_errors_a_bounded_number_of_times(odoo: FakeOdoo):
    odoo.records["stock.picking"] = {21: {"id": 21}}

    async def check(failures: list[str]) -> LedgerCheck:
        odoo.script.extend(failures)
        async with httpx.AsyncClient(trust_env=False) as http:
            client = OdooClient(http, odoo.url, DB, LOGIN, PASSWORD)
            return await verify(client, "stock.picking", [21], timeout_s=0.5)

    assert asyncio.run(check(["http_502", "reset"])).lost == []
    with pytest.raises(TransportError) as caught:
        asyncio.run(check(["http_502", "http_502", "http_502"]))
    assert caught.value.kind == "http_5xx"


def test_procurement_and_invoicing_acknowledge_approved_and_posted_writes(
    odoo: FakeOdoo,
):
    flows = ["procurement_approval", "invoice_posting"]
    with session(odoo, flows, rate_hz=4.0) as probes:
        probes.prepare()
        samples = run_for(probes, 0.6)
        checks = probes.verify_writes()

    for flow in flows:
        assert samples[flow] and all(s.ok for s in samples[flow]), samples[flow]
        assert checks[flow].acknowledged == len(samples[flow])
        assert not checks[flow].lost
    order = odoo.records["purchase.order"][samples["procurement_approval"][0].write_id]
    assert (order["partner_id"], order["state"]) == (9, "purchase")
    assert order["order_line"][0][2]["product_uom"] == 1
    invoice = odoo.records["account.move"][samples["invoice_posting"][0].write_id]
    assert (invoice["partner_id"], invoice["move_type"]) == (10, "out_invoice")
    assert invoice["state"] == "posted"
    approvals = odoo.calls("/web/dataset/call_kw/purchase.order.button_approve")
    assert approvals, "procurement goes through the web session"


def test_a_long_stall_does_not_use_up_the_probes_connections(odoo: FakeOdoo):
    # Attempts time out in a stall far longer than the pool has connections
    # for; once the server answers again, so must the probe. The leak this
    # guards against (requests cancelled inside httpx's pool keeping their
    # slots) showed after several long freezes of the edge; the benchmark of
    # accuracy runs those.
    with session(
        odoo, ["warehouse_scanning"], rate_hz=20.0, timeout_s=0.5, max_in_flight=4
    ) as probes:
        probes.prepare()
        probes.start()
        odoo.mode = "hang"
        time.sleep(6.0)
        odoo.mode = "ok"
        odoo.release.set()
        time.sleep(4.0)
        samples = probes.stop()["warehouse_scanning"]

    stalled = [s for s in samples if not s.ok]
    assert len(stalled) > 20
    last_second = [s for s in samples if s.start_mono > samples[-1].start_mono - 1.0]
    assert last_second and all(s.ok for s in last_second), [
        (s.error_kind, s.error) for s in last_second if not s.ok
    ][:3]


def test_a_probe_loop_that_died_is_an_error_within_its_bound_not_a_hang(
    odoo: FakeOdoo,
):
    # The probes run on a thread of the run's own process; if that thread
    # stops, every later call must fail within its bound, so the scenario
    # fails and its teardown heals the platform, instead of hanging with the
    # fault live.
    probes = session(odoo, ["warehouse_scanning"], rate_hz=10.0, timeout_s=0.5)
    probes.start()
    time.sleep(0.5)
    probes._loop.call_soon_threadsafe(probes._loop.stop)
    probes._thread.join(5)
    assert not probes._thread.is_alive()

    began = time.monotonic()
    with pytest.raises(ComponentError, match="did not finish within"):
        probes.stop()
    assert time.monotonic() - began < 0.5 + 2 * LOOP_GRACE_S + 5
    with pytest.raises(ComponentError):
        probes.close()  # said again, and the session is closed for good
    with pytest.raises(RuntimeError, match="closed"):
        probes.verify_writes()
