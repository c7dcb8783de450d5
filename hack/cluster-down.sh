#!/usr/bin/env bash
# `make cluster-down`: removes what hack/cluster-up.sh made (docs/cluster.md): the pods (through
# containerd, so CNI tears their netns, veths and chains down), every process it started (by pid
# file; containerd's shims by their command line naming the cluster's folders), the mounts under
# its folders, the bridge, the CNI netns, the iptables chains kube-proxy, the kubelet and CNI made
# (KUBE-*, CNI-*) and its own guard, the sysctls it set, and its folders. Then checks that none of
# it is left, and exits non-zero if anything is.
set -uo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HACK_DIR/versions.env"
source "$HACK_DIR/cluster/env.sh"
PATH="$HACK_DIR/../.bin:$PATH:/usr/sbin:/sbin"
say() { printf '[cluster] %s\n' "$*" >&2; }
[[ $(id -u) == 0 ]] || { say "cluster-down needs root"; exit 1; }

pid_of() { [[ -s "$CLUSTER_RUN/pids/$1.pid" ]] && cat "$CLUSTER_RUN/pids/$1.pid"; }
# stop_pid PID: TERM, up to 10 s, then KILL.
stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}
stop_proc() {
  local pid t=$SECONDS
  pid=$(pid_of "$1") || return 0
  stop_pid "$pid"
  rm -f "$CLUSTER_RUN/pids/$1.pid"
  ((SECONDS - t < 3)) || say "$1 took $((SECONDS - t))s to stop"
}
# Processes whose command line names the cluster's folders (containerd's shims among them).
cluster_pids() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qE "$CLUSTER_DIR|$CLUSTER_RUN" && echo "$pid"
  done
}
cluster_mounts() {
  awk -v a="$CLUSTER_DIR" -v b="$CLUSTER_RUN" \
    'index($5, a "/") == 1 || $5 == a || index($5, b "/") == 1 || $5 == b { print $5 }' /proc/self/mountinfo
}
cni_netns() { ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ { print $1 }'; }
# chains TOOL TABLE: the cluster's chains in that table.
chains() { "$1" -w -t "$2" -S 2>/dev/null | awk -v g="$ISOLATE_CHAIN" '$1 == "-N" && ($2 ~ /^(KUBE|CNI)-/ || $2 == g) { print $2 }'; }
TABLES=(filter nat mangle raw)
# The kubelet's pod cgroups (cgroup v1: one tree per controller; v2: one) and the pids in them.
pod_cgroups() { find /sys/fs/cgroup -depth -type d -name 'kubepods*' 2>/dev/null | grep -v '/kubepods[^/]*/.*kubepods' ; }
pod_pids() { local d; for d in $(pod_cgroups); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done; }
started=()
for p in "${CLUSTER_PROCS[@]}"; do pid=$(pid_of "$p") && started+=("$pid"); done

# 1. The kubelet first (it would restart what goes), then the pods through containerd.
stop_proc kubelet
if [[ -S "$CONTAINERD_SOCK" ]] && kill -0 "$(pid_of containerd)" 2>/dev/null; then
  crictl --runtime-endpoint "unix://$CONTAINERD_SOCK" --timeout 30s rmp --all --force >/dev/null 2>&1 ||
    say "crictl rmp failed; the sweep below removes what is left"
fi
stop_proc containerd
# 2. kube-proxy, its rules, the control plane.
stop_proc kube-proxy
if [[ -x "$(command -v kube-proxy)" ]]; then
  kube-proxy --cleanup >/dev/null 2>&1 || true
fi
for ((i = ${#CLUSTER_PROCS[@]} - 1; i >= 0; i--)); do stop_proc "${CLUSTER_PROCS[i]}"; done
# 3. Whatever still names the cluster's folders (a shim whose task outlived containerd).
for pid in $(cluster_pids); do stop_pid "$pid"; done

# Pod processes a killed shim left behind, then the kubelet's pod cgroups (deepest first).
for pid in $(pod_pids); do stop_pid "$pid"; done
for d in $(pod_cgroups); do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done

# 4. Mounts (pod volumes, sandbox shm, rootfs overlays), deepest first; the CNI netns.
for ((n = 0; n < 3; n++)); do
  mapfile -t mounts < <(cluster_mounts | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-)
  ((${#mounts[@]})) || break
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
done
for ns in $(cni_netns); do ip netns delete "$ns" 2>/dev/null || true; done

# 5. iptables: the jumps into the cluster's chains, then the chains themselves.
for tool in iptables ip6tables; do
  command -v "$tool" >/dev/null || continue
  for t in "${TABLES[@]}"; do
    mapfile -t ours < <(chains "$tool" "$t")
    ((${#ours[@]})) || continue
    pattern="-j ($(IFS='|'; echo "${ours[*]}"))( |\$)"
    # Rules in other chains (INPUT, FORWARD, ...) jumping into ours, as -S prints them.
    "$tool" -w -t "$t" -S | grep -E '^-A ' | grep -vE "^-A (KUBE|CNI)-|^-A $ISOLATE_CHAIN " |
      grep -E -- "$pattern" | while read -r rule; do
        eval "\"$tool\" -w -t \"$t\" -D ${rule#-A }" || true
      done
    for c in "${ours[@]}"; do "$tool" -w -t "$t" -F "$c" 2>/dev/null || true; done
    for c in "${ours[@]}"; do "$tool" -w -t "$t" -X "$c" 2>/dev/null || true; done
  done
done

# 6. The bridge, the sysctls as they were, CNI's result cache for our network, the folders.
ip link delete "$BRIDGE" 2>/dev/null || true
if [[ -s "$CLUSTER_RUN/sysctl.orig" ]]; then
  while IFS= read -r kv; do sysctl -qw "$kv" || true; done <"$CLUSTER_RUN/sysctl.orig"
fi
rm -f /var/lib/cni/results/"$CNI_NETWORK"-* 2>/dev/null
# Two paths the kubelet hard-codes whatever its --root-dir: the container log links and the
# device-plugin socket.
find /var/log/containers -maxdepth 1 -type l -lname "$CLUSTER_DIR/*" -delete 2>/dev/null
rm -f /var/lib/kubelet/device-plugins/kubelet.sock
rm -rf "$CLUSTER_DIR" "$CLUSTER_RUN"
# Folders libcni and containerd's shims make outside ours, when empty (rmdir leaves them otherwise).
rmdir /var/lib/cni/results /var/lib/cni /run/containerd/s /run/containerd \
  /var/log/containers /var/lib/kubelet/device-plugins /var/lib/kubelet 2>/dev/null

say "cluster removed in ${SECONDS}s"
# 7. The check.
left=0
report() {
  local what="$1" found="$2"
  if [[ -n "$found" ]]; then
    left=1
    printf 'cluster-down check: %-9s LEFT: %s\n' "$what" "$(echo "$found" | tr '\n' ' ')"
  else
    printf 'cluster-down check: %-9s none\n' "$what"
  fi
}
found=$(for pid in "${started[@]}" $(cluster_pids) $(pod_pids); do
  kill -0 "$pid" 2>/dev/null && ps -o pid=,comm= -p "$pid"
done)
report process "$found"
report mount "$(cluster_mounts)"
report cgroup "$(pod_cgroups)"
report bridge "$(ip -o link show "$BRIDGE" 2>/dev/null | cut -d: -f2)"
report netns "$(cni_netns)"
found=""
for tool in iptables ip6tables; do
  command -v "$tool" >/dev/null || continue
  for t in "${TABLES[@]}"; do
    c=$(chains "$tool" "$t" | tr '\n' ' ')
    [[ -z "$c" ]] || found+="$tool/$t: $c"
  done
done
report chain "$found"
report dir "$(ls -d "$CLUSTER_DIR" "$CLUSTER_RUN" 2>/dev/null)"
report file "$(find /var/log/containers /var/lib/cni /var/lib/kubelet/device-plugins \
  \( -lname "$CLUSTER_DIR/*" -o -name "$CNI_NETWORK-*" -o -name kubelet.sock \) 2>/dev/null)"
exit "$left"
