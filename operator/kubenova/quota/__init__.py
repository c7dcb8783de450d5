"""Nova's quotas: limits per namespace (project) and a race-free ledger of what is used."""

from kubenova.quota.ledger import LedgerConflict, QuotaExceeded, Quotas
from kubenova.quota.usage import Usage, instance_usage, volume_usage

__all__ = ["LedgerConflict", "QuotaExceeded", "Quotas", "Usage", "instance_usage", "volume_usage"]
