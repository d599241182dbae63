"""The emergency procedure's look at services (SPEC §8): pods, events, logs, resource use, actuator metrics and
PostgreSQL latency, as a markdown artifact and a tar.gz bundle kept 30 days."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from delivery.release.plan import select_services
from delivery.release.runtime import runtime
from tasks.diagnosis import diagnose_services


@flow(name="diagnose", flow_run_name="diagnose-{environment}", log_prints=True)
def diagnose(services: list[str] | None = None, environment: Literal["production", "staging"] = "production") -> str:
    """Diagnose `services` (default: all) in `environment`; returns the bundle's path.

    Args:
        services: Only these services (default: all four).
        environment: production or staging.
    """
    return diagnose_services(environment, select_services(runtime().policy, services))
