# syntax=docker/dockerfile:1
# The release worker's image (docker-compose.yml, service `worker`): a Prefect process worker on Python 3.11
# that runs the flows of prefect.yaml from this package, installed from its wheel.
#
#   builder  python slim: builds the wheel of this package, installs it with its dependencies into the
#            venv /opt/venv (Prefect pinned to PREFECT_VERSION, the server's), no pip cache
#   runtime  the same python slim image: /opt/venv and what the flows run at run time (git and kubectl
#            for gitops, pg_dump/psql for the migration rehearsal, tini as PID 1); user tripgen, uid and
#            gid 10001; no compiler, no pip cache, no source tree
#
# Both stages share one base, so the venv's interpreter links and any native wheel match. Checked by
# hadolint and tests/deploy/test_dockerfile.py; no Docker engine builds it in this repository's CI.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# the server's Prefect (docker-compose.yml passes it; prefect.yaml's prefect-version): the worker speaks its API
ARG PREFECT_VERSION=3.9.1
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY delivery ./delivery
COPY flows ./flows
COPY tasks ./tasks
COPY deployments ./deployments
COPY prefect.yaml ./
# The wheel, then a venv without pip or setuptools holding it and its dependencies. `deployments register`
# reads prefect.yaml beside the installed packages (deployments/register.py PREFECT_FILE): put it there.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv --without-pip /opt/venv \
    && echo "prefect==${PREFECT_VERSION}" > /tmp/constraints.txt \
    && pip --python /opt/venv/bin/python install --no-cache-dir --constraint /tmp/constraints.txt /wheels/tripgen_release-*.whl \
    && /opt/venv/bin/python -c "import deployments.register as r, shutil; shutil.copyfile('prefect.yaml', r.PREFECT_FILE)" \
    && /opt/venv/bin/tripgen-release --help >/dev/null \
    && /opt/venv/bin/prefect --version

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/tripgen \
    PREFECT_HOME=/home/tripgen/.prefect \
    TRIPGEN_GITOPS_WORKDIR=/app/.gitops \
    TRIPGEN_AUDIT_LOG=/app/audit/audit.jsonl
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# git: the gitops clone; kubectl (kubernetes-client): `kubectl kustomize` of the gitops overlay;
# pg_dump and psql (postgresql-client-15): the migration gate's rehearsal; tini: PID 1, reaps flow subprocesses
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        git=1:2.39.* \
        kubernetes-client=1.20.* \
        postgresql-client-15=15.* \
        tini=0.19.* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 tripgen \
    && useradd --uid 10001 --gid 10001 --home-dir /home/tripgen --create-home \
        --shell /usr/sbin/nologin tripgen \
    && mkdir -p /app/audit /app/.gitops /app/reports /home/tripgen/.prefect /home/tripgen/.kube \
    && chown 10001:10001 /app/audit /app/.gitops /home/tripgen/.prefect /home/tripgen/.kube
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# the default policies (compose mounts ./policies over them); read-only for the worker, like the package
COPY policies ./policies
# the audit log (volume audit-log) with alerts.jsonl and diagnostics/ beside it, and the gitops clone:
# the directories the worker writes, owned by it (a new named volume takes this ownership)
VOLUME ["/app/audit"]
USER 10001:10001
# the worker's own health endpoint (--with-healthcheck, port 8080): 503 once it stops polling the pool
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8080/health', timeout=5)"]
ENTRYPOINT ["/usr/bin/tini", "-g", "--"]
CMD ["prefect", "worker", "start", "--pool", "tripgen-release", "--type", "process", "--with-healthcheck"]
