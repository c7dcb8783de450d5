#!/usr/bin/env bash
# `make cluster-up`: a real one-node Kubernetes cluster on this machine (docs/cluster.md): etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd, a kubelet, kube-proxy
# (iptables) and CoreDNS, every binary built and cached by hack/build-cluster.sh, every image built
# here (none is pulled). Opt-in, not part of make setup or make test; hack/cluster-down.sh removes
# it. Waits until the node is Ready and a test pod runs, then prints how long that took.
source "$(dirname "$0")/lib.sh"
source "$HACK_DIR/cluster/env.sh"
PATH="$BIN_DIR:$PATH:/usr/sbin:/sbin"
start=$SECONDS
say() { printf '[cluster] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
[[ $(id -u) == 0 ]] || die "the local cluster needs root (containerd, the kubelet, iptables, a bridge)"

alive() { [[ -s "$CLUSTER_RUN/pids/$1.pid" ]] && kill -0 "$(cat "$CLUSTER_RUN/pids/$1.pid")" 2>/dev/null; }
k() { kubectl --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# Idempotent: a cluster that is up is left alone; leftovers of one that is not are removed first.
if [[ -d "$CLUSTER_DIR" || -d "$CLUSTER_RUN" ]]; then
  up=1
  for p in "${CLUSTER_PROCS[@]}"; do alive "$p" || up=0; done
  if ((up)) && k get --raw /readyz >/dev/null 2>&1; then
    say "already up: export KUBECONFIG=$KUBECONFIG_PATH"
    exit 0
  fi
  say "removing the leftovers of an earlier cluster (hack/cluster-down.sh)"
  "$HACK_DIR/cluster-down.sh" >/dev/null || die "hack/cluster-down.sh could not clean up; see its output"
fi

# -- 1. binaries and images (cached) ---------------------------------------------------------------
"$HACK_DIR/build-k8s.sh"
"$HACK_DIR/build-etcd.sh"
"$HACK_DIR/build-cluster.sh"
images="$BIN_DIR/cluster-images"
built=$SECONDS
say "binaries and images ready in $((built - start))s"

failed() {
  local rc=$?
  ((rc == 0)) && return
  say "cluster-up failed (exit $rc); logs in $CLUSTER_DIR/logs; hack/cluster-down.sh removes it"
  local f
  for f in "$CLUSTER_DIR"/logs/*.log; do
    [[ -s "$f" ]] || continue
    echo "--- $(basename "$f") (last lines)" >&2
    tail -n 5 "$f" >&2
  done
}
trap failed EXIT

mkdir -p "$CLUSTER_DIR"/{pki,logs,etcd,cni/net.d,cni/ipam,kubelet,pod-logs} "$CLUSTER_RUN"/pids
chmod 700 "$CLUSTER_DIR" "$CLUSTER_DIR/pki"

# start NAME ARGV...: run a process in its own session (it outlives this script), log and pid file.
start_proc() {
  local name="$1"
  shift
  setsid "$@" >"$CLUSTER_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$CLUSTER_RUN/pids/$name.pid"
}
# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
  local what="$1" timeout="$2" deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}

# -- 2. network: the bridge (its address is the node's), sysctls, the isolation guard ------------
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
ip link set "$BRIDGE" up
# The host's own connections to service IPs leave by the bridge, from the node's address (else by
# the default route, from the machine's address, and out of eth0 when no rule rewrites them).
ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
# Pod -> service -> pod on the same bridge is routed back out of it (DNAT in PREROUTING), so the
# host must forward and bridged packets must meet iptables; cluster-down puts the values back.
# The guard, in the mangle table (traversed before filter, where kube-proxy and CNI's firewall
# insert their ACCEPTs first): nothing crosses between the bridge and another interface, and
# pods reach the host only at the node's address on the bridge. If the host forwarded nothing
# before, it forwards nothing but the bridge's own traffic now.
forwarding=$(sysctl -n net.ipv4.ip_forward)
for key in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
  printf '%s=%s\n' "$key" "$(sysctl -n "$key")" >>"$CLUSTER_RUN/sysctl.orig"
  sysctl -qw "$key=1"
done
guard() { iptables -w -t mangle -A "$ISOLATE_CHAIN" "$@" -j DROP; }
iptables -w -t mangle -N "$ISOLATE_CHAIN"
guard -i "$BRIDGE" ! -o "$BRIDGE"
if ((forwarding)); then guard ! -i "$BRIDGE" -o "$BRIDGE"; else guard ! -i "$BRIDGE"; fi
iptables -w -t mangle -I FORWARD 1 -j "$ISOLATE_CHAIN"
iptables -w -t mangle -I INPUT 1 -i "$BRIDGE" ! -d "$NODE_IP" -j "$ISOLATE_CHAIN"

# -- 3. certificates: one CA signs every serving and client certificate ------------------------
pki="$CLUSTER_DIR/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj "/CN=kubenova-cluster-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
# cert NAME SUBJECT USAGE [SAN]: an ECDSA key and a CA-signed certificate in $pki.
cert() {
  local name="$1" subject="$2" usage="$3" san="${4:-}"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subject" \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -z "$san" ]] || echo "subjectAltName=$san"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 365 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}
cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:$KUBERNETES_SERVICE_IP,IP:$NODE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert admin "/O=system:masters/CN=kubernetes-admin" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert local-path-provisioner "/CN=kubenova:local-path-provisioner" clientAuth
cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert kubelet-serving "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,DNS:$NODE_NAME"
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key"
openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
chmod 600 "$pki"/*.key

server="https://$NODE_IP:$APISERVER_PORT"
# kubeconfig FILE CERT_NAME: a kubeconfig for the CA-signed client certificate CERT_NAME.
kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kubenova-cluster
  cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}
users:
- name: $2
  user: {client-certificate: "$pki/$2.crt", client-key: "$pki/$2.key"}
contexts:
- name: kubenova-cluster
  context: {cluster: kubenova-cluster, user: $2}
current-context: kubenova-cluster
EOF
  chmod 600 "$1"
}
kubeconfig "$KUBECONFIG_PATH" admin
for c in controller-manager scheduler kube-proxy kubelet-client local-path-provisioner; do kubeconfig "$CLUSTER_DIR/$c.kubeconfig" "$c"; done

# -- 4. control plane ---------------------------------------------------------------------------
start_proc etcd etcd --name=kubenova-cluster --data-dir="$CLUSTER_DIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="kubenova-cluster=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync --log-level=warn
wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

start_proc kube-apiserver kube-apiserver \
  --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
  --cert-dir="$pki" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$pki/ca.crt" \
  --kubelet-preferred-address-types=InternalIP,Hostname \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true --profiling=false
wait_for kube-apiserver 60 k get --raw /readyz

start_proc kube-controller-manager kube-controller-manager \
  --kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10357 --leader-elect=false \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --use-service-account-credentials=true \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --allocate-node-cidrs=false --profiling=false
start_proc kube-scheduler kube-scheduler \
  --kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port=10359 --leader-elect=false --profiling=false

# -- 5. containerd: its own config, root, state and socket; the local images -----------------------
mkdir -p "$CLUSTER_RUN/containerd" "$CLUSTER_RUN/runc" "$CLUSTER_DIR/containerd"
cat >"$CLUSTER_DIR/containerd.toml" <<EOF
version = 2
root = "$CLUSTER_DIR/containerd"
state = "$CLUSTER_RUN/containerd"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CLUSTER_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$CLUSTER_PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: without this every sandbox fails "can't get final child's PID".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CLUSTER_RUN/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
EOF
start_proc containerd containerd --config "$CLUSTER_DIR/containerd.toml"
wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version
for image in pause coredns busybox; do
  ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$images/$image.tar" >/dev/null
done
# kubenova's own images (operator, launcher, guest), built here from the unmodified Dockerfile
# (cached; the first build takes about two minutes) and imported into this containerd.
"$HACK_DIR/build-images.sh"

# CNI: pods on the bridge, addresses from host-local, firewall (accepts the bridge's traffic in
# FORWARD) and portmap; no masquerade anywhere.
cat >"$CLUSTER_DIR/cni/net.d/10-$CNI_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "firewall"},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": false}
  ]
}
EOF

# -- 6. kubelet and kube-proxy -------------------------------------------------------------------
cat >"$CLUSTER_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$pki/kubelet-serving.crt"
tlsPrivateKeyFile: "$pki/kubelet-serving.key"
clusterDomain: cluster.local
clusterDNS: ["$DNS_SERVICE_IP"]
podLogsDir: "$CLUSTER_DIR/pod-logs"
evictionHard: {memory.available: 100Mi, nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
EOF
start_proc kubelet kubelet --config="$CLUSTER_DIR/kubelet.yaml" \
  --kubeconfig="$CLUSTER_DIR/kubelet-client.kubeconfig" --root-dir="$CLUSTER_DIR/kubelet" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1

cat >"$CLUSTER_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "$CLUSTER_DIR/kube-proxy.kubeconfig"}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$POD_CIDR"]
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start_proc kube-proxy kube-proxy --config="$CLUSTER_DIR/kube-proxy.yaml"

say "waiting for node $NODE_NAME to be Ready"
wait_for "node $NODE_NAME Ready" 120 k wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s

# -- 7. CoreDNS (a Deployment on the local image) and a test pod --------------------------------
wait_for "the default ServiceAccount" 60 k -n default get serviceaccount default
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # Cluster names only: no forward plugin, so no query ever leaves the machine.
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      priorityClassName: system-cluster-critical
      containers:
      - name: coredns
        image: $CLUSTER_COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $DNS_SERVICE_IP
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: v1
kind: Pod
metadata: {name: cluster-up-probe, namespace: default}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: pause
    image: $CLUSTER_PAUSE_IMAGE
    imagePullPolicy: Never
EOF
wait_for "pod cluster-up-probe Running" 120 \
  bash -c "[[ \$(kubectl --kubeconfig '$KUBECONFIG_PATH' get pod cluster-up-probe -o jsonpath='{.status.phase}') == Running ]]"
ready=$SECONDS
say "node $NODE_NAME Ready and a pod Running: $((ready - start))s in all ($((ready - built))s after the build)"
wait_for "CoreDNS ready" 120 k -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s
say "CoreDNS ready ($((SECONDS - start))s)"

# -- 8. the default StorageClass: local-path (what kind ships), its provisioner on the host ------
# Volumes are folders under $CLUSTER_DIR/local-path, made and removed by helper pods (busybox)
# in local-path-storage; the provisioner runs as its own user with the upstream permissions.
mkdir -p "$CLUSTER_DIR/local-path"
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: local-path-storage}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner, namespace: local-path-storage}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "kubenova:local-path-provisioner"}
rules:
- apiGroups: [""]
  resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [create, delete]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch, create, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubenova:local-path-provisioner"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "kubenova:local-path-provisioner"}
subjects: [{kind: User, name: "kubenova:local-path-provisioner", apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
cat >"$CLUSTER_DIR/local-path.json" <<EOF
{"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["$CLUSTER_DIR/local-path"]}]}
EOF
cat >"$CLUSTER_DIR/local-path-helper.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: helper-pod}
spec:
  priorityClassName: system-node-critical
  tolerations: [{key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}]
  containers:
  - {name: helper-pod, image: $CLUSTER_HELPER_IMAGE, imagePullPolicy: Never}
EOF
start_proc local-path-provisioner local-path-provisioner start \
  --kubeconfig "$CLUSTER_DIR/local-path-provisioner.kubeconfig" --namespace local-path-storage \
  --config "$CLUSTER_DIR/local-path.json" --helper-pod-file "$CLUSTER_DIR/local-path-helper.yaml" \
  --helper-image "$CLUSTER_HELPER_IMAGE" --service-account-name local-path-provisioner
say "StorageClass local-path (default), served by local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION"
k get nodes -o wide
echo "export KUBECONFIG=$KUBECONFIG_PATH    # make cluster-down removes the cluster"
