# kubenova images. `operator`: the kopf operator, non-root. `launcher`: the same package plus
# qemu-system and qemu-img, for the QEMU pod driver (it runs the same launcher code as the
# process driver). Build: docker build --target operator -t kubenova:dev .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS operator
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin kubenova
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
ENTRYPOINT ["kubenova"]
CMD ["--help"]

FROM operator AS launcher
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends qemu-system-x86 qemu-utils genisoimage \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
