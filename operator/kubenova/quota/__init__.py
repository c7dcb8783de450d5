"""Nova's quotas: limits per namespace (project), usage counted from the consumers themselves."""

from kubenova.quota.quotas import QuotaExceeded, Quotas
from kubenova.quota.usage import Usage, instance_usage, volume_usage

__all__ = ["QuotaExceeded", "Quotas", "Usage", "instance_usage", "volume_usage"]
