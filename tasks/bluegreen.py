"""Blue-green steps for one service (R-BG): deploy idle, wait, validate, switch, switch back, retire."""

from __future__ import annotations

from prefect import get_run_logger, task

from delivery.release.retrying import CLUSTER_STEP, HTTP_STEP
from delivery.release.runtime import runtime
from tasks.retry import transient_only


class ColorNotReady(RuntimeError):
    """The idle color did not become available or failed validation; production traffic never moved."""


@task(name="deploy idle color", task_run_name="deploy {service} idle color", retry_condition_fn=transient_only, **CLUSTER_STEP)
def deploy_idle_color(service: str, image: str) -> str:
    """Apply `<service>-<idle color>` with the new digest (R-BG-1, R-BG-5); returns the color."""
    color = runtime().blue_green.deploy_idle(service, image)
    get_run_logger().info("%s-%s now runs %s", service, color, image)
    return color


@task(name="wait available", task_run_name="wait {service}-{color} available", retry_condition_fn=transient_only, **CLUSTER_STEP)
def wait_color_available(service: str, color: str) -> str:
    """Wait until the idle color is rolled out (ready timeout from the policy)."""
    result = runtime().blue_green.wait_available(service, color)
    if not result.done:
        raise ColorNotReady(f"{service}-{color} is not available: {result.message}; production traffic stays where it is")
    return result.message


@task(name="validate idle color", task_run_name="validate {service} idle color", retry_condition_fn=transient_only, **HTTP_STEP)
def validate_idle_color(service: str) -> list[dict]:
    """Health and response time of the idle color through the validation host (R-BG-2)."""
    rt = runtime()
    results = rt.blue_green.validate_idle(service, rt.prober)
    failed = [r for r in results if not r.passed]
    if failed:
        raise ColorNotReady(f"{service} idle color failed validation: " + "; ".join(f"{r.name}: {r.detail}" for r in failed))
    return [{"check": r.name, "detail": r.detail} for r in results]


@task(name="switch traffic", task_run_name="switch {service} to {color}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def switch_traffic(service: str, color: str) -> dict:
    """Patch the Service selector to the new color and time it."""
    switch = runtime().blue_green.switch(service, color)
    get_run_logger().info("%s: traffic %s -> %s in %.3fs", service, switch.from_color, switch.to_color, switch.seconds)
    return {"service": service, "from": switch.from_color, "to": switch.to_color, "seconds": switch.seconds}


@task(name="switch traffic back", task_run_name="switch {service} back to {color}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def switch_traffic_back(service: str, color: str) -> dict:
    """Roll back at once: the Service selects the previous color again (R-BG-3)."""
    switch = runtime().blue_green.switch(service, color)
    get_run_logger().warning("%s: traffic switched back %s -> %s in %.3fs", service, switch.from_color, switch.to_color, switch.seconds)
    return {"service": service, "from": switch.from_color, "to": switch.to_color, "seconds": switch.seconds}


@task(name="retire old color", task_run_name="retire {service}-{color}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def retire_old_color(service: str, color: str) -> bool:
    """Scale the old color to zero and delete it (R-BG-4); the next release deploys into it."""
    return runtime().blue_green.retire(service, color)
