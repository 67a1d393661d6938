"""Binds every feature file of the catalogue to the step definitions."""

from pytest_bdd import scenarios

scenarios(".")
