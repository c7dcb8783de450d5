"""Network handler: usedIPs / availableIPs in status, from the watch-fed Port index."""

from __future__ import annotations

import kopf

from kubenova import GROUP, VERSION
from kubenova.network.ipam import Subnet

#: Seconds between status refreshes; `kubectl get networks` shows the counts this fresh.
REFRESH = 2.0


@kopf.timer(GROUP, VERSION, "networks", interval=REFRESH, initial_delay=0)
def count_addresses(namespace, name, spec, status, patch, port_addresses, **_):
    used = len(port_addresses.get((namespace, name)) or ())
    available = max(0, Subnet.of_spec(spec).size() - used)
    if (status.get("usedIPs"), status.get("availableIPs")) != (used, available):
        patch.status.update(usedIPs=used, availableIPs=available)
