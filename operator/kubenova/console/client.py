"""`kubenova console NAME [--follow]`: the serial console, from the operator's endpoint
(console/server.py), as the user of the kubeconfig (the way kubectl finds it).

The user proves who they are with the kubeconfig's client certificate (TLS client
authentication: nothing an impostor server could replay) or its bearer token. A token is sent
only to a server verified with the operator's console CA (`--console-ca`,
`$KUBENOVA_CONSOLE_CA`, or `.kubenova/state/console/ca.crt` when it exists): without one, the
server is not verified and only a client certificate is offered.
"""

from __future__ import annotations

import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kubenova.console.server import LENGTH_HEADER

DEFAULT_URL = "https://127.0.0.1:9465"
#: the CA of an operator started with the default --state-dir in this directory
DEFAULT_CA = Path(".kubenova/state/console/ca.crt")
POLL_SECONDS = 1.0


class ConsoleError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Credentials:
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None


def credentials(kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    """The kubeconfig's user, resolved as the Kubernetes client does (files, data, exec)."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=cfg)
    bearer = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    token = bearer.removeprefix("Bearer ").strip() if bearer else None
    return Credentials(cfg.cert_file or None, cfg.key_file or None, token)


def console_ca(given: str | None) -> Path | None:
    if given:
        return Path(given)
    if os.environ.get("KUBENOVA_CONSOLE_CA"):
        return Path(os.environ["KUBENOVA_CONSOLE_CA"])
    return DEFAULT_CA if DEFAULT_CA.is_file() else None


class ConsoleClient:
    def __init__(self, url: str, ca: Path | None, creds: Credentials) -> None:
        self.base = url.rstrip("/")
        if ca is not None:
            self.context = ssl.create_default_context(cafile=str(ca))
        else:
            self.context = ssl.create_default_context()
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        self.headers: dict[str, str] = {}
        if creds.cert_file and creds.key_file:
            self.context.load_cert_chain(creds.cert_file, creds.key_file)
        elif creds.token and ca is not None:
            self.headers["Authorization"] = f"Bearer {creds.token}"
        elif creds.token:
            raise ConsoleError(
                "the kubeconfig's user has a bearer token: give the operator's console CA "
                "(--console-ca or $KUBENOVA_CONSOLE_CA, <state-dir>/console/ca.crt) so it is "
                "sent only to the real operator"
            )
        else:
            raise ConsoleError("the kubeconfig's user has neither a client certificate nor a token")

    def read(self, namespace: str, name: str, offset: int = 0) -> tuple[str, int]:
        """The console from `offset` on, and the offset to ask for next."""
        path = "/instances/{}/{}/console".format(
            urllib.parse.quote(namespace, safe=""), urllib.parse.quote(name, safe="")
        )
        request = urllib.request.Request(f"{self.base}{path}?offset={offset}", headers=self.headers)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                text = response.read().decode("utf-8", errors="replace")
                length = int(response.headers.get(LENGTH_HEADER) or offset + len(text))
        except urllib.error.HTTPError as err:
            body = err.read().decode("utf-8", errors="replace").strip()
            raise ConsoleError(f"{err.code}: {body or err.reason}", err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ConsoleError(f"cannot reach the console endpoint {self.base}: {reason}") from None
        return text, length


def run(client: ConsoleClient, namespace: str, name: str, follow: bool, out=sys.stdout) -> int:
    text, offset = client.read(namespace, name)
    out.write(text)
    out.flush()
    while follow:
        time.sleep(POLL_SECONDS)
        try:
            text, new_offset = client.read(namespace, name, offset)
        except ConsoleError as err:
            if err.status in (401, 403, 404):
                print(f"kubenova console: {err}", file=sys.stderr)
                return 0 if err.status == 404 else 1
            continue  # the operator is restarting: try again
        out.write(text)  # a new log (the VM re-created) comes from its start
        offset = new_offset
        out.flush()
    return 0
