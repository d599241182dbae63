"""Blue-green steps for one service (R-BG): deploy idle, wait, validate, switch, switch back, retire."""

from __future__ import annotations

from prefect import get_run_logger, task

from delivery.release.bluegreen import other_color
from delivery.release.record import RecordError
from delivery.release.retrying import CLUSTER_STEP, HTTP_STEP
from delivery.release.runtime import runtime
from delivery.release.state import CheckRow, SwitchResult
from tasks.retry import transient_only


class ColorNotReady(RuntimeError):
    """The idle color did not become available or failed validation; production traffic never moved."""


@task(name="deploy idle color", task_run_name="deploy {service} idle color", retry_condition_fn=transient_only, **CLUSTER_STEP)
def deploy_idle_color(service: str, image: str, record: str) -> str:
    """Apply `<service>-<idle color>` with the new digest (R-BG-1, R-BG-5), recorded first; returns the color.

    The color comes from the release record, so a retry or a rerun never deploys into the color
    that holds the rollback target.
    """
    rt = runtime()
    entry = rt.records.get(record).services[service]
    color = entry.new_color or other_color(entry.previous_color)
    if color == entry.previous_color:
        raise RecordError(f"{service}: {color} holds the rollback target ({entry.previous_image}); refusing to deploy into it")
    rt.records.mark(record, service, "deploying", new_color=color)
    previewed = rt.blue_green.deploy_into(service, color, image)
    rt.records.mark(record, service, "deployed")
    get_run_logger().info("%s-%s now runs %s; %s", service, color, image,
                          f"{service}-preview selects it" if previewed else f"no {service}-preview Service to point at it")
    return color


@task(name="wait available", task_run_name="wait {service}-{color} available", retry_condition_fn=transient_only, **CLUSTER_STEP)
def wait_color_available(service: str, color: str) -> str:
    """Wait until the idle color is rolled out (ready timeout from the policy)."""
    result = runtime().blue_green.wait_available(service, color)
    if not result.done:
        raise ColorNotReady(f"{service}-{color} is not available: {result.message}; production traffic stays where it is")
    return result.message


@task(name="validate idle color", task_run_name="validate {service} idle color", retry_condition_fn=transient_only, **HTTP_STEP)
def validate_idle_color(service: str) -> list[CheckRow]:
    """Health and response time of the idle color through the validation host (R-BG-2)."""
    rt = runtime()
    results = rt.blue_green.validate_idle(service, rt.prober)
    failed = [r for r in results if not r.passed]
    if failed:
        raise ColorNotReady(f"{service} idle color failed validation: " + "; ".join(f"{r.name}: {r.detail}" for r in failed))
    return [CheckRow(check=r.name, passed=r.passed, detail=r.detail) for r in results]


@task(name="switch traffic", task_run_name="switch {service} to {color}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def switch_traffic(service: str, color: str, record: str) -> SwitchResult:
    """Patch the Service selector to the new color (recorded first), and time it; no patch when it already selects it."""
    rt = runtime()
    entry = rt.records.mark(record, service, "switching").services[service]
    commit = None
    if rt.blue_green.live_color(service) != color:
        switch = rt.blue_green.switch(service, color)
        seconds, commit = switch.seconds, rt.gitops.last_commit() if rt.gitops else None
    else:
        seconds = 0.0
    rt.records.mark(record, service, "switched")
    get_run_logger().info("%s: traffic %s -> %s in %.3fs", service, entry.previous_color, color, seconds)
    return SwitchResult(service=service, from_color=entry.previous_color, to_color=color, seconds=seconds, commit=commit)


@task(name="retire old color", task_run_name="retire {service}-{color}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def retire_old_color(service: str, color: str, record: str) -> bool:
    """Scale the old color to zero and delete it (R-BG-4) once the release is recorded released; the next release deploys into it."""
    rt = runtime()
    retired = rt.blue_green.retire(service, color)
    rt.records.mark(record, service, "retired")
    return retired
