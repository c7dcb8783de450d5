"""The serial console endpoint: `GET /instances/<namespace>/<name>/console[?offset=N]`.

The driver that reads a console (`ComputeDriver.console_output`) lives in the operator and the
CLI is another process, so the operator serves it, and guards it the way the kubelet guards
`kubectl logs` (a node-side server holding data that RBAC governs):

- HTTPS, with a serving certificate from the operator's own CA (`<state-dir>/console/ca.crt`,
  made once and reused; `kubenova console --console-ca` checks the server with it);
- authentication: a client certificate signed by the cluster's client CA (read from
  `kube-system/extension-apiserver-authentication`, as aggregated API servers do, or given
  with `--console-client-ca`), or a bearer token the apiserver vouches for (TokenReview);
- authorization: the apiserver is asked whether that user may `get` the subresource
  `instances/console` of that instance (SubjectAccessReview), so RBAC decides, per namespace;
- bound to 127.0.0.1 by default (`--console-listen`);
- a namespace or name that is not a Kubernetes name (slashes, dots, `%`) is refused (400)
  before anything is looked up, so what is authorized is exactly what is read.

The reply is the console text from `offset` (characters) on, with `X-Console-Length` (where
the next poll starts: `kubenova console --follow`).
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client
from pydantic import TypeAdapter, ValidationError

from kubenova import GROUP
from kubenova.conductor.context import Conductor
from kubenova.kube.client import ApiException
from kubenova.models.base import ObjectName
from kubenova.pki import ensure_certificates
from kubenova.virt.driver import DriverError, InstanceNotFound

log = logging.getLogger("kubenova.console")

#: the cluster's client CA, published by kube-apiserver for extension servers
AUTH_CONFIGMAP = ("kube-system", "extension-apiserver-authentication")
SUBRESOURCE = "console"
LENGTH_HEADER = "X-Console-Length"
#: a namespace's name is a DNS-1123 label
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_OBJECT_NAME = TypeAdapter(ObjectName)


def valid_target(namespace: str, name: str) -> bool:
    """Whether the request names an instance at all: a name with a slash, dots or `%` would
    be authorized as one thing and then read as another."""
    if not NAMESPACE.match(namespace):
        return False
    try:
        _OBJECT_NAME.validate_python(name)
    except ValidationError:
        return False
    return True


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str | None = None
    extra: Mapping[str, list[str]] = field(default_factory=dict)


def user_of_certificate(peercert: Mapping[str, Any] | None) -> User | None:
    """A verified client certificate's user as Kubernetes reads it: CN the name, O the groups."""
    if not peercert:
        return None
    name, groups = None, []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName" and name is None:
                name = value
            elif key == "organizationName":
                groups.append(value)
    return User(name, tuple(groups)) if name else None


def access_review(user: User, namespace: str, name: str) -> dict[str, Any]:
    """The SubjectAccessReview: may `user` get instances/console of this instance?"""
    spec: dict[str, Any] = {
        "user": user.name,
        "groups": list(user.groups),
        "resourceAttributes": {
            "namespace": namespace,
            "verb": "get",
            "group": GROUP,
            "resource": "instances",
            "subresource": SUBRESOURCE,
            "name": name,
        },
    }
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class ConsoleServer:
    def __init__(
        self,
        conductor: Conductor,
        api: client.ApiClient,
        address: tuple[str, int],
        cert_dir: Path,
        client_ca: Path | None = None,
        publish_ca_in: str | None = None,
    ) -> None:
        """`publish_ca_in`: the namespace whose ConfigMap CA_CONFIGMAP gets the console's CA."""
        self.publish_ca_in = publish_ca_in
        self.c = conductor
        self.api = api
        self.address = address
        self.cert_dir = cert_dir
        self.client_ca = client_ca
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        host, port = self.address
        names = [n for n in (host, "localhost", "127.0.0.1") if n not in ("", "0.0.0.0", "::")]
        certs = await ensure_certificates(self.cert_dir, *names, ca_name="kubenova-console-ca")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certs.cert), str(certs.key))
        client_ca = await self._client_ca()
        if client_ca:
            context.load_verify_locations(cadata=client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL
        else:
            log.warning("console: no client CA; only bearer tokens are accepted")
        app = web.Application()
        app.router.add_get("/instances/{namespace}/{name}/console", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=context).start()
        log.info("console endpoint on https://%s:%s (CA %s)", host, port, certs.ca)
        if self.publish_ca_in:
            await self._publish_ca(certs.ca.read_text())

    async def _publish_ca(self, ca: str) -> None:
        """The CA in ConfigMap CA_CONFIGMAP (create, else replace when it differs): the CLI
        reads it through the API, the trusted path to this endpoint's certificate. Best effort:
        without it, client certificates still work."""
        from kubenova.console.forward import CA_CONFIGMAP

        core = client.CoreV1Api(self.api)
        namespace = self.publish_ca_in
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CA_CONFIGMAP, "namespace": namespace},
            "data": {"ca.crt": ca},
        }
        try:
            try:
                current = await core.read_namespaced_config_map(CA_CONFIGMAP, namespace)
            except ApiException as err:
                if err.status != 404:
                    raise
                await core.create_namespaced_config_map(namespace, body)
            else:
                if (current.data or {}).get("ca.crt") != ca:
                    body["metadata"]["resourceVersion"] = current.metadata.resource_version
                    await core.replace_namespaced_config_map(CA_CONFIGMAP, namespace, body)
        except ApiException as err:
            log.warning("console: CA not published in %s/%s (%s)", namespace, CA_CONFIGMAP, err)
            return
        log.info("console: CA published in ConfigMap %s/%s", namespace, CA_CONFIGMAP)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _client_ca(self) -> str | None:
        if self.client_ca is not None:
            return self.client_ca.read_text()
        namespace, name = AUTH_CONFIGMAP
        try:
            cm = await client.CoreV1Api(self.api).read_namespaced_config_map(name, namespace)
        except ApiException as err:
            log.warning("console: cannot read %s/%s (%s)", namespace, name, err.status)
            return None
        return (cm.data or {}).get("client-ca-file")

    # -- the request ---------------------------------------------------------------------------
    async def authenticate(self, request: web.Request) -> User | None:
        user = user_of_certificate(request.transport.get_extra_info("peercert"))
        if user is not None:
            return user
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        review = await client.AuthenticationV1Api(self.api).create_token_review(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": header.removeprefix("Bearer ").strip()},
            }
        )
        status = review.status
        if not status or not status.authenticated or not status.user:
            return None
        info = status.user
        return User(info.username, tuple(info.groups or ()), info.uid, dict(info.extra or {}))

    async def authorize(self, user: User, namespace: str, name: str) -> tuple[bool, str]:
        review = await client.AuthorizationV1Api(self.api).create_subject_access_review(
            access_review(user, namespace, name)
        )
        return bool(review.status.allowed), review.status.reason or ""

    async def handle(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        user = await self.authenticate(request)
        if user is None:
            return _text(401, "Unauthorized: present a client certificate or a bearer token")
        if not valid_target(namespace, name):
            return _text(400, "not an instance: the namespace and name must be Kubernetes names")
        allowed, reason = await self.authorize(user, namespace, name)
        if not allowed:
            return _text(
                403,
                f'user "{user.name}" cannot get instances/{SUBRESOURCE} of {name} in namespace '
                f"{namespace}{': ' + reason if reason else ''}",
            )
        try:
            instance = await self.c.objects.get("instances", name, namespace)
        except ApiException as err:
            if err.status == 404:
                return _text(404, f"instance {name} not found in namespace {namespace}")
            raise
        host = (instance.get("status") or {}).get("host")
        if not host:
            return _text(409, f"instance {name} has no host: there is no console (yet)")
        driver = self.c.hosts.serving(host)
        if driver is None:
            return _text(404, f"host {host} of instance {name} is not served by this operator")
        try:
            text = await driver.console_output(instance["metadata"]["uid"])
        except InstanceNotFound:
            return _text(404, f"host {host} has no VM for instance {name}")
        except DriverError as err:
            return _text(502, f"console of {name} on {host}: {err}")
        try:
            offset = max(0, int(request.query.get("offset", "0")))
        except ValueError:
            return _text(400, "offset must be a whole number")
        if offset > len(text):  # a new log (the VM was re-created): from its start
            offset = 0
        response = _text(200, text[offset:])
        response.headers[LENGTH_HEADER] = str(len(text))
        return response


def _text(status: int, body: str) -> web.Response:
    if status != 200 and not body.endswith("\n"):
        body += "\n"
    return web.Response(status=status, text=body, content_type="text/plain", charset="utf-8")
