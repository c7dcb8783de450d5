"""The image import policy: host paths resolved before the check, URLs' schemes, ports, hosts
and addresses; the policed fetch against real files and a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from yarl import URL

from kubenova.image import ChecksumMismatch, ImageCache, ImageImportPolicy, ImportRefused
from kubenova.image.http import PolicyResolver
from kubenova.image.policy import guest_image_dirs, load_policy, non_public_kind
from tests.redirecting_server import RedirectingServer, serving

DATA = b"a small image" * 1000
SUM = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    (path / "disk.raw").write_bytes(DATA)
    return path


def refusal(policy: ImageImportPolicy, source: str) -> ImportRefused:
    with pytest.raises(ImportRefused) as exc:
        policy.check_source(source)
    return exc.value


def test_paths_must_resolve_under_an_allowed_prefix(allowed: Path, tmp_path: Path) -> None:
    policy = ImageImportPolicy(allowed_path_prefixes=[allowed], allow_guest_dir=False)
    policy.check_source(str(allowed / "disk.raw"))
    policy.check_source(str(allowed / "missing.raw"))  # existence is the importer's business
    (tmp_path / "outside").write_bytes(b"secret")
    (allowed / "escape").symlink_to(tmp_path / "outside")
    (tmp_path / "images-evil").mkdir()  # a sibling sharing the prefix's spelling
    for source in (
        "/etc/shadow",
        f"{allowed}/../outside",
        f"{allowed}/escape",
        f"{tmp_path}/images-evil/disk.raw",
    ):
        err = refusal(policy, source)
        assert str(err) == (
            f"image source {source} refused by image import policy: host paths must resolve "
            f"(symlinks and .. followed) to a file under one of [{allowed}] "
            "(imageImport.allowedPathPrefixes)"
        )
    # A symlink into the allowed directory is fine: what counts is where it leads.
    (tmp_path / "inward").symlink_to(allowed / "disk.raw")
    policy.check_source(str(tmp_path / "inward"))


def test_no_prefixes_allows_no_paths() -> None:
    err = refusal(
        ImageImportPolicy(allowed_path_prefixes=[], allow_guest_dir=False), "/srv/disk.raw"
    )
    assert "[none configured]" in str(err)


def test_guest_dirs_include_the_resolved_cache(tmp_path: Path) -> None:
    guest, cache = tmp_path / "guest", tmp_path / "cache" / "guest-1"
    guest.mkdir()
    cache.mkdir(parents=True)
    (cache / "busybox.qcow2").write_bytes(b"x")
    (guest / "busybox.qcow2").symlink_to(cache / "busybox.qcow2")
    assert guest_image_dirs(guest) == [guest, cache]
    assert guest_image_dirs(tmp_path / "absent") == []


@pytest.mark.parametrize(
    ("source", "key", "reason"),
    [
        ("ftp://example.com/a.img", "allowedSchemes", "scheme ftp is not one of"),
        ("http://example.com:8080/a.img", "allowedPorts", "port 8080 is not one of [80, 443]"),
        ("http://127.0.0.1/a.img", "allowedNetworks", "address 127.0.0.1, a loopback address"),
        ("http://[::1]/a.img", "allowedNetworks", "address ::1, a loopback address"),
        ("http://localhost/a.img", "allowedNetworks", "host localhost resolves to 127.0.0.1"),
        ("http://169.254.169.254/latest", "allowedNetworks", "a link-local address"),
        ("http://10.0.0.1/a.img", "allowedNetworks", "address 10.0.0.1, a private address"),
        ("http://192.168.1.1/a.img", "allowedNetworks", "a private address"),
        ("http://172.16.0.1/a.img", "allowedNetworks", "a private address"),
        ("http://[fd00::1]/a.img", "allowedNetworks", "a unique-local (ULA) address"),
        ("http://[::ffff:127.0.0.1]/a.img", "allowedNetworks", "a loopback address"),
        ("http://100.64.0.1/a.img", "allowedNetworks", "a shared (carrier-grade NAT) address"),
        ("http://0.0.0.0/a.img", "allowedNetworks", "the unspecified address"),
    ],
)
def test_urls_refused(source: str, key: str, reason: str) -> None:
    err = refusal(ImageImportPolicy(), source)
    message = str(err)
    assert message.startswith(f"image source {source} refused by image import policy: ")
    assert message.endswith(f"(imageImport.{key})")
    assert reason in message


def test_url_allowances() -> None:
    policy = ImageImportPolicy(
        allowed_networks=[ipaddress.ip_network("127.0.0.1/32")], allowed_ports=[8080]
    )
    policy.check_source("http://127.0.0.1:8080/a.img")
    assert refusal(policy, "http://127.0.0.2:8080/a.img").key == "allowedNetworks"
    policy.check_source("https://images.example.com:8080/a.img")  # names: checked on resolve
    hosts = ImageImportPolicy(allowed_hosts=["images.example.com"])
    hosts.check_source("https://images.example.com/a.img")
    assert refusal(hosts, "https://other.example.com/a.img").key == "allowedHosts"
    blocked = ImageImportPolicy(blocked_networks=[ipaddress.ip_network("203.0.113.0/24")])
    assert refusal(blocked, "http://203.0.113.7/a.img").key == "blockedNetworks"
    assert non_public_kind(ipaddress.ip_address("8.8.8.8")) is None


def test_load_policy_flags_replace_file_keys(tmp_path: Path) -> None:
    config = tmp_path / "import.yaml"
    config.write_text(
        "imageImport:\n  allowedPathPrefixes: [/srv/images]\n  allowedPorts: [8443]\n"
    )
    policy = load_policy(str(config), allowed_ports=[9000], allowed_networks=None)
    assert policy.allowed_path_prefixes == [Path("/srv/images")]
    assert policy.allowed_ports == [9000]


def test_resolver_refuses_a_name_that_resolves_to_loopback() -> None:
    policy = ImageImportPolicy()

    async def resolve() -> None:
        resolver = PolicyResolver(policy, "http://localhost/a.img")
        try:
            await resolver.resolve("localhost", 80, socket.AF_INET)
        finally:
            await resolver.close()

    with pytest.raises(ImportRefused, match=r"host localhost resolves to 127\.0\.0\.1"):
        asyncio.run(resolve())


# -- the policed fetch -------------------------------------------------------------------------
@pytest.fixture
def redirector() -> Iterator[RedirectingServer]:
    with serving(DATA) as srv:
        yield srv


def loopback_policy(port: int) -> ImageImportPolicy:
    return ImageImportPolicy(
        allowed_path_prefixes=[],
        allow_guest_dir=False,
        allowed_networks=[ipaddress.ip_network("127.0.0.1/32")],
        allowed_ports=[port],
    )


def test_fetch_checks_the_policy_even_when_cached(tmp_path: Path, allowed: Path) -> None:
    base = tmp_path / "_base"
    open_cache = ImageCache(base)
    asyncio.run(open_cache.fetch(str(allowed / "disk.raw"), SUM))
    strict = ImageCache(
        base, policy=ImageImportPolicy(allowed_path_prefixes=[allowed], allow_guest_dir=False)
    )
    assert asyncio.run(strict.fetch(str(allowed / "disk.raw"), SUM)) == base / SUM
    # Same checksum, a forbidden source: refused, though the bytes are in the cache.
    with pytest.raises(ImportRefused):
        asyncio.run(strict.fetch("/etc/hostname", SUM))


def test_fetch_refuses_a_file_that_is_not_regular(tmp_path: Path, allowed: Path) -> None:
    os.mkfifo(allowed / "fifo")
    cache = ImageCache(
        tmp_path / "_base",
        policy=ImageImportPolicy(allowed_path_prefixes=[allowed], allow_guest_dir=False),
    )
    with pytest.raises(ImportRefused, match="regular files"):
        asyncio.run(cache.fetch(str(allowed / "fifo"), SUM))


def test_fetch_over_an_allowed_loopback_url(tmp_path: Path, redirector: RedirectingServer) -> None:
    cache = ImageCache(tmp_path / "_base", policy=loopback_policy(redirector.port))
    seen: list[int] = []
    path = asyncio.run(cache.fetch(redirector.url("/img"), SUM, progress=seen.append))
    assert path.read_bytes() == DATA
    assert seen and seen[-1] == len(DATA)


def test_an_allowed_redirect_is_followed(tmp_path: Path, redirector: RedirectingServer) -> None:
    cache = ImageCache(tmp_path / "_base", policy=loopback_policy(redirector.port))
    path = asyncio.run(cache.fetch(redirector.url(f"/to?{redirector.url('/img')}"), SUM))
    assert path.read_bytes() == DATA
    assert redirector.requests == [f"/to?{redirector.url('/img')}", "/img"]


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2:{port}/img",
        "file:///etc/shadow",
    ],
)
def test_a_redirect_to_a_forbidden_address_is_refused(
    tmp_path: Path, redirector: RedirectingServer, target: str
) -> None:
    target = target.format(port=redirector.port)
    cache = ImageCache(tmp_path / "_base", policy=loopback_policy(redirector.port))
    source = redirector.url(f"/to?{target}")
    with pytest.raises(ImportRefused) as exc:
        asyncio.run(cache.fetch(source, SUM))
    assert str(exc.value).startswith(
        f"image source {source} refused by image import policy: redirect to {URL(target)} refused: "
    )
    assert redirector.requests == [f"/to?{target}"]  # nothing requested from the target
    assert not list((tmp_path / "_base").glob(f"{SUM}*[!k]"))  # no image, no part file


def test_a_name_resolving_to_loopback_is_refused_at_connect(
    tmp_path: Path, redirector: RedirectingServer
) -> None:
    """A name the URL check cannot judge (it is not localhost): its addresses are checked when
    the connection is made, and the loopback one refused though the port is allowed."""
    name = socket.gethostname()
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo(name, None)}
    except OSError:
        pytest.skip(f"{name} does not resolve")
    if not any(ipaddress.ip_address(a).is_loopback for a in addresses) or name == "localhost":
        pytest.skip(f"{name} does not resolve to loopback here")
    policy = ImageImportPolicy(allowed_ports=[redirector.port])
    cache = ImageCache(tmp_path / "_base", policy=policy)
    with pytest.raises(ImportRefused, match=f"host {name} resolves to 127"):
        asyncio.run(cache.fetch(f"http://{name}:{redirector.port}/img", SUM))
    assert redirector.requests == []


def test_a_cached_image_counts_only_for_sources_it_was_verified_from(
    tmp_path: Path, allowed: Path
) -> None:
    """Knowing another image's sha256 is not enough to get its bytes: a new source naming a
    cached checksum is read and verified itself."""
    cache = ImageCache(
        tmp_path / "_base",
        policy=ImageImportPolicy(allowed_path_prefixes=[allowed], allow_guest_dir=False),
    )
    asyncio.run(cache.fetch(str(allowed / "disk.raw"), SUM))
    (allowed / "other.raw").write_bytes(b"not those bytes")
    with pytest.raises(ChecksumMismatch):
        asyncio.run(cache.fetch(str(allowed / "other.raw"), SUM))
    (allowed / "copy.raw").write_bytes(DATA)
    assert asyncio.run(cache.fetch(str(allowed / "copy.raw"), SUM)) == tmp_path / "_base" / SUM
    (allowed / "copy.raw").unlink()  # verified once: served from the cache from now on
    assert asyncio.run(cache.fetch(str(allowed / "copy.raw"), SUM)) == tmp_path / "_base" / SUM
    removed = cache.remove_unused(set())
    assert sorted(r.path.name for r in removed) == sorted([SUM, f"{SUM}.lock", f"{SUM}.sources"])


def test_guest_dirs_are_read_again_once_an_entry_is_replaced(tmp_path: Path) -> None:
    guest, old, new = tmp_path / "guest", tmp_path / "cache-1", tmp_path / "cache-2"
    for directory in (guest, old, new):
        directory.mkdir()
    (old / "busybox.qcow2").write_bytes(b"x")
    (new / "busybox.qcow2").write_bytes(b"y")
    (guest / "busybox.qcow2").symlink_to(old / "busybox.qcow2")
    assert guest_image_dirs(guest) == [guest, old]
    assert guest_image_dirs(guest) == [guest, old]  # remembered
    # as `make setup` points an entry elsewhere: a new link renamed over the old one
    (guest / "busybox.qcow2.new").symlink_to(new / "busybox.qcow2")
    (guest / "busybox.qcow2.new").rename(guest / "busybox.qcow2")
    assert guest_image_dirs(guest) == [guest, new]
