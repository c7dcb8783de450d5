"""glance-api's check on Image create: the source must be one the import policy allows.

Host paths are resolved (symlinks, `..`) on the operator's host, which is the compute host the
importer reads them on (embedded mode). A URL's host name is resolved too, so a name that points
at loopback or a private address is refused at apply; a name that does not resolve (yet) is
left to the importer, which checks every address again when it connects.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import Any

from yarl import URL

from kubenova.admission.refs import Problem
from kubenova.image.errors import ImportRefused
from kubenova.image.policy import ImageImportPolicy, literal_address

RESOLVE_TIMEOUT = 2.0


async def image_problems(spec: Mapping[str, Any], policy: ImageImportPolicy) -> list[Problem]:
    """Why an Image create must be refused (an empty list: it may be created)."""
    source = spec.get("source") or ""
    try:
        await asyncio.to_thread(policy.check_source, source)
        if not source.startswith("/"):
            await _check_resolved(source, policy)
    except ImportRefused as err:
        return [Problem(str(err), 403)]
    return []


async def _check_resolved(source: str, policy: ImageImportPolicy) -> None:
    url = URL(source)
    host = url.host or ""
    if literal_address(host) is not None:
        return  # checked as written
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            answers = await asyncio.get_running_loop().getaddrinfo(
                host, url.port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError):
        return  # unresolvable now: the importer checks where it resolves when it connects
    for *_, sockaddr in answers:
        policy.check_address(source, sockaddr[0], name=host)
