"""AggregateInstanceExtraSpecsFilter: the flavor's extra specs match the host's metadata."""

from __future__ import annotations

from kubenova.scheduler.filters import extra_specs_ops
from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
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
        for key, requirement in spec.extra_specs.items():
            scope, sep, rest = key.partition(":")
            if sep and scope != SCOPE:
                continue
            label = rest if sep else key
            if label not in labels:
                return FilterResult.fail(f"extra spec {key}: node has no label {label}")
            if not extra_specs_ops.match(labels[label], requirement):
                return FilterResult.fail(
                    f"extra spec {key}={requirement!r}: node label {label}={labels[label]!r}"
                )
        return FilterResult.ok()
