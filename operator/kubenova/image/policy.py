"""Where Images may come from: glance's `import_filtering_opts` for kubenova.

A tenant names an image source; the operator reads it. Without a policy that is a confused
deputy: a host path reads the operator's files (`/etc/shadow`, service-account tokens), a URL
reaches what only the operator can reach (loopback, the cloud's metadata service, the cluster's
services). The policy is checked twice, by the admission webhook at `kubectl apply` and by the
importer before it reads a byte (the webhook can be bypassed); URLs are checked again on every
address they resolve to when the connection is made, and on every redirect
(`kubenova.image.fetch`).

Each refusal names the rule and its configuration key, so an administrator knows what to allow.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from yarl import URL

from kubenova.image.errors import ImportRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
KEY = "imageImport"
"""The configuration section, as refusals name it."""

_GUEST_DIR = Path(__file__).resolve().parents[3] / ".bin" / "guest"


def guest_image_dirs(guest_dir: Path = _GUEST_DIR) -> list[Path]:
    """The directory `make setup` puts the guest images in and the cache directories its
    entries are symlinks to (sources are resolved before the check); none if it is absent.
    Read again whenever the directory changed (an entry made, removed or replaced: a symlink
    is replaced, never changed in place, so the directory's mtime tells), else remembered:
    it is checked for every image a build fetches."""
    try:
        stamp = guest_dir.stat().st_mtime_ns
    except OSError:
        return []
    known = _guest_dirs_read.get(guest_dir)
    if known is not None and known[0] == stamp:
        return list(known[1])
    if not guest_dir.is_dir():
        return []
    dirs = [guest_dir.resolve()]
    for entry in sorted(guest_dir.iterdir()):
        target = entry.resolve().parent
        if target not in dirs:
            dirs.append(target)
    _guest_dirs_read[guest_dir] = (stamp, tuple(dirs))
    return dirs


_guest_dirs_read: dict[Path, tuple[int, tuple[Path, ...]]] = {}
"""guest_image_dirs' last reading of each directory, with the directory's mtime then."""


class ImageImportPolicy(BaseModel):
    """The `imageImport` settings (keys as in refusals: imageImport.allowedPathPrefixes...)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    allowed_path_prefixes: list[Path] = Field(default_factory=list)
    """Host directories file sources may be read from (after resolving symlinks and `..`)."""
    allow_guest_dir: bool = True
    """Also the directory `make setup` builds the guests in (.bin/guest of a source checkout)
    and the cache directories its entries are symlinks to, read again at every check (a new
    `make setup` may point them elsewhere). Nothing where there is no such directory (an
    installed operator, a container)."""
    allowed_schemes: list[str] = Field(default_factory=lambda: ["http", "https"])
    allowed_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(
        default_factory=lambda: [80, 443]
    )
    """Ports URLs may name (glance's default: 80, 443); empty: any port."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names (or literal addresses) URLs may name; empty: any host."""
    disallowed_hosts: list[str] = Field(default_factory=list)
    allowed_networks: list[IPNetwork] = Field(default_factory=list)
    """Non-public addresses (loopback, link-local, private, ULA, shared, ...) that are allowed
    anyway, e.g. 127.0.0.1/32 for a test server or an internal image mirror's subnet."""
    blocked_networks: list[IPNetwork] = Field(default_factory=list)
    """Public addresses refused as well: a cluster's pod and service ranges when they are
    public (private ones are refused already); wins over allowedNetworks."""
    max_redirects: int = Field(default=5, ge=0, le=20)

    def path_prefixes(self) -> list[Path]:
        """The directories host paths may resolve into, as of now."""
        guest = guest_image_dirs() if self.allow_guest_dir else []
        return [
            *self.allowed_path_prefixes,
            *(d for d in guest if d not in self.allowed_path_prefixes),
        ]

    # -- sources -------------------------------------------------------------------------
    def check_source(self, source: str) -> None:
        """Raise ImportRefused unless `source` may be imported. Resolves host paths (a few
        stat calls: run it in a thread from async code); URLs are checked as written, their
        names' addresses when they are resolved (check_address)."""
        if source.startswith("/"):
            self.check_path(source)
        else:
            self.check_url(source)

    def check_path(self, source: str, resolved: str | None = None) -> None:
        """`resolved`: where the source really is (an opened file's /proc/self/fd link)."""
        real = Path(resolved if resolved is not None else os.path.realpath(source))
        prefixes = self.path_prefixes()
        for prefix in prefixes:
            if real.is_relative_to(os.path.realpath(prefix)):
                return
        allowed = ", ".join(str(p) for p in prefixes) or "none configured"
        raise ImportRefused(
            source,
            "host paths must resolve (symlinks and .. followed) to a file under one of "
            f"[{allowed}]",
            "allowedPathPrefixes",
        )

    def check_url(self, source: str, url: URL | None = None) -> None:
        """`url`: the URL actually requested (a redirect's target) when not `source`."""
        target = url if url is not None else _parse(source)
        via = "" if url is None else f"redirect to {target} refused: "
        scheme = (target.scheme or "").lower()
        if scheme not in self.allowed_schemes:
            raise ImportRefused(
                source,
                f"{via}scheme {scheme or '(none)'} is not one of {self.allowed_schemes}",
                "allowedSchemes",
            )
        host = (target.host or "").lower().rstrip(".")
        if not host:
            raise ImportRefused(source, f"{via}the URL names no host", "allowedHosts")
        if self.allowed_ports and target.port not in self.allowed_ports:
            raise ImportRefused(
                source,
                f"{via}port {target.port} is not one of {self.allowed_ports}",
                "allowedPorts",
            )
        if host in {h.lower() for h in self.disallowed_hosts}:
            raise ImportRefused(source, f"{via}host {host} is disallowed", "disallowedHosts")
        if self.allowed_hosts and host not in {h.lower() for h in self.allowed_hosts}:
            raise ImportRefused(
                source,
                f"{via}host {host} is not one of {self.allowed_hosts}",
                "allowedHosts",
            )
        literal = literal_address(host)
        if literal is not None:
            self.check_address(source, literal, via=via)
        elif host == "localhost" or host.endswith(".localhost"):
            self.check_address(source, ipaddress.ip_address("127.0.0.1"), host, via)

    def check_address(
        self, source: str, address: IPAddress | str, name: str | None = None, via: str = ""
    ) -> None:
        """Refuse a connection to `address` (what `name` resolved to, when it is a name)."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        what = f"host {name} resolves to {ip}" if name else f"address {ip}"
        if any(ip in net for net in self.blocked_networks):
            raise ImportRefused(
                source, f"{via}{what}, which is in a blocked network", "blockedNetworks"
            )
        kind = non_public_kind(ip)
        if kind is not None and not any(ip in net for net in self.allowed_networks):
            raise ImportRefused(
                source,
                f"{via}{what}, {_ARTICLE.get(kind, 'a')} {kind} address; "
                "non-public addresses need an explicit allowance",
                "allowedNetworks",
            )


_ARTICLE = {"unspecified": "the"}


def non_public_kind(ip: IPAddress) -> str | None:
    """What kind of non-public address `ip` is (None: a public one)."""
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("fc00::/7"):
        return "unique-local (ULA)"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "shared (carrier-grade NAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def _parse(source: str) -> URL:
    try:
        return URL(source)
    except ValueError as err:
        raise ImportRefused(source, f"not a valid URL ({err})", "allowedSchemes") from None


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def load_policy(path: str | None = None, **overrides: Any) -> ImageImportPolicy:
    """The policy from a YAML file of `imageImport` keys (or the defaults), with the keys given
    on the command line (snake_case, None: not given) replacing the file's."""
    import yaml

    data = {}
    if path:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        data = data.get(KEY, data)
    data.update({to_camel(k): v for k, v in overrides.items() if v is not None})
    return ImageImportPolicy.model_validate(data)
