# kubenova: `make run` boots the example instance, `make test` runs the tests.
# Both run `make setup` first; it is idempotent and fast once the tool cache is warm.
SHELL := /bin/bash
export PATH := $(CURDIR)/.bin:$(CURDIR)/.venv/bin:$(PATH)
PY := $(CURDIR)/.venv/bin/python
PYTEST_ARGS ?=
ARGS ?=

.PHONY: setup run test unit integration lint crds check-crds clean cluster-up cluster-down cluster-demo cluster-test images

setup:
	@bash hack/setup.sh

run: setup
	$(PY) -m kubenova.cli run $(ARGS)

# pytest exits 5 when it collected no test: that fails the target like any other failure.
test: setup lint check-crds
	$(PY) -m pytest $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# The tests marked `cluster` alone: the chart on the real local cluster (root; brought up and down).
cluster-test: setup
	$(PY) -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

crds: setup
	$(PY) -m kubenova.cli crds

check-crds: setup
	$(PY) -m kubenova.cli crds --check

# A real one-node cluster (kubelet + containerd) on this machine (the cluster tests bring their
# own up and down); docs/cluster.md.
cluster-up:
	@bash hack/cluster-up.sh

cluster-down:
	@bash hack/cluster-down.sh

# The chart with its defaults on that cluster: the example instance as a QEMU pod (hack/chart-demo.sh,
# the steps hack/kind-up.sh runs on kind).
cluster-demo: setup
	@bash hack/cluster-demo.sh

# kubenova's images from the unmodified Dockerfile on a Debian base made here (docs/cluster.md);
# imported into the local cluster's containerd when it runs.
images:
	@bash hack/build-images.sh

clean:
	rm -rf .venv .bin .pytest_cache .ruff_cache
