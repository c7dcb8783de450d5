// The pod sandbox ("pause") binary of the local cluster's sandbox image (hack/build-cluster.sh).
module kubenova.dev/hack/cluster/pause

go 1.22
