"""Topology and SLO files: valid ones load, bad ones name file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaoscert.config import load_slo
from chaoscert.errors import ConfigError
from chaoscert.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, data: object, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_reference_topology_places_nodes_on_their_own_addresses() -> None:
    topology = load_topology(ROOT / "fixtures/topologies/reference.yaml")

    assert [n.name for n in topology.nodes()] == ["a1", "a2", "b1", "b2", "c1", "c2"]
    assert topology.address_of("a1") == "127.0.1.1"
    assert topology.address_of("c2") == "127.0.3.2"
    assert topology.running("postgres") == ["a1", "b1", "c1"]
    assert topology.zone_of("b1") == "zone-b"
    assert topology.patroni.synchronous_mode == "quorum"


def test_shipped_slo_maps_tier1_workflows() -> None:
    slo = load_slo(ROOT / "fixtures/slo-tiers.yaml")

    assert slo.tier_of("dispatch").max_outage_s == 30
    assert slo.tier_of("warehouse_scanning").rpo_writes == 0
    assert slo.tier_of("invoice_posting").name == "tier3"


def test_patroni_timing_rule_is_enforced(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "fixtures/topologies/reference.yaml").read_text())
    data["patroni"] = {"ttl": 20, "loop_wait": 10, "retry_timeout": 10}

    with pytest.raises(ConfigError) as caught:
        load_topology(write(tmp_path, data))

    message = str(caught.value)
    assert "t.yaml" in message
    assert "must not exceed ttl" in message


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["zones"][0]["nodes"].append({"name": "b1"}), "unique"),
        (lambda d: d.update(edge_address="10.0.0.1"), "edge_address"),
        (lambda d: d["zones"].pop(), "odd number"),
        (lambda d: d.update(colour="blue"), "colour"),
        (lambda d: d["ports"].update(app=80), "ports.app"),
        (lambda d: d["ports"].update(app=28080), "ingress and app both use"),
    ],
)
def test_bad_topologies_name_the_field(tmp_path: Path, mutate, expected) -> None:
    data = yaml.safe_load((ROOT / "fixtures/topologies/reference.yaml").read_text())
    data.setdefault("ports", {})
    mutate(data)

    with pytest.raises(ConfigError, match=expected):
        load_topology(write(tmp_path, data))


def test_unreadable_and_malformed_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_topology(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"t\.yaml: line \d+ not valid YAML"):
        load_slo(write(tmp_path, "tiers:\n  - [unclosed\n"))


def test_slo_unknown_workflow(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "fixtures/slo-tiers.yaml").read_text())
    data["workflows"]["despatch"] = "tier1"

    with pytest.raises(ConfigError, match="unknown workflow 'despatch'"):
        load_slo(write(tmp_path, data))


def test_slo_workflow_on_unknown_tier(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "fixtures/slo-tiers.yaml").read_text())
    data["workflows"]["dispatch"] = "tier9"

    with pytest.raises(ConfigError, match="unknown tier 'tier9'"):
        load_slo(write(tmp_path, data))


def test_slo_that_leaves_a_workflow_out_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "fixtures/slo-tiers.yaml").read_text())
    del data["workflows"]["invoice_posting"]

    with pytest.raises(ConfigError, match="'invoice_posting' has no tier"):
        load_slo(write(tmp_path, data))
