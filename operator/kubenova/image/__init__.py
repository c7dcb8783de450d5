"""Images on the compute host: the verified base-image cache glance images are fetched into."""

from kubenova.image.cache import ChecksumMismatch, ImageCache, ImageError, ImageFetchError

__all__ = ["ChecksumMismatch", "ImageCache", "ImageError", "ImageFetchError"]
