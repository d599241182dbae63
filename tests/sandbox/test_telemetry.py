"""Request metrics under Istio's and Spring Boot's names, their exposition, and the sample history."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from delivery.sandbox.telemetry import ISTIO_DURATION_BUCKETS_MS, SampleHistory, Telemetry, series_key, workload_of
from tests.sandbox.test_traffic import make_pod
from tests.waiting import async_never_within, async_wait_until


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


BLUE = make_pod("trip-service-blue-7f9c6d-a", "trip-service", "blue")
GREEN = make_pod("trip-service-green-7f9c6d-a", "trip-service", "green")


def families(telemetry: Telemetry) -> dict:
    return {f.name: f for f in text_string_to_metric_families(telemetry.exposition().decode())}


def test_the_workload_is_the_deployment_owning_the_pod() -> None:
    assert workload_of(BLUE) == "trip-service-blue"
    no_hash_label = make_pod("p", "trip-service", "canary")
    del no_hash_label["metadata"]["labels"]["pod-template-hash"]
    assert workload_of(no_hash_label) == "trip-service-canary"
    unowned = {"metadata": {"name": "p", "labels": {"app": "ai-service", "version": "green"}}}
    assert workload_of(unowned) == "ai-service-green"


def test_a_request_is_counted_with_istios_labels() -> None:
    telemetry = Telemetry()
    telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, 0.042)
    telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 503, 0.3)
    samples = families(telemetry)["istio_requests"].samples
    assert {s.labels["response_code"]: s.value for s in samples} == {"200": 1.0, "503": 1.0}
    assert samples[0].labels == {
        "reporter": "destination",
        "source_workload": "istio-ingressgateway",
        "destination_workload": "trip-service-blue",
        "destination_workload_namespace": "production",
        "destination_service_name": "trip-service",
        "destination_service_namespace": "production",
        "destination_app": "trip-service",
        "destination_version": "blue",
        "response_code": "200",
        "request_protocol": "http",
    }


def test_durations_fill_istios_default_millisecond_buckets() -> None:
    telemetry = Telemetry()
    for seconds in (0.0004, 0.042, 0.042, 1.2):
        telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, seconds)
    samples = families(telemetry)["istio_request_duration_milliseconds"].samples
    buckets = {s.labels["le"]: s.value for s in samples if s.name.endswith("_bucket")}
    assert len(buckets) == len(ISTIO_DURATION_BUCKETS_MS) + 1
    counts = [buckets[le] for le in ("0.5", "25.0", "50.0", "1000.0", "2500.0", "+Inf")]
    assert counts == [1, 1, 3, 3, 4, 4]
    total = next(s.value for s in samples if s.name.endswith("_sum"))
    assert total == pytest.approx(1284.4)


def test_spring_metrics_carry_namespace_app_version_and_the_request() -> None:
    telemetry = Telemetry()
    telemetry.record_request(GREEN, "trip-service", "GET", "/api/trips/health", 200, 0.2)
    found = families(telemetry)
    (counter,) = found["http_requests"].samples
    assert counter.labels == {
        "namespace": "production", "app": "trip-service", "version": "green", "pod": "trip-service-green-7f9c6d-a",
        "method": "GET", "uri": "/api/trips/health", "status": "200",
    }
    buckets = {s.labels["le"]: s.value for s in found["http_server_requests_seconds"].samples if s.name.endswith("_bucket")}
    assert (buckets["0.15"], buckets["0.2"], buckets["+Inf"]) == (0, 1, 1)


def test_a_pod_without_a_version_label_reports_unknown() -> None:
    telemetry = Telemetry()
    pod = make_pod("trip-service-5c7d9-a", "trip-service", "x")
    del pod["metadata"]["labels"]["version"]
    telemetry.record_request(pod, "trip-service", "GET", "/", 404, 0.01)
    (sample,) = families(telemetry)["istio_requests"].samples
    assert sample.labels["destination_version"] == "unknown"


def test_the_exposition_has_no_created_series() -> None:
    telemetry = Telemetry()
    telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, 0.01)
    text = telemetry.exposition().decode()
    assert "_created" not in text
    assert "# TYPE istio_requests_total counter" in text
    assert "# TYPE istio_request_duration_milliseconds histogram" in text


def test_snapshots_keep_each_series_value_at_every_sample_time() -> None:
    clock = FakeClock(100.0)
    telemetry = Telemetry(clock=clock)
    telemetry.sample()  # nothing yet
    telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, 0.01)
    for _ in range(3):
        clock.advance(1)
        telemetry.sample()
        telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, 0.01)
    clock.advance(1)
    telemetry.sample()
    (key,) = telemetry.history.series("istio_requests_total")
    assert telemetry.history.samples(key, 0, 1e12) == [(101.0, 1.0), (102.0, 2.0), (103.0, 3.0), (104.0, 4.0)]
    clock.advance(1)
    telemetry.sample()  # unchanged: the value repeats
    assert telemetry.history.samples(key, 103.5, 105) == [(104.0, 4.0), (105.0, 4.0)]
    assert telemetry.history.last_sample(key, 0, 104.5) == (104.0, 4.0)


def test_a_clock_that_did_not_move_defers_the_snapshot() -> None:
    clock = FakeClock(100.0)
    telemetry = Telemetry(clock=clock)
    telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, 0.01)
    telemetry.sample()
    telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, 0.01)
    telemetry.sample()  # same time: kept for the next snapshot
    clock.advance(1)
    telemetry.sample()
    (key,) = telemetry.history.series("istio_requests_total")
    assert telemetry.history.samples(key, 0, 1e12) == [(100.0, 1.0), (101.0, 2.0)]


def test_history_keeps_the_retention_window_and_stays_bounded() -> None:
    history = SampleHistory(retention_seconds=30)
    key = series_key("c_total", [("a", "b")])
    for second in range(600):
        history.snapshot(float(second), [(key, float(second))])
    samples = history.samples(key, 0, 1e9)
    assert samples[0] == (569.0, 569.0) and samples[-1] == (599.0, 599.0) and len(samples) == 31
    assert len(history._series[key].times) <= 31 + 60  # trimmed every 60 snapshots
    with pytest.raises(ValueError):
        history.snapshot(599.0, [])


def test_a_series_unchanged_for_longer_than_the_retention_keeps_its_value() -> None:
    history = SampleHistory(retention_seconds=10)
    key = series_key("c_total", [])
    history.snapshot(0.0, [(key, 7.0)])
    for second in range(1, 200):
        history.snapshot(float(second), [])
    assert history.samples(key, 195, 199) == [(float(s), 7.0) for s in range(195, 200)]


def test_sampling_runs_in_the_event_loop_until_stopped() -> None:
    async def run() -> list:
        telemetry = Telemetry(sample_interval_seconds=0.01)
        telemetry.record_request(BLUE, "trip-service", "GET", "/api/trips", 200, 0.01)
        telemetry.start_sampling()

        def samples() -> list:
            keys = telemetry.history.series("istio_requests_total")
            return telemetry.history.samples(keys[0], 0, 1e12) if keys else []

        await async_wait_until(lambda: len(samples()) >= 3, 30, "3 snapshots")
        await telemetry.stop_sampling()
        stopped = len(samples())
        await async_never_within(lambda: len(samples()) != stopped, 0.1, "snapshots after stop_sampling")
        (key,) = telemetry.history.series("istio_requests_total")
        return telemetry.history.samples(key, 0, 1e12)

    samples = asyncio.run(run())
    assert len(samples) >= 3 and all(value == 1.0 for _, value in samples)
