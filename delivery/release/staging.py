"""Staging (R-ENV, R-VAL): rolling update per service with undo on failure, then validation."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from delivery.kube.deployments import Deployments, RolloutResult
from delivery.policy.models import Policy
from delivery.release.probes import Prober, ProbeResult


@dataclass(frozen=True)
class StagingRollout:
    """One service's staging rollout: did it finish, and was it undone."""

    service: str
    result: RolloutResult
    undone_to_revision: int | None = None


def roll_out(policy: Policy, deployments: Deployments, service: str, image: str) -> StagingRollout:
    """Set the staging image and wait (R-VAL-1); on failure undo that service and say so."""
    namespace = policy.environments["staging"].namespace
    deployments.set_image(namespace, service, service, image)
    result = deployments.wait_rolled_out(namespace, service, policy.validation.rollout_timeout.total_seconds())
    if result.done:
        return StagingRollout(service, result)
    revision = deployments.undo(namespace, service)
    return StagingRollout(service, result, undone_to_revision=revision)


def validate(policy: Policy, prober: Prober, host: str, namespace: str, services: list[str]) -> list[ProbeResult]:
    """R-VAL-2 health of each service, R-VAL-3 response time, R-VAL-4 DB health from inside the cluster."""
    val = policy.validation
    interval = val.health_retry_interval.total_seconds()
    results = [
        prober.health(host, f"{policy.service(name).public_path}/health", val.health_attempts, interval)
        for name in services
    ]
    results.append(prober.response_time(host, val.response_time_path, val.max_response_time.total_seconds()))
    db_service = policy.service(val.db_health_service)
    in_cluster = f"{db_service.name}.{namespace}.svc.cluster.local"
    results.append(prober.health(in_cluster, db_service.db_health_path, val.health_attempts, interval))
    return results


def smoke_suite(policy: Policy, prober: Prober, host: str, services: list[str]) -> list[ProbeResult]:
    """The built-in E2E smoke suite: each service's public API answers 2xx in time."""
    limit = policy.validation.max_response_time.total_seconds()
    return [prober.response_time(host, policy.service(name).smoke_target, limit) for name in services]


def run_command(name: str, argv: list[str], timeout: float, env: dict[str, str]) -> ProbeResult:
    """Run an E2E or load command from the policy (no shell); passes on exit code 0."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except FileNotFoundError:
        return ProbeResult(name, False, f"command not found: {argv[0]}")
    except subprocess.TimeoutExpired:
        return ProbeResult(name, False, f"timed out after {timeout:g}s")
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    return ProbeResult(name, done.returncode == 0, f"exit {done.returncode}: {tail[0][:200]}")
