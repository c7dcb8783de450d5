"""A real etcd + kube-apiserver on loopback, for `kubenova up`, `make run` and the tests.

Started the way envtest starts them: free ports, fresh certificates, RBAC on, health-waits.
"""

from kubenova.devcluster.cluster import DevCluster, DevClusterError

__all__ = ["DevCluster", "DevClusterError"]
