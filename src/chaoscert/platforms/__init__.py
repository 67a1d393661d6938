"""Platforms by name: where faults are injected."""

from __future__ import annotations

from pathlib import Path

from chaoscert.errors import ConfigError
from chaoscert.platforms.base import Platform

KNOWN = ("local", "kubernetes")


def get_platform(
    name: str,
    topology: Path,
    state_dir: Path,
    target: Path | None = None,
    kubeconfig: Path | None = None,
) -> Platform:
    """The platform called `name`; ConfigError names the known ones otherwise.

    local needs a topology; kubernetes needs a target profile."""
    if name == "local":
        from chaoscert.platforms.local.platform import LocalPlatform

        return LocalPlatform(topology, state_dir)
    if name == "kubernetes":
        if target is None:
            raise ConfigError("--platform kubernetes needs --target PROFILE.yaml")
        from chaoscert.platforms.kubernetes.platform import KubernetesPlatform

        return KubernetesPlatform(target, state_dir, kubeconfig)
    raise ConfigError(
        f"--platform {name!r} is not available (available: {', '.join(KNOWN)})"
    )
