# The release worker's image (docker-compose.yml, service `worker`): Prefect on Python 3.11 with this
# project installed, so the worker runs the flows of prefect.yaml from the installed package.
# Installed editable from /app, so `tripgen-release deployments register` finds /app/prefect.yaml.
ARG PREFECT_IMAGE=prefecthq/prefect:3.9.1-python3.11
FROM ${PREFECT_IMAGE}

WORKDIR /app
COPY pyproject.toml README.md ./
COPY delivery ./delivery
COPY flows ./flows
COPY tasks ./tasks
COPY deployments ./deployments
RUN pip install --no-cache-dir -e . && tripgen-release --help >/dev/null
COPY prefect.yaml ./
COPY policies ./policies
