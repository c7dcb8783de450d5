"""The image cache against real files, a real HTTP server on loopback and the real qemu-img."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubenova.image import ChecksumMismatch, ImageCache, ImageError, ImageFetchError
from kubenova.tools import find_tool

IMAGE = os.urandom(3 * 1024 * 1024 + 17)  # several chunks plus a ragged tail
IMAGE_SUM = hashlib.sha256(IMAGE).hexdigest()
OTHER = b"another image"
OTHER_SUM = hashlib.sha256(OTHER).hexdigest()
STALL_SENT = 2 * 1024 * 1024


class Server:
    """Serves `files` by path, records every request; /stall sends part of a body and hangs."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.delay = 0.0
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server.lock:
                    server.requests.append(self.path)
                time.sleep(server.delay)
                if self.path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Length", str(STALL_SENT * 2))
                    self.end_headers()
                    self.wfile.write(b"x" * STALL_SENT)
                    self.wfile.flush()
                    server.release.wait(30)
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        thread.join(5)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "cirros.qcow2"
    path.parent.mkdir()
    path.write_bytes(IMAGE)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "_base"


def leftovers(base: Path) -> list[str]:
    """Everything in base_dir but lock files, which may stay."""
    return sorted(p.name for p in base.iterdir() if not p.name.endswith(".lock"))


def test_file_source_is_verified_and_cached(base: Path, source: Path) -> None:
    cache = ImageCache(base)
    assert cache.cached_path(IMAGE_SUM) is None
    path = asyncio.run(cache.fetch(str(source), IMAGE_SUM))
    assert path == base / IMAGE_SUM
    assert path.read_bytes() == IMAGE
    assert path.stat().st_mode & 0o777 == 0o644
    assert cache.cached_path(IMAGE_SUM) == path
    assert leftovers(base) == [IMAGE_SUM]

    # The second fetch never looks at the source again.
    source.unlink()
    assert asyncio.run(cache.fetch(str(source), IMAGE_SUM)) == path
    assert asyncio.run(ImageCache(base).fetch(str(source), IMAGE_SUM)) == path


def test_http_source_fetches_once(base: Path, server: Server) -> None:
    server.files["/images/cirros"] = IMAGE
    cache = ImageCache(base)
    path = asyncio.run(cache.fetch(server.url("/images/cirros"), IMAGE_SUM))
    assert path.read_bytes() == IMAGE
    assert asyncio.run(cache.fetch(server.url("/images/cirros"), IMAGE_SUM)) == path
    assert server.requests == ["/images/cirros"]
    assert leftovers(base) == [IMAGE_SUM]


def test_concurrent_fetches_download_once(base: Path, server: Server) -> None:
    server.files["/img"] = IMAGE
    server.delay = 0.2  # keep the first download in flight while the others arrive
    cache = ImageCache(base)

    async def main() -> list[Path]:
        return await asyncio.gather(
            *(cache.fetch(server.url("/img"), IMAGE_SUM) for _ in range(10))
        )

    paths = asyncio.run(main())
    assert server.requests == ["/img"]
    assert set(paths) == {base / IMAGE_SUM}
    assert cache._locks == {}  # per-checksum locks don't accumulate


def test_two_caches_sharing_base_dir_download_once(base: Path, server: Server) -> None:
    """Separate instances share no asyncio lock, so only the flock keeps this to one download,
    exactly as between two processes."""
    server.files["/img"] = IMAGE
    server.delay = 0.2
    caches = [ImageCache(base), ImageCache(base)]

    async def main() -> list[Path]:
        return await asyncio.gather(*(c.fetch(server.url("/img"), IMAGE_SUM) for c in caches))

    assert asyncio.run(main()) == [base / IMAGE_SUM] * 2
    assert server.requests == ["/img"]


def test_checksum_mismatch(base: Path, source: Path, server: Server) -> None:
    server.files["/img"] = IMAGE
    cache = ImageCache(base)
    for src in (str(source), server.url("/img")):
        with pytest.raises(ChecksumMismatch) as exc:
            asyncio.run(cache.fetch(src, OTHER_SUM))
        msg = str(exc.value)
        # The tenant learns nothing of the bytes read: not their sha256, not their size.
        assert OTHER_SUM in msg and src in msg
        assert IMAGE_SUM not in msg and str(len(IMAGE)) not in msg
        assert (exc.value.expected, exc.value.actual) == (OTHER_SUM, IMAGE_SUM)
        assert isinstance(exc.value, ImageError)
        assert leftovers(base) == []
    assert cache.cached_path(OTHER_SUM) is None


def test_http_404(base: Path, server: Server) -> None:
    with pytest.raises(ImageFetchError, match="HTTP 404"):
        asyncio.run(ImageCache(base).fetch(server.url("/missing"), IMAGE_SUM))
    assert leftovers(base) == []


def test_connection_refused(base: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ImageFetchError, match="failed"):
        asyncio.run(ImageCache(base).fetch(f"http://127.0.0.1:{port}/img", IMAGE_SUM))
    assert leftovers(base) == []


def test_missing_file_and_bad_source(base: Path, tmp_path: Path) -> None:
    cache = ImageCache(base)
    with pytest.raises(ImageFetchError, match="No such file"):
        asyncio.run(cache.fetch(str(tmp_path / "nope.qcow2"), IMAGE_SUM))
    with pytest.raises(ImageFetchError, match="unsupported"):
        asyncio.run(cache.fetch("ftp://example.com/img", IMAGE_SUM))
    assert leftovers(base) == []


@pytest.mark.parametrize("checksum", ["../../etc/passwd", IMAGE_SUM.upper(), IMAGE_SUM[:-1]])
def test_checksum_must_be_sha256_hex(base: Path, source: Path, checksum: str) -> None:
    cache = ImageCache(base)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        asyncio.run(cache.fetch(str(source), checksum))
    with pytest.raises(ValueError):
        cache.cached_path(checksum)


def test_read_timeout_removes_partial_file(base: Path, server: Server) -> None:
    cache = ImageCache(base, read_timeout=0.5)
    with pytest.raises(ImageFetchError, match="timed out"):
        asyncio.run(cache.fetch(server.url("/stall"), IMAGE_SUM))
    assert leftovers(base) == []


def partial_bytes(base: Path) -> int:
    return sum(p.stat().st_size for p in base.glob("*.part-*"))


def test_cancellation_removes_partial_file(base: Path, server: Server, source: Path) -> None:
    cache = ImageCache(base)

    async def main() -> None:
        task = asyncio.create_task(cache.fetch(server.url("/stall"), IMAGE_SUM))
        deadline = time.monotonic() + 10
        while not partial_bytes(base):
            assert time.monotonic() < deadline, "no partial download appeared"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert leftovers(base) == []
    # Both locks were released: a later fetch of the same checksum isn't stuck behind them.
    path = asyncio.run(asyncio.wait_for(cache.fetch(str(source), IMAGE_SUM), 5))
    assert path.read_bytes() == IMAGE


@pytest.mark.timeout(30)  # a leaked lock hangs rather than fails
def test_cancelled_while_waiting_for_another_process(base: Path, source: Path) -> None:
    """The flock thread can't be interrupted; the lock it takes after the cancel is let go."""
    base.mkdir()
    cache = ImageCache(base)

    async def main() -> Path:
        with (base / f"{IMAGE_SUM}.lock").open("w") as other:
            fcntl.flock(other, fcntl.LOCK_EX)
            task = asyncio.create_task(cache.fetch(str(source), IMAGE_SUM))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return await asyncio.wait_for(cache.fetch(str(source), IMAGE_SUM), 5)

    assert asyncio.run(main()).read_bytes() == IMAGE


def test_virtual_size(base: Path, tmp_path: Path) -> None:
    disk = tmp_path / "x.qcow2"
    subprocess.run([find_tool("qemu-img"), "create", "-f", "qcow2", str(disk), "1G"], check=True)
    checksum = hashlib.sha256(disk.read_bytes()).hexdigest()
    cache = ImageCache(base)

    async def main() -> tuple[int, int]:
        path = await cache.fetch(str(disk), checksum)
        return await cache.virtual_size(path), await cache.virtual_size(path, "qcow2")

    assert asyncio.run(main()) == (1 << 30, 1 << 30)


def test_virtual_size_of_wrong_format_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tmp_path / "raw.img"
    raw.write_bytes(b"\0" * 4096)
    cache = ImageCache(tmp_path / "_base")
    assert asyncio.run(cache.virtual_size(raw)) == 4096
    monkeypatch.chdir(tmp_path)
    assert asyncio.run(cache.virtual_size(Path("raw.img"), "raw")) == 4096
    with pytest.raises(ImageError, match="qemu-img info"):
        asyncio.run(cache.virtual_size(raw, "qcow2"))


def test_remove_unused(base: Path, tmp_path: Path) -> None:
    cache = ImageCache(base)
    assert cache.remove_unused(set()) == []  # base_dir doesn't exist yet
    images = {}
    for i in range(3):
        src = tmp_path / f"img{i}"
        src.write_bytes(b"image %d" % i)
        images[i] = hashlib.sha256(src.read_bytes()).hexdigest()
        asyncio.run(cache.fetch(str(src), images[i]))
    stale_part = base / f"{images[0]}.part-dead"  # a download whose process died
    stale_part.write_bytes(b"half")
    (base / "README").write_text("not ours")

    # A fetch of image 2 is in progress elsewhere: its lock is held, so it is left alone.
    with (base / f"{images[2]}.lock").open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        removed = cache.remove_unused({images[0]})

    assert sorted(r.path for r in removed) == sorted(
        [stale_part, base / images[1], base / f"{images[1]}.lock"]
    )
    assert {r.path: r.size for r in removed}[base / images[1]] == len(b"image 1")
    assert sorted(p.name for p in base.iterdir()) == sorted(
        ["README", images[0], f"{images[0]}.lock", images[2], f"{images[2]}.lock"]
    )
    assert cache.cached_path(images[1]) is None

    # Once the lock is free image 2 goes too, and a removed image can be fetched again.
    assert [r.path for r in cache.remove_unused({images[0]})] == [
        base / images[2],
        base / f"{images[2]}.lock",
    ]
    src = tmp_path / "img1"
    assert asyncio.run(cache.fetch(str(src), images[1])) == base / images[1]


def test_remove_unused_waits_for_min_age_and_touch_resets_it(base: Path, tmp_path: Path) -> None:
    cache = ImageCache(base)
    sums = []
    for i in range(2):
        src = tmp_path / f"aged{i}"
        src.write_bytes(b"aged %d" % i)
        sums.append(hashlib.sha256(src.read_bytes()).hexdigest())
        asyncio.run(cache.fetch(str(src), sums[-1]))
    assert cache.remove_unused(set(), min_age=3600) == []  # both fetched just now
    hour_ago = time.time() - 3600
    for checksum in sums:
        os.utime(base / checksum, (hour_ago, hour_ago))
    cache.touch({sums[0]})  # found in use by this audit: its age starts again
    removed = cache.remove_unused(set(), min_age=1800)
    assert [r.path for r in removed] == [base / sums[1], base / f"{sums[1]}.lock"]
    assert cache.cached_path(sums[0]) is not None
