"""The release metrics end to end: the flows push to a real Pushgateway, a real Prometheus scrapes it and the
sandbox's Istio telemetry, and every panel of the Grafana dashboard has data after a release and a rollback."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from delivery.metrics.dashboard import panel_queries, promql_for_prometheus
from delivery.sandbox.process import sandbox_process
from tests.conftest import REPO
from tests.release.conftest import fast_scenario, release_run, reports_root, set_fault, worker_settings
from tests.release.test_canary import CANARY_POLICY, approve_twice
from tests.waiting import wait_until

DASHBOARD = REPO / "infra" / "grafana" / "dashboards" / "releases.json"
SCRAPED_WITHIN = 60  # seconds: Prometheus scrapes every second


@pytest.fixture
def policy_changes():
    return {**CANARY_POLICY, "canary": {**CANARY_POLICY["canary"], "progression": "analysis"}}


@pytest.fixture
def sandbox(tmp_path, policy_file, monkeypatch):
    """The sandbox with a Pushgateway the flows push to and the machine's Prometheus scraping it (the watch and the
    canary still read the built-in Prometheus API, which answers at once)."""
    with sandbox_process(tmp_path, policy_file, "--scenario", str(fast_scenario(tmp_path)), "--monitoring") as endpoints:
        assert endpoints.pushgateway and endpoints.metrics_prometheus, "--monitoring starts both"
        settings = worker_settings(tmp_path, policy_file, endpoints, reports_root(tmp_path),
                                   RELEASE_LOCK=f"production-release-{tmp_path.name}", PUSHGATEWAY_URL=endpoints.pushgateway)
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        yield endpoints


def query(prometheus: str, expr: str) -> list[dict]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    return answer["data"]["result"]


def scraped(prometheus: str, expr: str) -> dict[str, float]:
    """`expr`'s series (labels as text) → value, once Prometheus has any; fails after SCRAPED_WITHIN seconds."""
    result = wait_until(lambda: query(prometheus, expr), SCRAPED_WITHIN, f"Prometheus to have {expr}", interval=0.5)
    return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}


def one(prometheus: str, expr: str) -> float:
    (value,) = scraped(prometheus, expr).values()
    return value


def test_prometheus_scrapes_the_release_metrics_and_every_dashboard_panel_has_data(prefect_api, sandbox, tmp_path):
    committed = datetime.now(timezone.utc) - timedelta(hours=2)
    released = release_run("v1.2.0", services=["user-service"], initiator="demo-dev", commit_time=committed.isoformat())
    approve_twice(prefect_api, released)
    assert released.join(180).is_completed()

    canary = release_run("v1.2.0", services=["trip-service"], strategy="canary", initiator="demo-dev")
    prefect_api.wait_for_pause(canary)
    set_fault(sandbox, versions={"trip-service:v1.2.0": {"latency_p50_ms": 700, "latency_p95_ms": 900}})
    approve_twice(prefect_api, canary)
    state = canary.join(180)
    assert state.is_failed() and "rolled back" in state.message

    prometheus = sandbox.metrics_prometheus
    production = 'environment="production"'
    assert one(prometheus, f'tripgen_release_total{{{production}, outcome="rolled_back"}} == 1') == 1
    assert one(prometheus, f'tripgen_release_total{{{production}, outcome="released"}}') == 1
    assert one(prometheus, f'tripgen_rollback_total{{{production}, service="trip-service"}} == 1') == 1
    assert one(prometheus, f'tripgen_deployment_status{{{production}, release="v1.2.0"}} == 2') == 2  # the canary, rolled back
    assert 0 < one(prometheus, f'tripgen_blue_green_switch_seconds{{{production}, service="user-service"}}') < 60
    assert 7200 < one(prometheus, f"tripgen_lead_time_seconds{{{production}}}") < 7200 + 300
    assert 0 < one(prometheus, f"tripgen_time_to_restore_seconds{{{production}}}") < 180
    assert len(scraped(prometheus, 'tripgen_quality_gate_passed{release="v1.2.0"}')) == 6
    # the canary's ratio was pushed at each analysis and deleted when it was aborted
    assert one(prometheus, 'max_over_time(tripgen_canary_error_ratio{service="trip-service"}[10m])') >= 0
    assert not query(prometheus, 'tripgen_canary_error_ratio{service="trip-service"}')
    assert set(scraped(prometheus, f'increase(tripgen_release_total{{{production}, outcome="released"}}[1h]) > 0'))

    panels = panel_queries(json.loads(DASHBOARD.read_text()))
    empty = [(title, expr) for title, expr in panels if not query(prometheus, promql_for_prometheus(expr))]
    assert panels and not empty, f"panels without data: {empty}"
