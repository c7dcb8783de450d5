"""The compute host's image cache: verified base images in one directory, like Nova's `_base`.

An image file is named by the sha256 it was verified against and only ever appears through an
atomic rename after the checksum matched, so its presence alone proves it is complete and correct.
Downloads are serialised per checksum twice: an asyncio lock inside the process and an
`fcntl.flock` on `<checksum>.lock` between processes that share the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import NamedTuple, TypeVar

import aiohttp

from kubenova.image.errors import ChecksumMismatch, ImageError, ImageFetchError, ImportRefused
from kubenova.image.http import CHUNK, stream_http
from kubenova.image.policy import ImageImportPolicy
from kubenova.tools import find_tool

log = logging.getLogger("kubenova.image")

T = TypeVar("T")
Progress = Callable[[int], None]
"""Told the bytes read so far after each chunk written, possibly from a worker thread: it
should only record the number (the Image handler reports it at its own pace)."""

__all__ = ["ChecksumMismatch", "ImageCache", "ImageError", "ImageFetchError", "ImportRefused"]


class RemovedImage(NamedTuple):
    path: Path
    size: int


_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENTRY = re.compile(
    r"(?P<sum>[0-9a-f]{64})(?P<kind>\.lock|\.sources|\.part-.+|\.sources\.part-.+)?"
)
MAX_SOURCES = 64
"""Sources remembered per cached image (the verified ones; the oldest forgotten first)."""


class ImageCache:
    """Verified base images under `base_dir/<sha256>`, fetched once per host."""

    def __init__(
        self,
        base_dir: Path,
        *,
        policy: ImageImportPolicy | None = None,
        connect_timeout: float = 30.0,
        read_timeout: float = 120.0,
        qemu_img_timeout: float = 60.0,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.policy = policy
        """Checked before any source is read, and on where it leads; None: the caller has
        checked it (the pod driver's launcher, fetching what the operator admitted)."""
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._qemu_img_timeout = qemu_img_timeout
        # checksum -> (lock, number of coroutines using it); dropped when unused so the dict
        # doesn't grow forever and no lock outlives the event loop it was bound to.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def cached_path(self, checksum: str) -> Path | None:
        """The verified image for `checksum`, if this host has it."""
        path = self._image_path(checksum)
        return path if path.is_file() else None

    async def check(self, source: str) -> None:
        """Raise ImportRefused if the policy does not allow `source` (paths resolved)."""
        if not source.startswith(("http://", "https://", "/")):
            raise ImageFetchError(
                f"unsupported image source {source!r}: need an http(s) URL or an absolute path"
            )
        if self.policy is not None:
            await asyncio.to_thread(self.policy.check_source, source)

    async def fetch(self, source: str, checksum: str, progress: Progress | None = None) -> Path:
        """Return the verified image, downloading it first unless it is already cached.

        The policy is checked first even when the image is cached: a forbidden source must
        not become usable because someone else's allowed one had the same checksum. With a
        policy, a cached image counts only for the sources it was verified from: another
        source naming the same checksum is read and verified itself, so nobody gets bytes
        (another tenant's image) by knowing only their sha256.
        Concurrent callers for one checksum (in this process or another one sharing base_dir)
        download it once; the others wait and get the same path.
        """
        final = self._image_path(checksum)
        await self.check(source)
        if await self._cached_for(checksum, source):
            return final
        async with self._local_lock(checksum):
            if await self._cached_for(checksum, source):
                return final
            fd = await self._lock_file(checksum)
            try:
                # another process may have fetched it while we waited
                if not await self._cached_for(checksum, source):
                    await self._download(source, checksum, final, progress)
                    if self.policy is not None:
                        await asyncio.to_thread(self._remember_source, checksum, source)
            finally:
                os.close(fd)
        return final

    async def _cached_for(self, checksum: str, source: str) -> bool:
        final = self._image_path(checksum)
        if self.policy is None:
            return final.is_file()
        return await asyncio.to_thread(
            lambda: final.is_file() and source in self._verified_sources(checksum)
        )

    def _verified_sources(self, checksum: str) -> list[str]:
        try:
            sources = json.loads(self._sources_path(checksum).read_text())
        except (OSError, ValueError):
            return []
        return [s for s in sources if isinstance(s, str)] if isinstance(sources, list) else []

    def _remember_source(self, checksum: str, source: str) -> None:
        """Record (under the checksum's lock) that `source` yielded these bytes."""
        sources = [s for s in self._verified_sources(checksum) if s != source]
        sources = [*sources[-(MAX_SOURCES - 1) :], source]
        path = self._sources_path(checksum)
        tmp = path.with_name(f"{path.name}.part-{os.getpid()}")
        tmp.write_text(json.dumps(sources))
        os.replace(tmp, path)

    def _sources_path(self, checksum: str) -> Path:
        return self.base_dir / f"{checksum}.sources"

    async def virtual_size(self, path: Path, disk_format: str | None = None) -> int:
        """The guest-visible disk size in bytes, as `qemu-img info` reports it.

        Pass `disk_format` for untrusted images: probing lets a raw image pose as qcow2.
        """
        cmd = [find_tool("qemu-img"), "info", "--output=json", "--force-share"]
        if disk_format is not None:
            cmd += ["-f", disk_format]
        # Never bare, so a file named like "json:{...}" isn't read as a qemu protocol string.
        cmd.append(str(path) if Path(path).is_absolute() else f"./{path}")
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(self._qemu_img_timeout):
                out, err = await proc.communicate()
        except BaseException as e:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            if isinstance(e, TimeoutError):
                raise ImageError(
                    f"qemu-img info {path} timed out after {self._qemu_img_timeout}s"
                ) from None
            raise
        if proc.returncode != 0:
            msg = err.decode(errors="replace").strip()
            raise ImageError(f"qemu-img info {path} failed (exit {proc.returncode}): {msg}")
        try:
            return int(json.loads(out)["virtual-size"])
        except (ValueError, KeyError, TypeError) as e:
            raise ImageError(f"qemu-img info {path}: unexpected output: {e!r}") from e

    def touch(self, checksums: set[str]) -> None:
        """Mark the cached images of `checksums` as used now: their age, which decides when an
        unused one is removed, counts from the last audit that found them in use (as Nova's
        image cache manager touches the base files of its instances)."""
        for checksum in checksums:
            path = self.cached_path(checksum)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.utime(path)

    def remove_unused(self, keep: set[str], min_age: float = 0.0) -> list[RemovedImage]:
        """Delete images whose checksum is not in `keep` and that are at least `min_age`
        seconds old (since fetched or last touched), with their lock files, and leftovers of
        dead downloads (Nova's image cache manager); returns what was removed, with sizes.

        A checksum whose lock is held (a fetch in progress, here or in another process) is left
        alone entirely. Blocking file I/O: call it through asyncio.to_thread from async code.
        """
        try:
            names = os.listdir(self.base_dir)
        except FileNotFoundError:
            return []
        by_checksum: dict[str, list[str]] = {}
        for name in names:
            if m := _ENTRY.fullmatch(name):
                by_checksum.setdefault(m["sum"], []).append(name)
        removed: list[RemovedImage] = []
        young_before = time.time() - min_age
        for checksum, entries in sorted(by_checksum.items()):
            with self._try_flock(checksum) as locked:
                if not locked:
                    continue
                kept = checksum in keep or _mtime(self.base_dir / checksum) > young_before
                # The lock file goes last: someone who opens it afterwards gets a fresh one.
                for name in sorted(entries, key=lambda n: (n.endswith(".lock"), n)):
                    if kept and ".part-" not in name:
                        continue
                    path = self.base_dir / name
                    with contextlib.suppress(FileNotFoundError):
                        size = path.stat().st_size
                        path.unlink()
                        removed.append(RemovedImage(path, size))
        if removed:
            log.info("image cache: removed %s", ", ".join(r.path.name for r in removed))
        return removed

    # -- internals ---------------------------------------------------------------------------

    def _image_path(self, checksum: str) -> Path:
        # The checksum becomes a file name: anything but lowercase hex could escape base_dir.
        if not isinstance(checksum, str) or not _SHA256.fullmatch(checksum):
            raise ValueError(f"checksum must be 64 lowercase hex digits (sha256): {checksum!r}")
        return self.base_dir / checksum

    def _lock_path(self, checksum: str) -> Path:
        return self.base_dir / f"{checksum}.lock"

    @contextlib.asynccontextmanager
    async def _local_lock(self, checksum: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(checksum) or (asyncio.Lock(), 0)
        self._locks[checksum] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[checksum]
            if users == 1:
                del self._locks[checksum]
            else:
                self._locks[checksum] = (lock, users - 1)

    async def _lock_file(self, checksum: str) -> int:
        """Take the cross-process lock in a worker thread; returns the fd that holds it."""
        try:
            return await _in_thread_or_undo(
                functools.partial(self._acquire_flock, checksum), undo=os.close
            )
        except OSError as e:
            raise ImageFetchError(f"cannot lock {self._lock_path(checksum)}: {e}") from e

    def _acquire_flock(self, checksum: str) -> int:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        path = self._lock_path(checksum)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if _is_current(fd, path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            # remove_unused deleted the file while we waited: lock the one that is there now.
            os.close(fd)

    @contextlib.contextmanager
    def _try_flock(self, checksum: str) -> Iterator[bool]:
        path = self._lock_path(checksum)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            # Every fetch holds a lock on the file at this path, so no file means no fetch.
            yield True
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield _is_current(fd, path)
        finally:
            os.close(fd)

    async def _download(
        self, source: str, checksum: str, final: Path, progress: Progress | None
    ) -> None:
        try:
            fd, name = await _in_thread_or_undo(
                functools.partial(tempfile.mkstemp, prefix=f"{checksum}.part-", dir=self.base_dir),
                undo=_discard_temp,
            )
        except OSError as e:
            raise ImageFetchError(f"cannot create a file in {self.base_dir}: {e}") from e
        tmp = Path(name)
        sink = _Sink(fd, progress)
        try:
            try:
                if source.startswith("/"):
                    await asyncio.to_thread(_copy_file, Path(source), sink, self.policy)
                else:
                    await stream_http(source, self.policy, self._timeout, sink.write_async)
                actual = sink.hexdigest()
                if actual != checksum:
                    log.warning(
                        "image cache: %s has sha256 %s (%d bytes), not %s",
                        source,
                        actual,
                        sink.size,
                        checksum,
                    )
                    raise ChecksumMismatch(source, checksum, actual)
                await asyncio.to_thread(sink.commit)
                await asyncio.to_thread(_publish, tmp, final)
            except TimeoutError as e:
                raise ImageFetchError(
                    f"fetching {source} failed: timed out (connect timeout "
                    f"{self._connect_timeout}s, read timeout {self._read_timeout}s)"
                ) from e
            except (OSError, aiohttp.ClientError) as e:
                raise ImageFetchError(f"fetching {source} failed: {e}") from e
        except BaseException:
            # A cancelled worker thread may still be writing: close in a thread once it's done.
            asyncio.get_running_loop().run_in_executor(None, sink.close)
            # Synchronous on purpose: one metadata syscall, and awaiting here could be cancelled.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        log.info("image cache: fetched %s from %s (%d bytes)", checksum, source, sink.size)


class _Sink:
    """A temp file and the sha256 of what went into it, written from worker threads.

    Cancelling a coroutine doesn't stop the thread it awaits, so the file is closed under a lock
    (never under a running write) and writes after close are dropped.
    """

    def __init__(self, fd: int, progress: Progress | None = None) -> None:
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._lock = threading.Lock()
        self.progress = progress
        self.size = 0

    async def write_async(self, data: bytes | bytearray) -> None:
        await asyncio.to_thread(self.write, data)
        if self.progress is not None:
            self.progress(self.size)

    def write(self, data: bytes | bytearray) -> bool:
        with self._lock:
            if self._file.closed:
                return False
            self._file.write(data)
            self._hash.update(data)
            self.size += len(data)
            return True

    def hexdigest(self) -> str:
        with self._lock:
            return self._hash.hexdigest()

    def commit(self) -> None:
        """Make the bytes durable before the rename publishes them."""
        with self._lock:
            self._file.flush()
            os.fchmod(self._file.fileno(), 0o644)
            os.fsync(self._file.fileno())
            self._file.close()

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._file.close()


def _copy_file(src: Path, sink: _Sink, policy: ImageImportPolicy | None) -> None:
    """Copy a host file. With a policy, the file actually opened is checked (its
    /proc/self/fd link), so a symlink swapped in after the check leads nowhere forbidden;
    only regular files are read (a FIFO would hang, a device never end)."""
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if policy is not None:
            policy.check_path(str(src), resolved=os.readlink(f"/proc/self/fd/{fd}"))
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ImportRefused(
                    str(src), "host paths must be regular files", "allowedPathPrefixes"
                )
        os.set_blocking(fd, True)
        while chunk := f.read(CHUNK):
            if not sink.write(chunk):
                return  # aborted
            if sink.progress is not None:
                sink.progress(sink.size)


def _publish(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a crash too
    finally:
        os.close(dir_fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("-inf")  # a lock or part file without its image: no age to wait for


def _is_current(fd: int, path: Path) -> bool:
    """Whether `fd` is still the file at `path` (not one remove_unused unlinked)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


async def _in_thread_or_undo(func: Callable[[], T], undo: Callable[[T], None]) -> T:
    """Run `func` in a worker thread. If we are cancelled meanwhile, the thread can't be stopped,
    so `undo` whatever it produces (an fd holding a lock, a fresh temp file) once it finishes."""
    pending = asyncio.get_running_loop().run_in_executor(None, func)
    try:
        return await asyncio.shield(pending)
    except asyncio.CancelledError:

        def cleanup(fut: asyncio.Future[T]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                undo(fut.result())

        pending.add_done_callback(cleanup)
        raise


def _discard_temp(created: tuple[int, str]) -> None:
    os.close(created[0])
    with contextlib.suppress(FileNotFoundError):
        os.unlink(created[1])
