"""Bad input to `chaoscert run` is one line and exit code 2, before anything starts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def chaoscert(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chaoscert.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rate-hz", "0"], "--rate-hz must be a positive number"),
        (["--rate-hz", "inf"], "--rate-hz must be a positive number"),
        (["--probe-timeout-s", "-1"], "--probe-timeout-s must be a positive"),
        (["--platform", "cloud"], "--platform 'cloud' is not available"),
        (["--platform", "kubernetes"], "--platform kubernetes needs --target"),
        (
            ["--platform", "kubernetes", "--target", "fixtures/slo-tiers.yaml"],
            "fixtures/slo-tiers.yaml: ",
        ),
        (["--topology", "nowhere.yaml"], "nowhere.yaml: cannot read"),
        (["--slo", "fixtures/topologies/reference.yaml"], "field tiers"),
    ],
)
def test_bad_run_options(tmp_path: Path, args: list[str], expected: str) -> None:
    done = chaoscert(
        "run", f"--reports-dir={tmp_path}", f"--state-dir={tmp_path}", *args
    )

    assert done.returncode == 2
    assert expected in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "nodes").exists()


def test_a_feature_step_without_definition_is_refused_before_the_stack(
    tmp_path: Path,
) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(ROOT / "steps", suite / "steps")
    shutil.copytree(ROOT / "fixtures", suite / "fixtures")
    shutil.copy(ROOT / "conftest.py", suite / "conftest.py")
    shutil.copy(ROOT / "pyproject.toml", suite / "pyproject.toml")
    (suite / "features").mkdir()
    (suite / "features" / "odd.feature").write_text(
        "Feature: Odd\n"
        "  Scenario: A step nobody wrote\n"
        "    Given the platform is in steady state within 10 seconds\n"
        "    When the moon turns blue\n"
    )
    state = tmp_path / "state"

    done = chaoscert("run", f"--suite={suite}", f"--state-dir={state}", cwd=suite)

    assert done.returncode == 2, done.stdout[-2000:]
    assert "odd.feature:4: no step definition matches When 'the moon turns blue'" in (
        done.stdout + done.stderr
    )
    assert not (state / "nodes").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--reports-dir", "{file}"],
        ["run", "--state-dir", "{file}/below"],
        ["local", "down", "--state-dir", "{file}"],
        ["history", "--reports-dir", "{file}"],
    ],
)
def test_a_file_where_a_directory_belongs_is_one_line(
    tmp_path: Path, args: list[str]
) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a directory")

    done = chaoscert(*(arg.format(file=file) for arg in args))

    assert done.returncode == 2
    assert f"{file} is not a directory" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
