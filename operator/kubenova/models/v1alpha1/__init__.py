"""compute.kubenova.io/v1alpha1: every kind, in the order the CRDs are listed."""

from kubenova.models.base import Resource
from kubenova.models.v1alpha1.flavor import Flavor
from kubenova.models.v1alpha1.image import Image
from kubenova.models.v1alpha1.instance import Instance
from kubenova.models.v1alpha1.keypair import Keypair
from kubenova.models.v1alpha1.network import Network, Port
from kubenova.models.v1alpha1.quota import Quota
from kubenova.models.v1alpha1.resource_provider import ResourceProvider
from kubenova.models.v1alpha1.server_group import ServerGroup
from kubenova.models.v1alpha1.states import PowerState, TaskState, VmState
from kubenova.models.v1alpha1.volume import Volume

KINDS: tuple[type[Resource], ...] = (
    Flavor,
    Image,
    Network,
    Port,
    Volume,
    Keypair,
    ServerGroup,
    Quota,
    Instance,
    ResourceProvider,
)

__all__ = [
    "KINDS",
    "Flavor",
    "Image",
    "Instance",
    "Keypair",
    "Network",
    "Port",
    "PowerState",
    "Quota",
    "ResourceProvider",
    "ServerGroup",
    "TaskState",
    "VmState",
    "Volume",
]
