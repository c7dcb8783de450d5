"""Images on the compute host: the import policy, and the verified base-image cache glance
images are fetched into."""

from kubenova.image.cache import ImageCache
from kubenova.image.errors import ChecksumMismatch, ImageError, ImageFetchError, ImportRefused
from kubenova.image.policy import ImageImportPolicy

__all__ = [
    "ChecksumMismatch",
    "ImageCache",
    "ImageError",
    "ImageFetchError",
    "ImageImportPolicy",
    "ImportRefused",
]
