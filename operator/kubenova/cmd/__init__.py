"""The `kubenova` commands that talk to a cluster as its user (stop, start, reboot, events,
console, schedule): one module per command group, the shared kubeconfig/namespace flags
(target.py), `--wait` (waiting.py) and the one-line error handler (errors.py). kubenova/cli.py
assembles them with the operator's and the development commands."""
