"""Canary steps for one service (R-CAN): deploy, open routes, set weights, analyse, promote, abort."""

from __future__ import annotations

import time

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from delivery.release.evidence import interval_evidence
from delivery.units import format_duration
from delivery.release.retrying import CLUSTER_STEP, HTTP_STEP
from delivery.release.runtime import runtime
from tasks.bluegreen import ColorNotReady
from tasks.notifications import alert, send_alert
from tasks.retry import transient_only


@task(name="deploy canary", task_run_name="deploy {service}-canary", retry_condition_fn=transient_only, **CLUSTER_STEP)
def deploy_canary(service: str, image: str) -> str:
    """Apply `<service>-canary` with the new digest, wait until available, open the Istio routes; returns the live color."""
    rt = runtime()
    live = rt.blue_green.live_color(service)
    rt.canary.deploy(service, image)
    result = rt.canary.wait_available(service)
    if not result.done:
        raise ColorNotReady(f"{service}-canary is not available: {result.message}; production traffic stays on {live}")
    rt.canary.open_routes(service, live)
    get_run_logger().info("%s-canary runs %s beside %s-%s; routes open at 0%%", service, image, service, live)
    return live


@task(name="set canary weight", task_run_name="{service}: canary {weight}%", retry_condition_fn=transient_only, **CLUSTER_STEP)
def set_canary_weight(service: str, weight: float) -> dict:
    """Patch the VirtualService and verify the weights by reading them back."""
    weights = runtime().canary.set_weight(service, weight)
    get_run_logger().info("%s: VirtualService reads %s", service, weights)
    return weights


@task(name="analyse interval", task_run_name="{service}: analysis {number}", retry_condition_fn=transient_only, **HTTP_STEP)
def analyse_interval(service: str, live_color: str, number: int):
    """Wait one analysis interval, then read the canary's and stable's evidence."""
    rt = runtime()
    time.sleep(rt.policy.canary.analysis.interval.total_seconds())
    return interval_evidence(rt.prometheus, rt.policy, service, live_color, number)


@task(name="promote canary", task_run_name="promote {service}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def promote_canary(service: str, image: str, live_color: str) -> str:
    """Stable gets the new digest and is waited on; routes back to 100% stable; the canary to zero."""
    result = runtime().canary.promote(service, image, live_color)
    if not result.done:
        raise ColorNotReady(f"{service}-{live_color} did not roll out the promoted image: {result.message}")
    return result.message


@task(name="abort canary", task_run_name="abort {service} canary", retry_condition_fn=transient_only, **CLUSTER_STEP)
def abort_canary(service: str, live_color: str, tag: str, reason: str) -> str:
    """100% stable at once, canary to zero, its logs and events kept (R-CAN-4); returns the archive path."""
    rt = runtime()
    rt.canary.abort(service, live_color)
    archive = rt.canary.archive(service, tag, rt.settings.audit_log.parent / "canary-logs")
    create_markdown_artifact(
        f"# {service} canary aborted\n\n{reason}\n\nLogs and events kept in `{archive}` "
        f"for {format_duration(rt.policy.canary.log_retention)} (R-CAN-4).",
        key=f"canary-abort-{service}",
        description=f"{service} canary aborted",
    )
    message = alert(tag, "high", f"{service} canary of {tag} aborted", {"reason": reason, "logs kept in": str(archive)}, service)
    send_alert(message, channels=list(rt.policy.canary.notify))
    return str(archive)


@task(name="restore stable", task_run_name="restore {service} to its previous image", retry_condition_fn=transient_only, **CLUSTER_STEP)
def restore_stable(service: str, previous_image: str, live_color: str) -> dict:
    """Undo a promotion: the stable Deployment runs the image it ran before this release."""
    rt = runtime()
    started = time.perf_counter()
    rt.deployments.set_image(rt.canary.namespace, f"{service}-{live_color}", service, previous_image)
    result = rt.deployments.wait_rolled_out(rt.canary.namespace, f"{service}-{live_color}", rt.policy.validation.rollout_timeout.total_seconds())
    if not result.done:
        raise ColorNotReady(f"{service}-{live_color} did not roll back to {previous_image}: {result.message}")
    return {"service": service, "from": "promoted", "to": previous_image, "seconds": time.perf_counter() - started}
