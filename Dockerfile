# syntax=docker/dockerfile:1
# kubenova's images, one Dockerfile, one target each:
#
#   operator  the kopf operator (`kubenova operator`), non-root (uid 10001), no shell tools added
#   launcher  operator + qemu-system-x86, qemu-img and genisoimage: the QEMU pod driver's
#             container (it runs kubenova's own launcher code), and the operator image for the
#             chart's embedded `driver: qemu` mode
#   guest     the busybox test guest (hack/build-guest.sh) served over HTTP on :8080, so a
#             cluster without `make setup` can boot the example (hack/kind-up.sh uses it)
#   guest-disk  the same guest as a KubeVirt containerDisk (/disk/busybox.qcow2)
#
#   docker build --target operator -t kubenova:dev .
#   docker build --target launcher -t kubenova-launcher:dev .
#   docker build --target guest    -t kubenova-guest:dev .
#
# One base, pinned by tag (add a digest when your registry policy asks for it); it is Debian
# bookworm, whose packages the launcher and guest stages install.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# -- build: kubenova and its dependencies in a virtualenv, copied whole into the runtime stages
# (no wheel files, pip caches or build tools in any layer of the final image).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kubenova
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# pip byte-compiles as it installs: with a read-only root filesystem the operator could not
# write .pyc files at start, so they are made here once.
RUN /opt/kubenova/bin/pip install . \
 && /opt/kubenova/bin/pip uninstall -y pip setuptools

# -- operator ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator
LABEL org.opencontainers.image.title="kubenova" \
      org.opencontainers.image.description="OpenStack Nova's instance boot flow as a Kubernetes operator"
ENV PATH=/opt/kubenova/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --gid 10001 kubenova \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/kubenova --create-home \
      --shell /usr/sbin/nologin kubenova
COPY --from=build /opt/kubenova /opt/kubenova
# State (image cache, instance directories) goes to a volume in a pod; the root filesystem can be
# read-only.
WORKDIR /var/lib/kubenova
USER 10001:10001
ENTRYPOINT ["kubenova"]
CMD ["--help"]

# -- launcher: the same package plus QEMU ------------------------------------------------------
FROM operator AS launcher
USER 0:0
RUN apt-get update \
 && apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils genisoimage \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc /usr/share/man
USER 10001:10001

# -- guest: build the busybox test guest the way `make setup` does ------------------------------
FROM ${PYTHON_IMAGE} AS guest-build
RUN apt-get update \
 && apt-get install -y --no-install-recommends busybox-static linux-image-cloud-amd64 \
      syslinux syslinux-common mtools dosfstools cpio kmod qemu-utils xz-utils zstd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY hack/lib.sh hack/versions.env hack/build-guest.sh hack/
COPY hack/guest hack/guest
RUN KUBENOVA_CACHE=/build bash hack/build-guest.sh \
 && mkdir /out && cp -L .bin/guest/busybox.qcow2 .bin/guest/busybox.qcow2.sha256 /out/

FROM ${PYTHON_IMAGE} AS guest
COPY --from=guest-build /out /srv/guest
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["python", "-m", "http.server", "8080", "--directory", "/srv/guest"]

# -- guest-disk: the same guest as a KubeVirt containerDisk (the kubevirt driver's root disk) ---
FROM scratch AS guest-disk
COPY --from=guest-build --chown=107:107 /out/busybox.qcow2 /disk/busybox.qcow2
