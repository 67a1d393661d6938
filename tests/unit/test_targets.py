"""Target profiles load, refuse bad fields by name, and guard destructive faults."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chaoscert.errors import ConfigError
from chaoscert.targets import load_target

ROOT = Path(__file__).resolve().parents[2]
KIND = ROOT / "fixtures/targets/kind.yaml"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_profiles_load() -> None:
    kind = load_target(KIND)
    staging = load_target(ROOT / "fixtures/targets/staging.example.yaml")

    assert kind.database.primary_selector() == (
        "cnpg.io/cluster=odoo-db,cnpg.io/instanceRole=primary"
    )
    assert (
        staging.database.primary_selector() == "cluster-name=odoo-pg,spilo-role=master"
    )
    assert kind.node_faults.mode == "kind"
    assert staging.node_faults.mode == "drain"


def test_destructive_faults_only_on_allowed_contexts() -> None:
    profile = load_target(KIND)

    profile.refuse_unless_allowed("kind-chaoscert", "node_hang")
    with pytest.raises(ConfigError, match="refusing node_hang on context 'prod'"):
        profile.refuse_unless_allowed("prod", "node_hang")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["database"].update(flavour="mysql"), "database.flavour"),
        (lambda d: d["node_faults"].pop("kind_cluster"), "kind_cluster"),
        (lambda d: d.update(base_url="odoo.example.com"), "base_url"),
        (lambda d: d["selectors"].update(app="app name=odoo"), "selectors.app"),
        (lambda d: d.update(password="hunter2"), "password"),
    ],
)
def test_bad_profiles_name_the_field(tmp_path: Path, mutate, expected: str) -> None:
    data = yaml.safe_load(KIND.read_text())
    mutate(data)

    with pytest.raises(ConfigError, match=expected) as caught:
        load_target(write(tmp_path, data))

    assert "target.yaml" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_target(KIND)
    monkeypatch.setenv("CHAOSCERT_ODOO_LOGIN", "admin")
    monkeypatch.delenv("CHAOSCERT_ODOO_PASSWORD", raising=False)

    with pytest.raises(ConfigError, match="CHAOSCERT_ODOO_PASSWORD is not set"):
        profile.odoo.credentials(KIND)

    monkeypatch.setenv("CHAOSCERT_ODOO_PASSWORD", "s3cret-value")
    login, password = profile.odoo.credentials(KIND)
    assert login == "admin"
    assert password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(password)
