"""kubenova: OpenStack Nova's instance boot flow as a Kubernetes operator."""

GROUP = "compute.kubenova.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
#: The Validating (and empty Mutating) WebhookConfiguration kopf keeps up to date.
WEBHOOK_CONFIGURATION = "kubenova.compute.kubenova.io"
