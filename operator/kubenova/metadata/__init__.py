"""What a guest learns about itself at boot: the config-drive / metadata-service analogue."""

from kubenova.metadata.nocloud import build_seed

__all__ = ["build_seed"]
