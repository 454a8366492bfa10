# The tikv-operator image: `tikv-operator run` on a slim Python, dependencies exactly as in uv.lock.
# Build: docker build -t tikv-operator:0.1.0 .
# The install steps live in hack/image-install.sh, which a test runs on a copy of this build context.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# uv's version: the one pinned in pyproject.toml's dev group (a unit test keeps them equal).
ARG UV_VERSION=0.13.8
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY operator/ operator/
COPY hack/image-install.sh hack/image-install.sh
ENV UV_NO_CACHE=1
RUN sh hack/image-install.sh /opt/tikv-operator

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tikv-operator" \
      org.opencontainers.image.description="Watches TiKV clusters; broken health invariants become OperatorTicket resources." \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin tikv-operator
COPY --from=builder /opt/tikv-operator /opt/tikv-operator
ENV PATH=/opt/tikv-operator/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
# Numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# 8080: Prometheus metrics (/metrics); 8081: liveness and readiness (/healthz). Kubernetes probes the
# latter, so the image has no HEALTHCHECK.
EXPOSE 8080 8081
ENTRYPOINT ["tikv-operator", "run"]
CMD ["--all-namespaces"]
