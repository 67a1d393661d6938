"""The fault registry heals on every way out and keeps a record on disk."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from chaoscert.errors import FaultError
from chaoscert.platforms.base import FaultHandle, FaultRegistry
from chaoscert.results import redact_tree


class Switch:
    """A fault target: something that is on or off, for real, in memory."""

    def __init__(self) -> None:
        self.broken = True

    def heal(self) -> None:
        self.broken = False


def test_record_lists_live_faults_and_goes_when_healed(tmp_path: Path) -> None:
    record = tmp_path / "live-faults.json"
    registry = FaultRegistry(record)
    target = Switch()

    handle = registry.add(
        FaultHandle("node_hang", "node a1", target.heal, {"undo": [{"op": "thaw"}]})
    )

    assert json.loads(record.read_text())[0]["details"]["undo"] == [{"op": "thaw"}]
    assert registry.heal_all() == []
    assert not target.broken
    assert handle.healed
    assert not record.exists()


def test_a_fault_that_cannot_heal_is_reported_and_kept(tmp_path: Path) -> None:
    record = tmp_path / "live-faults.json"
    registry = FaultRegistry(record)

    def refuse() -> None:
        raise OSError("cgroup gone")

    registry.add(FaultHandle("node_hang", "node a1", refuse))

    errors = registry.heal_all()

    assert errors == ["could not heal node_hang on node a1: OSError: cgroup gone"]
    assert len(registry.live()) == 1
    assert record.exists()
    with pytest.raises(FaultError):
        registry.live()[0].heal()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_heals_then_stops_the_run(tmp_path: Path, signum: int) -> None:
    registry = FaultRegistry(tmp_path / "live-faults.json")
    target = Switch()
    registry.add(FaultHandle("node_crash", "node b1", target.heal))
    registry.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
    finally:
        registry.uninstall()
        FaultRegistry.received_signal = None

    assert not target.broken
    assert registry.live() == []


def test_redaction_replaces_every_secret_in_every_file(tmp_path: Path) -> None:
    secret = "s3cret-value-of-some-length"
    (tmp_path / "sub").mkdir()
    (tmp_path / "junit.xml").write_text(f"<x password='{secret}'/>")
    (tmp_path / "sub" / "log.txt").write_text(f"a {secret} b {secret}")
    (tmp_path / "clean.txt").write_text("nothing here")

    redact_tree(tmp_path, [secret])

    texts = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(secret in text for text in texts)
    assert (tmp_path / "sub" / "log.txt").read_text() == "a [redacted] b [redacted]"
    assert (tmp_path / "clean.txt").read_text() == "nothing here"


def test_an_undo_step_is_on_record_as_soon_as_it_is_added(tmp_path: Path) -> None:
    from chaoscert.platforms.base import UndoLog

    registry = FaultRegistry(tmp_path / "live.json")
    undo = UndoLog(registry.save)
    registry.add(FaultHandle("node_hang", "node a1", lambda: None, {"undo": undo}))

    undo.append({"op": "thaw", "node": "a1"})

    saved = json.loads((tmp_path / "live.json").read_text())
    assert saved[0]["details"]["undo"] == [{"op": "thaw", "node": "a1"}]
