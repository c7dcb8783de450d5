"""Why an image could not be imported. Every message may reach the tenant (the Image's
status, an Event): none says anything about bytes the tenant was not allowed to read."""

from __future__ import annotations


class ImageError(Exception):
    """Anything that keeps an image from becoming usable on this host."""


class ImageFetchError(ImageError):
    """The source could not be read: HTTP error, unreachable host, missing file, timeout."""


class ImportRefused(ImageError):
    """The image import policy does not allow this source (or where it leads)."""

    def __init__(self, source: str, reason: str, key: str) -> None:
        super().__init__(
            f"image source {source} refused by image import policy: {reason} (imageImport.{key})"
        )
        self.source, self.reason, self.key = source, reason, key


class ChecksumMismatch(ImageError):
    """The bytes were read but are not the ones the Image pins.

    The message names only the expected sha256: the actual one (and the size) would tell a
    tenant something about bytes they may not have been able to read. `actual` is kept for
    the operator's log.
    """

    def __init__(self, source: str, expected: str, actual: str) -> None:
        super().__init__(
            f"checksum mismatch for {source}: the bytes read do not have sha256 {expected}"
        )
        self.source = source
        self.expected = expected
        self.actual = actual
