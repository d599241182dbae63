"""The watch after a switch (R-BG-3, R-MON): checks on an interval, a progress and a table artifact."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.runtime import flow_run
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from delivery.kube.metrics import PodResources
from delivery.release.retrying import LOCAL_STEP
from delivery.release.runtime import region_details, runtime
from delivery.release.state import WatchResult
from delivery.release.watch import STOP_SIGNALS, Check, WatchTarget, run_watch
from tasks.notifications import alert, send_alert


@task(name="watch", task_run_name="watch {service} ({environment})", **LOCAL_STEP)
def watch_service(environment: str, service: str, workload: str, version: str, release: str, stop: str) -> WatchResult:
    """Watch one service for the environment's duration; returns the verdict, never switches traffic itself.

    The batch's stop signal `stop` ends it at once (cancelled) when another service's watch failed.
    """
    rt, log = runtime(), get_run_logger()
    policy = rt.policy
    env = policy.environments[environment]
    key = f"watch-{environment}-{service}"
    progress = create_progress_artifact(0.0, key=key, description=f"Watch of {service} ({workload}) in {env.namespace}")

    alerted: list[Check] = []

    def on_check(check: Check, percent_done: float) -> None:
        update_progress_artifact(progress, percent_done)
        if check.verdict == "alert":
            log.warning("ALERT %s: %s", service, check.reason)
            if not alerted:
                alerted.append(check)
                numbers = {"5xx rate %": check.error_rate_percent, "requests": str(check.requests), "check": check.number}
                send_alert(alert(release, "high", f"{service} 5xx rate above the alert threshold in {environment}", numbers, service))
        elif check.verdict != "ok":
            log.warning("check %d of %s: %s: %s", check.number, service, check.verdict, check.reason)
        else:
            log.info("check %d of %s: %s requests, %s 5xx, p95 %ss", check.number, service, check.requests, check.errors, check.response_time_seconds)

    target = WatchTarget(env.namespace, service, workload, version)
    selector = rt.deployments.selector_of(env.namespace, workload)
    pods = lambda: PodResources(rt.kube).sample(env.namespace, selector)  # noqa: E731
    tally = run_watch(rt.prometheus, policy, target, env.watch, on_check, STOP_SIGNALS.get(stop), pods)
    failing = tally.must_roll_back
    if failing:
        STOP_SIGNALS.get(stop).set()
        rt.audit.append("watch_failed", "watch", release, flow_run_id=str(flow_run.id), service=service,
                        environment=environment, check=failing.number, reason=failing.reason, **region_details())
    create_table_artifact([c.row() for c in tally.checks] or [{"result": "cancelled"}], key=key,
                          description=f"Watch checks of {service} in {environment}")
    if tally.cancelled:
        log.info("watch of %s cancelled after %d checks: another service's watch failed", service, len(tally.checks))
        reason = f"cancelled after {len(tally.checks)} checks: another service's watch failed"
    else:
        reason = failing.reason if failing else f"{len(tally.checks)} checks within thresholds"
    return WatchResult(service=service, passed=failing is None and not tally.cancelled, reason=reason,
                       checks=len(tally.checks), failed_checks=tally.failed_checks, cancelled=tally.cancelled)
