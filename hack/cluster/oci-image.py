#!/usr/bin/env python3
"""Write a one-layer OCI image archive (an oci-layout tar) from local files, with no registry and
no image builder: what `docker build` FROM scratch with a few COPY lines would make.

    oci-image.py OUT.tar NAME:TAG --entrypoint /pause --add /tmp/pause:/pause ...

`ctr -n k8s.io images import OUT.tar` imports it under NAME:TAG (the index carries the name in
both annotations containerd reads). The archive is byte-for-byte reproducible: fixed mtimes,
owners and order.
"""

import argparse
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path


def _tar_bytes(members: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name, data, mode in sorted(members):
            parts = name.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(name.strip("/"))
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _blob(blobs: dict[str, bytes], data: bytes, media_type: str, **extra) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}


def build(out: Path, ref: str, entrypoint: list[str], adds: list[str]) -> None:
    members = []
    for spec in adds:
        src, _, dest = spec.partition(":")
        path = Path(src)
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        members.append((dest or "/" + path.name, path.read_bytes(), mode))
    layer = _tar_bytes(members)
    blobs: dict[str, bytes] = {}
    gz = gzip.compress(layer, mtime=0)
    layer_desc = _blob(blobs, gz, "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    config_desc = _blob(
        blobs,
        json.dumps(config, sort_keys=True).encode(),
        "application/vnd.oci.image.config.v1+json",
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    }
    tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
    manifest_desc = _blob(
        blobs,
        json.dumps(manifest, sort_keys=True).encode(),
        "application/vnd.oci.image.manifest.v1+json",
        platform={"architecture": "amd64", "os": "linux"},
        annotations={"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
    )
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    files = [
        ("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), 0o644),
        ("index.json", json.dumps(index, sort_keys=True).encode(), 0o644),
    ]
    files += [(f"blobs/sha256/{d.split(':', 1)[1]}", data, 0o644) for d, data in blobs.items()]
    out.write_bytes(_tar_bytes(files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("ref", help="the image's name, e.g. kubenova.local/pause:1")
    parser.add_argument("--entrypoint", action="append", required=True)
    parser.add_argument("--add", action="append", default=[], metavar="SRC[:DEST]")
    args = parser.parse_args()
    build(args.out, args.ref, args.entrypoint, args.add)


if __name__ == "__main__":
    main()
