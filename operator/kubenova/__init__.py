"""kubenova: OpenStack Nova's instance boot flow as a Kubernetes operator."""

GROUP = "compute.kubenova.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
