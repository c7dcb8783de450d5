"""A minimal QMP client: one connection per command, which is all the driver needs.

QMP speaks newline-delimited JSON: a greeting, `qmp_capabilities` to leave negotiation mode,
then commands; asynchronous events may arrive between a command and its reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

from kubenova.virt.driver import DriverError

_SUN_PATH_MAX = 107


class QmpError(DriverError):
    """QEMU refused the command, or its monitor could not be reached."""


async def _open(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return await asyncio.open_unix_connection(path)
    # Too long for sun_path: reach the socket through a descriptor of its directory.
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{fd}/{path.name}")
        except BaseException:
            sock.close()
            raise
    finally:
        os.close(fd)
    return await asyncio.open_unix_connection(sock=sock)


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message).encode() + b"\n")
    await writer.drain()


async def _reply(reader: asyncio.StreamReader) -> Any:
    while True:
        line = await reader.readline()
        if not line:
            raise QmpError("QMP connection closed before the reply")
        message = json.loads(line)
        if "error" in message:
            error = message["error"]
            raise QmpError(f"QMP: {error.get('class')}: {error.get('desc')}")
        if "return" in message:
            return message["return"]
        # an event ({"event": ...}): not the reply, keep reading


async def execute(
    path: Path, command: str, arguments: dict[str, Any] | None = None, time_limit: float = 5.0
) -> Any:
    """Run one QMP command on the monitor socket at `path` and return its result."""
    try:
        async with asyncio.timeout(time_limit):
            reader, writer = await _open(path)
            try:
                await reader.readline()  # greeting
                await _send(writer, {"execute": "qmp_capabilities"})
                await _reply(reader)
                await _send(writer, {"execute": command, "arguments": arguments or {}})
                return await _reply(reader)
            finally:
                writer.close()
    except TimeoutError:
        raise QmpError(f"QMP {command}: no reply within {time_limit:g}s") from None
    except (OSError, ValueError) as err:
        raise QmpError(f"QMP {command}: {err}") from err
