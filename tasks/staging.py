"""Staging steps (R-ENV staging row): rolling update with undo, validation, E2E and load checks."""

from __future__ import annotations

import os

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from delivery.release import staging
from delivery.release.retrying import CLUSTER_STEP, HTTP_STEP
from delivery.release.runtime import runtime
from delivery.release.state import CheckRow
from tasks.retry import transient_only


class StagingFailed(RuntimeError):
    """Staging did not accept the release; the message names the service and what failed."""


@task(name="roll out to staging", task_run_name="roll out {service} to staging", retry_condition_fn=transient_only, **CLUSTER_STEP)
def roll_out_staging(service: str, image: str) -> dict:
    """Rolling update of one staging service; undo it and fail when it does not roll out (R-VAL-1)."""
    rt = runtime()
    outcome = staging.roll_out(rt.policy, rt.deployments, service, image)
    if outcome.undone_to_revision is not None:
        raise StagingFailed(f"{service} did not roll out in staging ({outcome.result.message}); undone to revision {outcome.undone_to_revision}")
    get_run_logger().info(outcome.result.message)
    return {"service": service, "message": outcome.result.message}


@task(name="validate staging", retry_condition_fn=transient_only, **HTTP_STEP)
def validate_staging(services: list[str]) -> list[CheckRow]:
    """R-VAL-2..4 through the staging host, then the policy's E2E/load commands or the smoke suite."""
    rt = runtime()
    policy, host = rt.policy, rt.settings.staging_host
    namespace = policy.environments["staging"].namespace
    results = staging.validate(policy, rt.prober, host, namespace, services)
    checks = policy.staging_checks
    timeout = checks.command_timeout.total_seconds()
    commands = {"e2e tests": checks.e2e_command, "load test": checks.performance_command}
    env = {**os.environ, "TRIPGEN_TARGET_URL": rt.settings.gateway_url, "TRIPGEN_TARGET_HOST": host}
    if any(commands.values()):
        results += [staging.run_command(name, argv, timeout, env) for name, argv in commands.items() if argv]
    else:
        results += staging.smoke_suite(policy, rt.prober, host, services)
    rows = [CheckRow(check=r.name, passed=r.passed, detail=r.detail) for r in results]
    create_table_artifact([r.model_dump() for r in rows], key="staging-validation", description="Staging validation (R-VAL) and E2E checks")
    failed = [r for r in results if not r.passed]
    if failed:
        raise StagingFailed("staging validation failed: " + "; ".join(f"{r.name}: {r.detail}" for r in failed))
    return rows


@task(name="undo staging", task_run_name="undo {service} in staging", retry_condition_fn=transient_only, **CLUSTER_STEP)
def undo_staging(service: str) -> int:
    """Roll one staging service back to its previous revision."""
    rt = runtime()
    return rt.deployments.undo(rt.policy.environments["staging"].namespace, service)
