"""The apiserver's own count of the requests it served (`apiserver_request_total` on /metrics),
by verb and resource: how bench/schedule.py and tests/integration/test_write_budget.py count
the API calls per object, so both count alike.

Every response counts, whatever its code: a write refused with 409 (a lost compare-and-swap)
cost the apiserver a request as much as one that succeeded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from prometheus_client.parser import text_string_to_metric_families

from kubenova import GROUP

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})
READS = frozenset({"GET", "LIST"})  # WATCH is one long request, not a per-object cost


class Request(NamedTuple):
    verb: str
    group: str  # "" for the core group
    resource: str  # resource[/subresource]

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}"


Requests = Counter[Request]


def api_requests(api: Any) -> Requests:
    """apiserver_request_total from the apiserver's /metrics (a kubernetes ApiClient with
    admin credentials), by (verb, group, resource[/subresource])."""
    response = api.call_api("GET", api.configuration.host + "/metrics")
    response.read()
    return parse(response.data.decode())


def parse(text: str) -> Requests:
    counts: Requests = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != "apiserver_request_total":
                continue
            labels = sample.labels
            resource = labels.get("resource") or labels.get("subresource") or "?"
            if labels.get("resource") and labels.get("subresource"):
                resource += "/" + labels["subresource"]
            key = Request(labels.get("verb", "?"), labels.get("group", ""), resource)
            counts[key] += int(sample.value)
    return counts


def kubenova_objects(request: Request) -> bool:
    """The requests an instance's build costs: kubenova's kinds (instances and their status,
    resourceproviders, quotas, ports, volumes, ...) and Events. Not the per-process ones
    (a leader's Lease renewals, a host's Node heartbeat), which do not grow with instances."""
    return request.group == GROUP or (request.group == "" and request.resource == "events")


def since(
    after: Requests, before: Requests, keep: Callable[[Request], bool] = lambda _: True
) -> Requests:
    """The requests served between two readings, those `keep` accepts."""
    return Counter({key: n for key, n in (after - before).items() if keep(key)})


def per_object(counts: Requests, verbs: frozenset[str], objects: int) -> float:
    total = sum(n for key, n in counts.items() if key.verb in verbs)
    return round(total / objects, 2) if objects else 0.0


def table(counts: Requests, objects: int, verbs: frozenset[str] = WRITES) -> str:
    """One line per (verb, resource) with its count per object, most first, and the total."""
    rows = [(str(key), n) for key, n in counts.most_common() if key.verb in verbs and n]
    width = max((len(label) for label, _ in rows), default=10)
    lines = [f"  {label:<{width}}  {n:>6}  {n / max(1, objects):>6.2f}" for label, n in rows]
    total = sum(n for _, n in rows)
    lines.append(f"  {'total':<{width}}  {total:>6}  {total / max(1, objects):>6.2f}")
    return "\n".join([f"  {'request':<{width}}  {'count':>6}  {'/ obj':>6}", *lines])
