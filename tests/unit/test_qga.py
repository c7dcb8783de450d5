"""The guest agent client against a fake agent on a unix socket: sync, stale data, silence."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from kubenova.virt.qemu import qga

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(path: Path, handler: Handler, client: Callable[[], Awaitable[object]]) -> object:
    """Run `client()` while a fake agent serves `handler` on `path`."""
    server = await asyncio.start_unix_server(handler, path=str(path))
    try:
        return await client()
    finally:
        server.close()
        await server.wait_closed()


def request(line: bytes) -> dict:
    return json.loads(line.lstrip(b"\xff"))


def test_ping_syncs_past_stale_data_and_returns_the_version(tmp_path):
    received: list[bytes] = []

    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sync = await reader.readline()
        received.append(sync)
        token = request(sync)["arguments"]["id"]
        # Before the sentinel: the parse error for the client's 0xFF and a reply with the very id
        # the client is waiting for; a client that did not wait for the 0xFF would take it.
        writer.write(b'{"error": {"class": "GenericError", "desc": "Invalid JSON syntax"}}\n')
        writer.write(b'{"return": %d}\n' % token)
        writer.write(b'{"return": {"version": "half a')  # torn, no newline
        writer.write(b"\xff")
        writer.write(b'{"return": %d}\n' % (token + 1))  # another client's sync
        writer.write(b"not json at all\n\xfe\xfd\n")
        writer.write(b'{"return": %d}\n' % token)
        await writer.drain()
        info = await reader.readline()
        received.append(info)
        reply = {"return": {"version": "7.2.0", "supported_commands": []}}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        await reader.read()

    path = tmp_path / qga.SOCKET
    version = asyncio.run(serve(path, agent, lambda: qga.ping(path, timeout=5)))

    assert version == "7.2.0"
    assert received[0].startswith(b"\xff{")
    sync = request(received[0])
    assert sync["execute"] == "guest-sync-delimited"
    assert type(sync["arguments"]["id"]) is int
    assert request(received[1]) == {"execute": "guest-info"}


def test_ping_gives_up_on_a_silent_socket_within_the_timeout(tmp_path):
    # qemu's own end of the chardev: it accepts while no agent runs in the guest.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    path = tmp_path / qga.SOCKET

    async def timed() -> tuple[object, float]:
        start = time.monotonic()
        result = await qga.ping(path, timeout=0.3)
        return result, time.monotonic() - start

    result, elapsed = asyncio.run(serve(path, silent, timed))
    assert result is None
    assert 0.25 <= elapsed < 2


def test_ping_returns_none_when_the_agent_hangs_up(tmp_path):
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"\xff")
        writer.close()

    path = tmp_path / qga.SOCKET
    assert asyncio.run(serve(path, hang_up, lambda: qga.ping(path, timeout=5))) is None


def test_ping_returns_none_without_a_socket(tmp_path):
    assert asyncio.run(qga.ping(tmp_path / qga.SOCKET, timeout=1)) is None
    assert asyncio.run(qga.ping(tmp_path / "no" / "such" / qga.SOCKET, timeout=1)) is None


def test_ping_returns_none_when_refused(tmp_path):
    path = tmp_path / qga.SOCKET
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))  # a socket file nobody listens on: what a dead qemu leaves behind
    sock.close()
    assert path.exists()
    assert asyncio.run(qga.ping(path, timeout=1)) is None


def test_ping_raises_when_guest_info_fails_after_sync(tmp_path):
    async def agent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        token = request(await reader.readline())["arguments"]["id"]
        writer.write(b'\xff{"return": %d}\n' % token)
        await reader.readline()
        writer.write(b'{"error": {"class": "CommandNotFound", "desc": "disabled"}}\n')
        await writer.drain()
        await reader.read()

    path = tmp_path / qga.SOCKET
    with pytest.raises(qga.QgaError, match="CommandNotFound"):
        asyncio.run(serve(path, agent, lambda: qga.ping(path, timeout=5)))


def test_chardev_args():
    assert qga.chardev_args(Path("/run/vm,1/qga.sock")) == [
        "-chardev",
        "socket,path=/run/vm,,1/qga.sock,server=on,wait=off,id=qga0",
        "-device",
        "virtio-serial-pci,id=qga-serial",
        "-device",
        "virtserialport,bus=qga-serial.0,chardev=qga0,name=org.qemu.guest_agent.0",
    ]
    assert qga.chardev_args(Path(qga.SOCKET))[1].startswith("socket,path=qga.sock,")
    assert qga.CHANNEL == "org.qemu.guest_agent.0"
