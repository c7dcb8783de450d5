"""The periodic audit: orphans of instances that no longer exist are found and removed.

Nova's `_cleanup_running_deleted_instances` (a VM whose instance is gone) and placement's
orphaned allocations, here for everything kubenova makes on an instance's behalf: VMs and
instance directories on this operator's hosts, Ports, ResourceProvider claims and Volume
attachments (quota needs no audit: it is counted from the consumers that exist).
`decide.py` is the pure decision (unit-tested), `auditor.py` gathers a snapshot and removes
what was decided; `handlers/audit.py` runs it every `--audit-interval` seconds.
"""
