"""Canary steps for one service (R-CAN), each recorded first: deploy, open routes, set weights, analyse, promote."""

from __future__ import annotations

import time

from prefect import get_run_logger, task

from delivery.release.canary import CANARY
from delivery.release.evidence import interval_evidence
from delivery.release.retrying import CLUSTER_STEP, HTTP_STEP
from delivery.release.runtime import runtime
from tasks.bluegreen import ColorNotReady
from tasks.retry import transient_only


@task(name="deploy canary", task_run_name="deploy {service}-canary", retry_condition_fn=transient_only, **CLUSTER_STEP)
def deploy_canary(service: str, image: str, record: str) -> str:
    """Apply `<service>-canary` with the new digest, wait until available, open the Istio routes; returns the stable color.

    The stable color is the record's rollback target, so a retried step never takes the canary for stable.
    """
    rt = runtime()
    live = rt.records.mark(record, service, "deploying", new_color=CANARY).services[service].previous_color
    rt.canary.deploy(service, image)
    result = rt.canary.wait_available(service)
    if not result.done:
        raise ColorNotReady(f"{service}-canary is not available: {result.message}; production traffic stays on {live}")
    rt.records.mark(record, service, "canary", canary_weight=0)
    rt.canary.open_routes(service, live)
    get_run_logger().info("%s-canary runs %s beside %s-%s; routes open at 0%%", service, image, service, live)
    return live


@task(name="set canary weight", task_run_name="{service}: canary {weight}%", retry_condition_fn=transient_only, **CLUSTER_STEP)
def set_canary_weight(service: str, weight: float, record: str) -> dict[str, int]:
    """Record the weight, patch the VirtualService and verify the weights by reading them back."""
    rt = runtime()
    rt.records.mark(record, service, "canary", canary_weight=round(weight))
    weights = rt.canary.set_weight(service, weight)
    get_run_logger().info("%s: VirtualService reads %s", service, weights)
    return weights


@task(name="analyse interval", task_run_name="{service}: analysis {number}", retry_condition_fn=transient_only, **HTTP_STEP)
def analyse_interval(service: str, live_color: str, number: int):
    """Wait one analysis interval, then read the canary's and stable's evidence (its error ratio goes to the metrics)."""
    rt = runtime()
    time.sleep(rt.policy.canary.analysis.interval.total_seconds())
    evidence = interval_evidence(rt.prometheus, rt.policy, service, live_color, number)
    if rt.metrics and evidence.canary:
        rt.metrics.canary_interval(service, evidence.canary.errors, evidence.canary.requests)
    return evidence


@task(name="promote canary", task_run_name="promote {service}", retry_condition_fn=transient_only, **CLUSTER_STEP)
def promote_canary(service: str, image: str, live_color: str, record: str) -> str:
    """Stable gets the new digest and is waited on; routes back to 100% stable; the canary to zero."""
    rt = runtime()
    rt.records.mark(record, service, "promoting")
    result = rt.canary.promote(service, image, live_color)
    if not result.done:
        raise ColorNotReady(f"{service}-{live_color} did not roll out the promoted image: {result.message}")
    rt.records.mark(record, service, "promoted", canary_weight=0)
    return result.message
