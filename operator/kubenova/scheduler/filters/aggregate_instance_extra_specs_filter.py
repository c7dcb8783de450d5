"""AggregateInstanceExtraSpecsFilter: the flavor's extra specs match the host's metadata."""

from __future__ import annotations

from functools import partial

import numpy as np

from kubenova.scheduler.filters import extra_specs_ops
from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec

SCOPE = "aggregate_instance_extra_specs"


class AggregateInstanceExtraSpecsFilter(BaseHostFilter):
    """Mirrors Nova's AggregateInstanceExtraSpecsFilter, Node labels standing in for aggregate
    metadata: every extra spec that is unscoped or scoped `aggregate_instance_extra_specs:` needs
    a label of that key whose value matches (extra_specs_ops operators); a missing label fails,
    as in Nova. Keys of any other scope (hw:cpu_policy, ...) belong to other parts and are
    ignored."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        labels = host.node.labels
        for key, label, requirement in _label_specs(spec.extra_specs):
            reason = _mismatch(key, label, requirement, labels.get(label))
            if reason is not None:
                return FilterResult.fail(reason)
        return FilterResult.ok()

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        passing = np.ones(len(table), dtype=bool)
        for key, label, requirement in _label_specs(spec.extra_specs):
            passing &= table.label_mask(label, partial(_fits, key, label, requirement))
        return passing


def _label_specs(extra_specs: dict[str, str]) -> list[tuple[str, str, str]]:
    """(extra spec key, the Node label it names, the requirement) of the specs this filter
    checks: unscoped ones and those scoped aggregate_instance_extra_specs:."""
    specs = []
    for key, requirement in extra_specs.items():
        scope, sep, rest = key.partition(":")
        if sep and scope != SCOPE:
            continue
        specs.append((key, rest if sep else key, requirement))
    return specs


def _fits(key: str, label: str, requirement: str, value: str | None) -> bool:
    return _mismatch(key, label, requirement, value) is None


def _mismatch(key: str, label: str, requirement: str, value: str | None) -> str | None:
    """Why a Node whose label `label` is `value` (None: absent) fails the spec, else None."""
    if value is None:
        return f"extra spec {key}: node has no label {label}"
    if not extra_specs_ops.match(value, requirement):
        return f"extra spec {key}={requirement!r}: node label {label}={value!r}"
    return None
