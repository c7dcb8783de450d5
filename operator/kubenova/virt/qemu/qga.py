"""A minimal QEMU guest agent (qemu-ga) client: "is the agent up?", a sign the guest OS booted.

qemu exposes the guest's virtio-serial port on a host unix socket. qemu itself accepts the
connection whether or not an agent runs in the guest, so "connected" means nothing: only a reply
does. The channel is a byte stream shared with earlier clients, so it may hold half-written or
stale replies; `guest-sync-delimited` resynchronises it: the client sends a 0xFF byte (which
resets the agent's JSON parser) and the request with a fresh id, the agent puts a 0xFF before its
reply, and every reply before the one carrying that id is stale.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

from kubenova.virt.qemu.qmp import _open

#: The agent's socket, inside the instance directory (relative to it when qemu runs there: unix
#: socket paths are limited to 107 bytes).
SOCKET = "qga.sock"
#: The virtserialport name qemu-ga looks for in the guest.
CHANNEL = "org.qemu.guest_agent.0"
#: Never valid UTF-8, so never part of a JSON reply: the agent's "sync reply follows" marker.
_SENTINEL = b"\xff"


class QgaError(Exception):
    """The agent answered the sync, then replied to `guest-info` with something unusable."""


def _opt(path: Path) -> str:
    """A path inside a qemu option value (commas doubled; command.py imports this module)."""
    return str(path).replace(",", ",,")


def chardev_args(socket_path: Path) -> list[str]:
    """The qemu argv fragment that gives the guest an agent channel served on `socket_path`."""
    return [
        "-chardev",
        f"socket,path={_opt(socket_path)},server=on,wait=off,id=qga0",
        "-device",
        "virtio-serial-pci,id=qga-serial",
        "-device",
        f"virtserialport,bus=qga-serial.0,chardev=qga0,name={CHANNEL}",
    ]


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any], prefix: bytes = b"") -> None:
    writer.write(prefix + json.dumps(message).encode() + b"\n")
    await writer.drain()


async def _skip_to_sentinel(reader: asyncio.StreamReader) -> None:
    """Discard everything up to the agent's 0xFF: it predates our sync, however long it is."""
    while True:
        try:
            await reader.readuntil(_SENTINEL)
            return
        except asyncio.LimitOverrunError as err:
            await reader.readexactly(err.consumed)


async def _message(reader: asyncio.StreamReader) -> dict[str, Any]:
    """The next JSON object on the channel; garbage lines (noise, a torn reply) are skipped."""
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # longer than the stream limit: no reply we expect is that long
            continue
        if not line:
            raise ConnectionResetError("guest agent channel closed")
        # A 0xFF inside a line resets the stream: what precedes it is stale.
        line = line.rsplit(_SENTINEL, 1)[-1]
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            return message


async def _sync(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Flush the channel: return once the agent echoed a fresh id after its sentinel."""
    token = random.randint(1, 2**31 - 1)
    request = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
    await _send(writer, request, prefix=_SENTINEL)
    await _skip_to_sentinel(reader)
    while True:
        reply = (await _message(reader)).get("return")
        if type(reply) is int and reply == token:  # not `True == 1`
            return


async def _guest_info(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    await _send(writer, {"execute": "guest-info"})
    while True:
        message = await _message(reader)
        if "error" in message:
            raise QgaError(f"guest-info failed: {message['error']}")
        if "return" in message:
            break
    info = message["return"]
    version = info.get("version") if isinstance(info, dict) else None
    if not isinstance(version, str):
        raise QgaError(f"guest-info returned no version: {info!r}")
    return version


async def ping(socket_path: Path, timeout: float = 2.0) -> str | None:  # noqa: ASYNC109
    """The guest agent's version, or None when it is not up (yet): no socket, refused, or no
    sync reply within `timeout` seconds. Raises QgaError only if it synced, then misbehaved."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _open(socket_path)
            try:
                await _sync(reader, writer)
                return await _guest_info(reader, writer)
            finally:
                writer.close()
    except (TimeoutError, OSError, EOFError):
        return None
