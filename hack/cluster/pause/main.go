// pause holds a pod's namespaces open: it blocks until SIGINT or SIGTERM and, as PID 1 of a pod
// that shares its PID namespace, reaps the orphans it inherits. The local cluster's sandbox image
// (hack/build-cluster.sh) is this one static binary; no image is ever pulled from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
