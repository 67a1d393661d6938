"""Platforms by name: where faults are injected."""

from __future__ import annotations

from pathlib import Path

from chaoscert.errors import ConfigError
from chaoscert.platforms.base import Platform

KNOWN = ("local",)


def get_platform(name: str, topology: Path, state_dir: Path | None = None) -> Platform:
    """The platform called `name`; ConfigError names the known ones otherwise."""
    if name == "local":
        from chaoscert.platforms.local.platform import LocalPlatform

        return LocalPlatform(topology, state_dir)
    raise ConfigError(
        f"--platform {name!r} is not available (available: {', '.join(KNOWN)})"
    )
