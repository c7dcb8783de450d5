"""Scheduler configuration: one validated object (a YAML file, e.g. a mounted ConfigMap).

An unknown filter or weigher name is an error when the operator starts, not when the first
instance is scheduled.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kubenova.scheduler.host_state import AllocationRatios
from kubenova.scheduler.registry import DEFAULT_FILTERS, DEFAULT_WEIGHERS, FILTERS, WEIGHERS


def _known(names: list[str], registry: dict, what: str) -> list[str]:
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(registry)}")
    return names


class SchedulerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled_filters: list[str] = Field(default_factory=lambda: list(DEFAULT_FILTERS))
    """Filters, in the order they run."""
    weighers: list[str] = Field(default_factory=lambda: list(DEFAULT_WEIGHERS))
    weight_multipliers: dict[str, float] = Field(default_factory=dict)
    """By weigher name; a weigher not named here uses Nova's default multiplier."""
    cpu_allocation_ratio: float = Field(default=4.0, gt=0)
    ram_allocation_ratio: float = Field(default=1.0, gt=0)
    disk_allocation_ratio: float = Field(default=1.0, gt=0)
    host_subset_size: int = Field(default=1, ge=1)
    """Choose randomly among this many best-weighed hosts (spreads concurrent decisions)."""
    max_placement_results: int = Field(default=1000, ge=1)
    """Hosts weighed per decision at most (Nova's [scheduler] max_placement_results: since
    Queens the filter scheduler weighs only the candidates placement returned, 1,000 by
    default); the survivors beyond are left for the next decisions, which start further on."""
    max_attempts: int = Field(default=3, ge=1)
    """Hosts one build may be tried on: the chosen one plus max_attempts-1 alternates."""

    @field_validator("enabled_filters")
    @classmethod
    def _filters_exist(cls, names: list[str]) -> list[str]:
        return _known(names, FILTERS, "filter")

    @field_validator("weighers")
    @classmethod
    def _weighers_exist(cls, names: list[str]) -> list[str]:
        return _known(names, WEIGHERS, "weigher")

    @field_validator("weight_multipliers")
    @classmethod
    def _multipliers_name_weighers(cls, values: dict[str, float]) -> dict[str, float]:
        _known(list(values), WEIGHERS, "weigher in weight_multipliers")
        return values

    @property
    def ratios(self) -> AllocationRatios:
        return AllocationRatios(
            self.cpu_allocation_ratio, self.ram_allocation_ratio, self.disk_allocation_ratio
        )

    @classmethod
    def from_file(cls, path: Path | str | None) -> SchedulerConfig:
        """The file's settings, or the defaults when no file is given."""
        if path is None:
            return cls()
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})
