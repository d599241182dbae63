"""The release metrics (docs/kpi-metrics.md): computed from a hand-built audit log, pushed to a real Pushgateway."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from delivery.metrics.pushgateway import ReleaseMetrics
from delivery.metrics.release_metrics import canary_group, ended_canary, release_groups
from delivery.localdb import free_port
from delivery.sandbox.real_prometheus import start_pushgateway
from tests.kpi.test_kpi import DAY, at, demo_like, write  # noqa: F401 - `write` is the fixture demo_like needs

SERVICES = ["user-service", "location-service", "trip-service", "ai-service"]


def samples(groups) -> dict[tuple, float]:
    """(sample name, sorted labels) → value, over every group."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for g in groups for family in g.collect() for s in family.samples}


def value(found: dict[tuple, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted({"environment": "production", **labels}.items())))]


def test_the_demo_like_log_gives_the_numbers_worked_out_by_hand(write):
    found = samples(release_groups(demo_like(write, DAY), SERVICES))
    # v1.1.0 and v1.2.0 released, v1.3.0-faulty rolled back, v1.3.1 stopped by its gates: every outcome, zero or not
    assert [value(found, "tripgen_release_total", outcome=o) for o in ("released", "rolled_back", "stopped")] == [2, 1, 1]
    # the last run to end is v1.3.1 (12:01:05 the next day), which took 65 s and is the latest started: stopped = 3
    assert value(found, "tripgen_release_duration_seconds") == 65.0
    assert value(found, "tripgen_release_finished_timestamp_seconds") == at(DAY + timedelta(days=1), "12:01:05").timestamp()
    assert value(found, "tripgen_deployment_status", release="v1.3.1") == 3
    # v1.3.0-faulty: watch_failed at 09:06:00, last rollback_executed at 09:07:00
    assert value(found, "tripgen_time_to_restore_seconds") == 60.0
    assert not any(name == "tripgen_lead_time_seconds" for name, _ in found)  # no commit time was recorded
    history = {dict(labels)["release"]: (v, dict(labels)) for (name, labels), v in found.items()
               if name == "tripgen_release_history_duration_seconds"}
    assert {release: v for release, (v, _) in history.items()} == {"v1.1.0": 1800.0, "v1.2.0": 600.0, "v1.3.0-faulty": 430.0, "v1.3.1": 65.0}
    assert history["v1.3.0-faulty"][1] | {"outcome": "rolled_back", "initiator": "release-manager", "run": "run-b"} == history["v1.3.0-faulty"][1]
    # rollbacks: user-service and location-service once each (v1.3.0-faulty), the others never (zero, present)
    assert [value(found, "tripgen_rollback_total", service=s) for s in SERVICES] == [1, 1, 0, 0]
    # the last switch of each: user 3 s and location 5 s (v1.3.0-faulty), trip 6 s and ai 12 s (v1.2.0)
    assert [value(found, "tripgen_blue_green_switch_seconds", service=s) for s in SERVICES] == [3.0, 5.0, 6.0, 12.0]


def test_a_commit_time_gives_the_lead_time_of_the_last_released_run(write):
    write(at(DAY, "09:00:00"), "deployment_initiated", "v1.2.0", "run-a", commit_time=at(DAY, "08:00:00").isoformat())
    write(at(DAY, "09:20:00"), "deployment_completed", "v1.2.0", "run-a", outcome="released", seconds=1200.0)
    found = samples(release_groups(write.log.records(), SERVICES))
    assert value(found, "tripgen_lead_time_seconds") == 4800.0  # 08:00 → 09:20
    assert value(found, "tripgen_deployment_status", release="v1.2.0") == 0


def test_a_running_release_is_in_progress_and_an_empty_log_still_has_every_counter():
    assert samples(release_groups([], SERVICES)) == {
        **{("tripgen_release_total", (("environment", "production"), ("outcome", o))): 0 for o in ("released", "rolled_back", "stopped")},
        **{("tripgen_rollback_total", (("environment", "production"), ("service", s))): 0 for s in SERVICES},
    }


def test_a_canary_with_no_request_pushes_nothing_and_its_end_deletes_its_group():
    assert canary_group("trip-service", 0, 0) is None  # unknown is not 0%
    assert samples([canary_group("trip-service", 3, 600)]) == {
        ("tripgen_canary_error_ratio", (("environment", "production"), ("service", "trip-service"))): 0.005}
    ended = ended_canary({"event": "canary_aborted", "details": {"service": "trip-service"}})
    assert ended.job == "tripgen-canary" and dict(ended.key) == {"service": "trip-service", "environment": "production"}
    assert ended_canary({"event": "traffic_switched", "details": {"service": "trip-service"}}) is None


@pytest.fixture
def pushgateway(tmp_path):
    running = start_pushgateway(tmp_path / "pushgateway", free_port())
    yield running.url
    running.stop()


def gateway_samples(url: str) -> dict[tuple, float]:
    """What the Pushgateway serves to Prometheus: (name, labels) → value, of the tripgen_ metrics (an empty label,
    its `instance=""`, is no label to Prometheus)."""
    text = httpx.get(f"{url}/metrics").raise_for_status().text
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if v))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name.startswith("tripgen_")}


def test_pushes_reach_a_real_pushgateway_with_their_grouping_keys_and_an_ended_canary_is_deleted(pushgateway, write):
    metrics = ReleaseMetrics(pushgateway, SERVICES)
    records = demo_like(write, DAY)
    metrics.canary_interval("trip-service", 7, 1000)
    metrics.gates("v1.3.1", {"unit_tests": True, "code_quality": False})
    metrics.after_audit(records[-1], records)
    served = gateway_samples(pushgateway)
    canary = ("tripgen_canary_error_ratio", (("environment", "production"), ("job", "tripgen-canary"),
                                             ("service", "trip-service")))
    assert served[canary] == 0.007
    assert served[("tripgen_rollback_total", (("environment", "production"), ("job", "tripgen-release"),
                                              ("service", "location-service")))] == 1
    assert served[("tripgen_release_total", (("environment", "production"), ("job", "tripgen-release"),
                                             ("outcome", "released")))] == 2
    gate = ("tripgen_quality_gate_passed", (("environment", "production"), ("gate", "code_quality"),
                                            ("job", "tripgen-gates"), ("release", "v1.3.1")))
    assert served[gate] == 0
    metrics.after_audit({"event": "canary_promoted", "details": {"service": "trip-service"}}, records)
    assert canary not in gateway_samples(pushgateway)


def test_a_pushgateway_that_is_down_is_a_warning_and_the_release_goes_on(write):
    warnings = []
    records = demo_like(write, DAY)
    ReleaseMetrics(f"http://127.0.0.1:{free_port()}", SERVICES, warn=warnings.append).after_audit(records[-1], records)
    assert len(warnings) == 1 + len(SERVICES)  # the release-wide group and each service's
    assert all("metrics not pushed to the Pushgateway http://127.0.0.1:" in w and "Connection refused" in w for w in warnings)
