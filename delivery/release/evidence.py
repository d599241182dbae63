"""What one canary analysis interval saw, read from Prometheus for the canary and for stable."""

from __future__ import annotations

import math
from datetime import timedelta

from delivery.judge import IntervalEvidence, SideSample
from delivery.metrics.prometheus import PrometheusClient
from delivery.metrics.templates import QueryTarget, render_query
from delivery.policy.models import Policy


def side_sample(prometheus: PrometheusClient, policy: Policy, service: str, workload: str, interval: timedelta) -> SideSample | None:
    """Requests, 5xx and latency buckets of one workload over `interval`; None when any of them is unreadable."""
    namespace = policy.environments["production"].namespace
    target = QueryTarget(namespace, service, workload, ".*", interval)
    templates = policy.metric_templates
    requests = prometheus.query(render_query(templates["istio-requests"], target))
    errors = prometheus.query(render_query(templates["istio-requests-5xx"], target))
    buckets = prometheus.query_vector(render_query(templates["istio-latency-buckets"], target))
    if not (requests.conclusive and errors.conclusive and buckets.conclusive):
        return None
    bounds = sorted((_bound(series.labels.get("le", "")), series.value) for series in buckets.series)
    return SideSample(requests=requests.value, errors=errors.value, latency_buckets=tuple(bounds))


def interval_evidence(
    prometheus: PrometheusClient, policy: Policy, service: str, live_color: str, number: int
) -> IntervalEvidence:
    """The canary's and stable's samples over the analysis interval, and the canary's metric readings."""
    interval = policy.canary.analysis.interval
    namespace = policy.environments["production"].namespace
    canary_workload, stable_workload = f"{service}-canary", f"{service}-{live_color}"
    metrics = {
        metric.name: prometheus.query(
            render_query(policy.metric_templates[metric.template], QueryTarget(namespace, service, canary_workload, "canary", metric.interval))
        )
        for metric in policy.canary.analysis.metrics
    }
    return IntervalEvidence(
        number=number,
        canary=side_sample(prometheus, policy, service, canary_workload, interval),
        stable=side_sample(prometheus, policy, service, stable_workload, interval),
        metrics=metrics,
    )


def _bound(text: str) -> float:
    return math.inf if text == "+Inf" else float(text)
