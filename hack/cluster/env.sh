# Shared by hack/cluster-up.sh and hack/cluster-down.sh: where the local cluster lives and what it
# is called. Everything it makes is under these two folders, one bridge and the CNI netns.
CLUSTER_DIR=/var/lib/kubenova-cluster   # certificates, etcd, containerd's root, kubelet, logs
CLUSTER_RUN=/run/kubenova-cluster       # sockets, pid files, containerd's and runc's state
KUBECONFIG_PATH=$CLUSTER_DIR/admin.kubeconfig
NODE_NAME=kubenova-node
BRIDGE=kubenova-cni0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1          # the bridge's own address: apiserver, kubelet and pods' gateway
SERVICE_CIDR=10.96.0.0/12
KUBERNETES_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
APISERVER_PORT=6443
ETCD_CLIENT_PORT=23790      # off etcd's defaults, so a stray etcd on 2379 is not ours
ETCD_PEER_PORT=23800
CONTAINERD_SOCK=$CLUSTER_RUN/containerd/containerd.sock
CNI_NETWORK=kubenova
# The processes cluster-up starts, in start order (cluster-down stops them in reverse).
CLUSTER_PROCS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy local-path-provisioner)
# The FORWARD guard cluster-up puts first: nothing crosses between the bridge and other interfaces.
ISOLATE_CHAIN=KUBENOVA-CLUSTER-ISOLATE
