"""Wires the chaoscert pytest plugin and the step definitions into the suite."""

pytest_plugins = ["chaoscert.pytest_plugin", "steps.common"]
