"""SLO tiers and the workflow-to-tier mapping, loaded from YAML and validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chaoscert.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

WORKFLOWS = (
    "warehouse_scanning",
    "dispatch",
    "procurement_approval",
    "invoice_posting",
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(Strict):
    """Limits one tier of workflows must keep through a fault."""

    name: str = ""
    title: str
    max_outage_s: float = Field(gt=0, description="longest outage allowed per fault")
    rpo_writes: int = Field(ge=0, description="acknowledged writes that may be lost")
    slow_threshold_s: float = Field(gt=0, description="a slower success counts failed")
    error_budget: float | None = Field(default=None, ge=0, le=1)
    probe_rate_hz: float | None = Field(
        default=None, gt=0, le=200, description="attempts per second; None: the run's"
    )
    queued: bool = False


class SloConfig(Strict):
    tiers: dict[str, Tier]
    workflows: dict[str, str]

    @model_validator(mode="before")
    @classmethod
    def _name_tiers(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("tiers"), dict):
            data = dict(data)
            data["tiers"] = {
                key: {**value, "name": key} if isinstance(value, dict) else value
                for key, value in data["tiers"].items()
            }
        return data

    @model_validator(mode="after")
    def _workflows_name_known_tiers(self) -> SloConfig:
        for workflow, tier in self.workflows.items():
            if workflow not in WORKFLOWS:
                raise ValueError(
                    f"unknown workflow {workflow!r} (known: {', '.join(WORKFLOWS)})"
                )
            if tier not in self.tiers:
                raise ValueError(
                    f"workflow {workflow!r} maps to unknown tier {tier!r}"
                    f" (known: {', '.join(sorted(self.tiers))})"
                )
        # Every scenario probes every workflow: one left out would go
        # unjudged without a word, and a certificate would not cover it.
        missing = [w for w in WORKFLOWS if w not in self.workflows]
        if missing:
            raise ValueError(
                f"workflow {missing[0]!r} has no tier; every workflow needs one"
                f" (known: {', '.join(WORKFLOWS)})"
            )
        return self

    def tier_of(self, workflow: str) -> Tier:
        try:
            return self.tiers[self.workflows[workflow]]
        except KeyError:
            raise ConfigError(
                f"workflow {workflow!r} has no tier in the SLO file"
            ) from None


def read_text(path: Path) -> str:
    """Read a UTF-8 text file, mapping every failure into one ConfigError line."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(f"{str(path)!r}: cannot read: {exc}") from None


def load_yaml(path: Path) -> Any:
    """Read a YAML file, mapping every failure into one ConfigError line."""
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None


def load_json(path: Path) -> Any:
    """Read a JSON file, mapping every failure into one ConfigError line."""
    text = read_text(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid JSON: nested too deeply") from None


def describe_validation(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(_field_part(part) for part in first["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{path}: field {field}: {first['msg']}{more}"


def _field_part(part: int | str) -> str:
    # A key of the user's file may hold a line break or worse; quoted, the
    # message stays one line.
    text = str(part)
    return text if text.isprintable() else repr(text)


def load_model(path: Path, model: type[M]) -> M:
    """Load YAML into `model`; any failure is one line naming file and field."""
    data = load_yaml(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation(path, exc)) from None


def load_slo(path: Path) -> SloConfig:
    """Load fixtures/slo-tiers.yaml (or another file of the same shape)."""
    return load_model(path, SloConfig)
