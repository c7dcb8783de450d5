"""The validating admission webhook (nova-api's and cinder-api's request checks), served by kopf.

Imported only with `kubenova operator --admission`. kopf manages the
ValidatingWebhookConfiguration: failurePolicy Fail, sideEffects None (the checks only read,
so `kubectl apply --dry-run=server` is checked too and changes nothing). The checks live in
`kubenova.admission`; these handlers only gather what they need and turn problems into a
refusal.
"""

from __future__ import annotations

import logging
import re
import ssl

import kopf

from kubenova import GROUP, VERSION, WEBHOOK_CONFIGURATION
from kubenova.admission.actions import action_problems
from kubenova.admission.image import image_problems
from kubenova.admission.instance import instance_problems
from kubenova.admission.lookup import Indexes, Lookup, instance_refs
from kubenova.admission.refs import Problem
from kubenova.admission.volume import (
    volume_create_problems,
    volume_delete_problems,
    volume_grow_problems,
)
from kubenova.config import OperatorConfig
from kubenova.kube.client import Objects
from kubenova.network.ports import in_use_message
from kubenova.pki import ensure_certificates

log = logging.getLogger("kubenova.admission")


#: a Service's DNS name: <name>.<namespace>.svc[.cluster.local]
SERVICE_HOST = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.cluster\.local)?$"
)


def service_of(host: str) -> tuple[str, str] | None:
    """(namespace, name) when `host` is a Service's DNS name, else None."""
    match = SERVICE_HOST.match(host)
    return (match.group(3), match.group(1)) if match else None


class ServiceWebhookServer(kopf.WebhookServer):
    """kopf's webhook server, announced to the apiserver as a Service reference instead of a URL
    when it is dialled by a Service's name (the chart's): an apiserver outside the pod network
    (a host process, as on the local cluster, or kind's static pod) resolves a Service itself,
    through its own service resolver, but not the Service's DNS name. The Service's port is the
    one the server listens on (the chart's webhook Service maps it to itself)."""

    async def __call__(self, fn):
        namespace, name = service_of(self.host or "")
        async for config in super().__call__(fn):
            announced = {"service": {"namespace": namespace, "name": name, "port": self.port}}
            if "caBundle" in config:
                announced["caBundle"] = config["caBundle"]
            yield announced


@kopf.on.startup(retries=1)
async def serve_webhook(settings: kopf.OperatorSettings, memo: kopf.Memo, **_):
    config: OperatorConfig = memo.config
    addr, port = config.webhook_address
    host = config.webhook_dial_host
    certs = await ensure_certificates(
        config.webhook_certs, host, addr, ca_name="kubenova-webhook-ca"
    )
    # Only the apiserver, when its client CA is known: the answers tell what exists anywhere.
    callers = (
        {"verify_mode": ssl.CERT_REQUIRED, "verify_cafile": str(config.webhook_client_ca)}
        if config.webhook_client_ca
        else {}
    )
    server = ServiceWebhookServer if service_of(host) else kopf.WebhookServer
    settings.admission.server = server(
        addr=addr,
        port=port,
        host=host,
        certfile=str(certs.cert),
        pkeyfile=str(certs.key),
        cafile=str(certs.ca),
        **callers,
    )
    settings.admission.managed = WEBHOOK_CONFIGURATION
    log.info(
        "admission webhook on %s:%s, dialled as %s (certificates in %s; callers: %s)",
        addr,
        port,
        host,
        config.webhook_certs,
        f"client certificates of {config.webhook_client_ca}"
        if config.webhook_client_ca
        else "anyone who reaches it",
    )


# -- kopf indexes only the checks read -----------------------------------------------------
@kopf.index(GROUP, VERSION, "keypairs")
async def keypair_names(namespace, name, **_):
    return {(namespace, name): True}


@kopf.index(GROUP, VERSION, "volumes")
async def volume_states(namespace, name, spec, status, **_):
    return {(namespace, name): {"spec": dict(spec), "status": dict(status)}}


@kopf.index(GROUP, VERSION, "quotas")
async def quota_usage(namespace, spec, status, **_):
    return {namespace: {"spec": dict(spec), "used": dict(status.get("used") or {})}}


def _indexes(kwargs) -> Indexes:
    return Indexes(
        flavors=kwargs["flavors"],
        images=kwargs["images"],
        networks=kwargs["network_specs"],
        port_addresses=kwargs["port_addresses"],
        keypairs=kwargs["keypair_names"],
        volumes=kwargs["volume_states"],
        quotas=kwargs["quota_usage"],
    )


def _refuse(problems: list[Problem]) -> None:
    if problems:
        raise kopf.AdmissionError("; ".join(p.message for p in problems), code=problems[0].code)


# -- the checks ------------------------------------------------------------------------------
@kopf.on.validate(GROUP, VERSION, "instances", operations=["CREATE"], id="instance-create")
async def validate_instance_create(namespace, spec, memo, **kwargs):
    """References, image minimums, user-data size, fixed IPs and quota. A refusal found on
    the indexes is confirmed on fresh reads (the watch may lag a create made just before)."""
    objects: Objects = memo.conductor.objects
    problems = instance_problems(
        namespace, spec, await instance_refs(Lookup(objects, _indexes(kwargs)), namespace, spec)
    )
    if problems:
        refs = await instance_refs(Lookup(objects), namespace, spec)
        _refuse(instance_problems(namespace, spec, refs))


@kopf.on.validate(GROUP, VERSION, "instances", operations=["UPDATE"], id="instance-action")
async def validate_instance_action(name, old, new, subresource, **_):
    """A reboot annotation or a powerState change the instance's state does not allow (Nova's
    409 "Cannot 'reboot' instance ... while it is in vm_state STOPPED")."""
    if subresource or not old or not new:
        return
    _refuse(action_problems(name, old, new))


@kopf.on.validate(GROUP, VERSION, "images", operations=["CREATE"], id="image-create")
async def validate_image_create(spec, memo, **_):
    """The image import policy (config.image_import): host paths under the allowed
    directories, URLs to allowed schemes, ports and hosts, never to non-public addresses."""
    config: OperatorConfig = memo.config
    _refuse(await image_problems(spec, config.image_import))


@kopf.on.validate(GROUP, VERSION, "volumes", operations=["CREATE"], id="volume-create")
async def validate_volume_create(namespace, spec, memo, **kwargs):
    objects: Objects = memo.conductor.objects
    problems = await _volume_create(Lookup(objects, _indexes(kwargs)), namespace, spec)
    if problems:
        _refuse(await _volume_create(Lookup(objects), namespace, spec))


async def _volume_create(lookup: Lookup, namespace: str, spec) -> list[Problem]:
    source = spec.get("sourceImage")
    exists = (await lookup.image(namespace, source) is not None) if source else None
    return volume_create_problems(namespace, spec, await lookup.quota(namespace), exists)


@kopf.on.validate(GROUP, VERSION, "volumes", operations=["UPDATE"], id="volume-grow")
async def validate_volume_grow(namespace, old, new, subresource, memo, **kwargs):
    if subresource or not old or not new:
        return
    lookup = Lookup(memo.conductor.objects, _indexes(kwargs))
    quota = await lookup.quota(namespace)
    if volume_grow_problems(namespace, old["spec"], new["spec"], quota):
        quota = await Lookup(memo.conductor.objects).quota(namespace)
        _refuse(volume_grow_problems(namespace, old["spec"], new["spec"], quota))


@kopf.on.validate(GROUP, VERSION, "volumes", operations=["DELETE"], id="volume-delete")
async def validate_volume_delete(namespace, name, status, memo, **_):
    """An in-use volume cannot be deleted while its instance exists (cinder's VolumeIsBusy);
    the instance is read fresh, so a volume freed a moment ago is not refused."""
    user = status.get("attachedTo")
    if not user:
        return
    uid = await Lookup(memo.conductor.objects).instance_uid(namespace, user)
    owner = status.get("attachedToUid")
    exists = uid is not None and (owner is None or owner == uid)
    _refuse(volume_delete_problems(name, status, exists))


@kopf.on.validate(GROUP, VERSION, "networks", operations=["DELETE"], id="network-delete")
async def validate_network_delete(namespace, name, memo, **_):
    """A Network with Ports cannot be deleted (neutron's NetworkInUse, 409); read fresh."""
    ports = await memo.conductor.ports.on_network(namespace, name)
    if ports:
        _refuse([Problem(in_use_message(name, ports), 409)])
