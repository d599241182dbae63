"""The sandbox's Prometheus API: the PromQL subset against hand-computed values, the HTTP envelope,
and the policy's metric templates over traffic through the gateway."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import timedelta

import httpx
import pytest

from delivery.metrics.templates import QueryTarget, render_query
from delivery.policy.default_queries import DEFAULT_QUERIES
from delivery.policy.models import MetricTemplate
from delivery.sandbox.behavior import BehaviorBook, BehaviorRule, VersionBehavior
from delivery.sandbox.gateway import build_gateway_app
from delivery.sandbox.promql import (
    Evaluator,
    ExecutionError,
    bucket_quantile,
    build_prometheus_app,
    format_value,
    parse_query,
)
from delivery.sandbox.telemetry import SampleHistory, Telemetry, series_key
from tests.sandbox.test_gateway import call, trip_service_store
from tests.sandbox.test_telemetry import FakeClock

# --- the evaluator on synthetic samples ---------------------------------------------------------------


def history_of(series: dict[tuple, list[float]], times: list[float]) -> SampleHistory:
    """A history with one snapshot per time; `series` maps (name, labels...) to values aligned with `times`."""
    history = SampleHistory(retention_seconds=3600)
    keys = {spec: series_key(spec[0], spec[1:]) for spec in series}
    for index, at in enumerate(times):
        history.snapshot(at, [(keys[spec], values[index]) for spec, values in series.items() if values[index] is not None])
    return history


def evaluate(history: SampleHistory, query: str, at: float):
    value = Evaluator(history).evaluate(parse_query(query), at)
    if not isinstance(value, dict):
        return value
    return {tuple(k for k in labels if k[0] != "__name__"): v for labels, v in value.items()}


def one(history: SampleHistory, query: str, at: float) -> float:
    (value,) = evaluate(history, query, at).values()
    return value


TEN_SECONDS = [5.0, 15.0, 25.0, 35.0, 45.0, 55.0]


def test_rate_extrapolates_to_the_window_edges() -> None:
    history = history_of({("c_total",): [100, 110, 120, 130, 140, 150]}, TEN_SECONDS)
    # increase 50 over 50 s sampled; first/last are 5 s from the [0, 60] edges: 50 * 60/50 = 60
    assert one(history, "increase(c_total[1m])", 60) == pytest.approx(60.0)
    assert one(history, "rate(c_total[1m])", 60) == pytest.approx(1.0)


def test_rate_counts_a_counter_reset_as_an_increase_from_zero() -> None:
    history = history_of({("c_total",): [100, 110, 120, 5, 15, 25]}, TEN_SECONDS)
    # 10 + 10 + 5 + 10 + 10 = 45 over 50 s, extrapolated by 60/50
    assert one(history, "increase(c_total[1m])", 60) == pytest.approx(54.0)
    assert one(history, "rate(c_total[1m])", 60) == pytest.approx(0.9)


def test_rate_of_a_young_counter_extrapolates_no_further_than_zero() -> None:
    history = history_of({("c_total",): [None, None, None, 10, 20, 30]}, TEN_SECONDS)
    # samples at 35..55; the counter reaches zero 10 s before the first: increase 20 * (20 + 10 + 5) / 20 = 35
    assert one(history, "increase(c_total[1m])", 60) == pytest.approx(35.0)


def test_a_single_sample_gives_no_rate() -> None:
    history = history_of({("c_total",): [None, None, None, None, None, 3]}, TEN_SECONDS)
    assert evaluate(history, "rate(c_total[1m])", 60) == {}
    assert evaluate(history, "sum(rate(c_total[1m]))", 60) == {}


def test_irate_uses_the_last_two_samples() -> None:
    history = history_of({("c_total",): [0, 10, 20, 30, 40, 70]}, TEN_SECONDS)
    assert one(history, "irate(c_total[1m])", 60) == pytest.approx(3.0)


def test_range_selection_is_closed_and_offset_moves_it() -> None:
    history = history_of({("c_total",): [0, 10, 20, 30, 40, 50]}, TEN_SECONDS)
    assert one(history, "increase(c_total[20s])", 35) == pytest.approx(20.0 * 20 / 20)  # samples at 15, 25, 35
    assert one(history, "c_total offset 20s", 55) == 30.0


def test_instant_selectors_take_the_latest_sample_within_the_lookback() -> None:
    history = history_of({("g",): [1, 2, 3, 4, 5, 6]}, TEN_SECONDS)
    assert one(history, "g", 50) == 5.0
    assert evaluate(history, "g", 55 + 301) == {}


def test_matchers_are_fully_anchored_and_a_missing_label_is_empty() -> None:
    times = [0.0]
    history = history_of({
        ("r_total", ("app", "trip-service"), ("code", "200")): [1],
        ("r_total", ("app", "trip-service"), ("code", "503")): [2],
        ("r_total", ("app", "trip-service-canary"), ("code", "500")): [4],
        ("r_total", ("app", "ai-service")): [8],
    }, times)
    assert one(history, 'sum(r_total{app=~"trip-service"})', 0) == 3
    assert one(history, 'sum(r_total{app=~"trip.*"})', 0) == 7
    assert one(history, 'sum(r_total{code!~"5.*"})', 0) == 9
    assert one(history, 'sum(r_total{code=~"5.."})', 0) == 6
    assert one(history, 'sum(r_total{code=""})', 0) == 8
    assert one(history, 'sum(r_total{app!="ai-service",code!="503"})', 0) == 5


def test_aggregations_by_and_without() -> None:
    history = history_of({
        ("m", ("app", "a"), ("pod", "1")): [1],
        ("m", ("app", "a"), ("pod", "2")): [3],
        ("m", ("app", "b"), ("pod", "3")): [10],
    }, [0.0])
    assert evaluate(history, "sum by (app) (m)", 0) == {(("app", "a"),): 4, (("app", "b"),): 10}
    assert evaluate(history, "avg without (pod) (m)", 0) == {(("app", "a"),): 2, (("app", "b"),): 10}
    assert evaluate(history, "max(m)", 0) == {(): 10}
    assert evaluate(history, "min(m) by (app)", 0) == {(("app", "a"),): 1, (("app", "b"),): 10}
    assert evaluate(history, "count(m)", 0) == {(): 3}


def test_binary_operators_match_one_to_one_and_with_scalars() -> None:
    history = history_of({
        ("ok", ("app", "a"), ("pod", "1")): [9],
        ("all", ("app", "a"), ("pod", "1")): [10],
        ("all", ("app", "b"), ("pod", "2")): [4],
    }, [0.0])
    assert evaluate(history, "ok / all * 100", 0) == {(("app", "a"), ("pod", "1")): 90}
    assert evaluate(history, "sum by (app) (ok) / on(app) sum by (app) (all)", 0) == {(("app", "a"),): 0.9}
    assert evaluate(history, "ok / ignoring(pod) all", 0) == {(("app", "a"),): 0.9}
    assert evaluate(history, "all > 5", 0) == {(("app", "a"), ("pod", "1")): 10}
    assert evaluate(history, "all > bool 5", 0) == {(("app", "a"), ("pod", "1")): 1, (("app", "b"), ("pod", "2")): 0}
    assert evaluate(history, "2 * all - 1", 0) == {(("app", "a"), ("pod", "1")): 19, (("app", "b"), ("pod", "2")): 7}
    assert evaluate(history, "-sum(all)", 0) == {(): -14}
    assert evaluate(history, "(1 + 2) * 3", 0) == 9.0
    assert evaluate(history, "ok or all", 0) == {
        (("app", "a"), ("pod", "1")): 9, (("app", "b"), ("pod", "2")): 4,
    }
    assert evaluate(history, "all unless ok", 0) == {(("app", "b"), ("pod", "2")): 4}
    assert evaluate(history, "all and ok", 0) == {(("app", "a"), ("pod", "1")): 10}
    assert evaluate(history, "sum(nothing) or vector(0)", 0) == {(): 0}


def test_division_by_zero_follows_ieee() -> None:
    history = history_of({("z",): [0]}, [0.0])
    assert math.isnan(evaluate(history, "0 / 0", 0))
    assert evaluate(history, "1 / 0", 0) == math.inf
    assert math.isnan(one(history, "z / z", 0))
    assert one(history, "-1 / z", 0) == -math.inf


def test_ambiguous_matching_is_an_execution_error() -> None:
    history = history_of(
        {("a", ("x", "1"), ("y", "1")): [1], ("a", ("x", "1"), ("y", "2")): [1], ("b", ("x", "1")): [1]}, [0.0]
    )
    with pytest.raises(ExecutionError):
        evaluate(history, "b / on(x) a", 0)


@pytest.mark.parametrize(("q", "expected"), [
    (0.05, 0.05),    # bucket (0, 0.1]: 0 + 0.1 * 5/10
    (0.5, 0.42),     # bucket (0.1, 0.5]: 0.1 + 0.4 * 40/50
    (0.9, 1.0),      # rank 90 reaches the 1.0 bucket's count exactly: its upper bound
    (0.95, 1.0),     # rank in +Inf: the highest finite bound
    (1.5, math.inf),
    (-1, -math.inf),
])
def test_bucket_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    buckets = [(0.1, 10), (0.5, 60), (1.0, 90), (math.inf, 100)]
    assert bucket_quantile(q, buckets) == pytest.approx(expected)


def test_bucket_quantile_without_observations_or_inf_bucket_is_nan() -> None:
    assert math.isnan(bucket_quantile(0.5, [(0.1, 0), (math.inf, 0)]))
    assert math.isnan(bucket_quantile(0.5, [(0.1, 3), (0.5, 5)]))


def test_histogram_quantile_of_summed_bucket_rates() -> None:
    les = {"0.1": (0, 10), "0.5": (0, 60), "1.0": (0, 90), "+Inf": (0, 100)}
    series = {}
    for pod in ("1", "2"):  # two pods with identical increases: the sum doubles every bucket
        for le, (start, end) in les.items():
            series[("h_bucket", ("le", le), ("pod", pod))] = [start, end / 2, end]
    history = history_of(series, [0.0, 30.0, 60.0])
    query = "histogram_quantile(0.5, sum(rate(h_bucket[1m])) by (le))"
    assert one(history, query, 60) == pytest.approx(0.42)
    per_pod = evaluate(history, "histogram_quantile(0.5, rate(h_bucket[1m]))", 60)
    assert per_pod == {(("pod", "1"),): pytest.approx(0.42), (("pod", "2"),): pytest.approx(0.42)}


@pytest.mark.parametrize(("value", "text"), [
    (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (100.0, "100"), (1.5, "1.5"),
    (1e-7, "0.0000001"), (1e21, "1000000000000000000000"), (0.1 + 0.2, "0.30000000000000004"),
])
def test_values_render_as_prometheus_json_does(value: float, text: str) -> None:
    assert format_value(value) == text


# --- the HTTP API ---------------------------------------------------------------------------------------


def api_get(app, path: str, **params) -> httpx.Response:
    (response,) = call(app, [("GET", httpx.URL(path, params=params).raw_path.decode(), {})])
    return response


def counter_app() -> tuple:
    clock = FakeClock(1000.0)
    telemetry = Telemetry(clock=clock)
    key = series_key("c_total", [("job", "x")])
    for second in range(61):
        telemetry.history.snapshot(1000.0 + second, [(key, float(second * 2))])
    clock.advance(60)
    return build_prometheus_app(telemetry), telemetry


def test_an_instant_query_answers_prometheus_envelope() -> None:
    app, _ = counter_app()
    body = api_get(app, "/api/v1/query", query="sum(rate(c_total[1m]))").json()
    assert body == {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1060, "2"]}]}}
    scalar = api_get(app, "/api/v1/query", query="0/0", time="1030.5").json()
    assert scalar["data"] == {"resultType": "scalar", "result": [1030.5, "NaN"]}
    raw = api_get(app, "/api/v1/query", query="c_total", time="1970-01-01T00:16:40Z").json()
    assert raw["data"]["result"] == [{"metric": {"__name__": "c_total", "job": "x"}, "value": [1000, "0"]}]


def test_a_post_form_query_works_like_get() -> None:
    app, _ = counter_app()
    (response,) = call(app, [("POST", "/api/v1/query?time=1060", {"content-type": "application/x-www-form-urlencoded"})])
    assert response.status_code == 400  # no query given

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            return await client.post("/api/v1/query", data={"query": "vector(1) * 2"})

    assert asyncio.run(post()).json()["data"]["result"] == [{"metric": {}, "value": [1060, "2"]}]


def test_a_range_query_answers_a_matrix() -> None:
    app, _ = counter_app()
    body = api_get(app, "/api/v1/query_range", query="rate(c_total[10s])", start="1030", end="1040", step="5s").json()
    assert body["data"]["resultType"] == "matrix"
    assert body["data"]["result"] == [{"metric": {"job": "x"}, "values": [[1030, "2"], [1035, "2"], [1040, "2"]]}]


@pytest.mark.parametrize(("params", "fragment"), [
    ({"query": "sum("}, "parse error"),
    ({"query": "topk(3, c_total)"}, "topk"),
    ({"query": "rate(c_total[5m:1m])"}, "subquery"),
    ({"query": "label_replace(c_total, 'a', 'b', 'c', 'd')"}, "label_replace"),
    ({"query": "c_total", "time": "yesterday"}, 'invalid parameter "time"'),
])
def test_bad_queries_are_400_bad_data_naming_the_problem(params: dict, fragment: str) -> None:
    app, _ = counter_app()
    response = api_get(app, "/api/v1/query", **params)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "error" and body["errorType"] == "bad_data" and fragment in body["error"]


def test_range_query_parameters_are_checked() -> None:
    app, _ = counter_app()
    assert "before start" in api_get(app, "/api/v1/query_range", query="1", start="10", end="5", step="1").json()["error"]
    assert "11,000" in api_get(app, "/api/v1/query_range", query="1", start="0", end="100000", step="1").json()["error"]
    assert api_get(app, "/api/v1/query_range", query="1", start="0", end="5", step="0").status_code == 400


def test_execution_errors_are_422() -> None:
    app, telemetry = counter_app()
    telemetry.history.snapshot(1061.0, [(series_key("d", [("a", "1")]), 1.0), (series_key("d", [("a", "2")]), 1.0)])
    response = api_get(app, "/api/v1/query", query="vector(1) + on() d", time="1061")
    assert response.status_code == 422 and response.json()["errorType"] == "execution"


def test_readiness_health_and_buildinfo() -> None:
    app, _ = counter_app()
    assert api_get(app, "/-/ready").status_code == 200
    assert api_get(app, "/-/healthy").text.startswith("Prometheus Server is Healthy")
    info = api_get(app, "/api/v1/status/buildinfo").json()
    assert info["status"] == "success" and info["data"]["version"].startswith("2.")


# --- the policy's templates over traffic through the gateway -------------------------------------------

def template(name: str, *, workload: str = ".*", version: str = ".*") -> str:
    """The policy's metric template `name` rendered for trip-service in production over 1m."""
    query, unit = DEFAULT_QUERIES[name]
    target = QueryTarget("production", "trip-service", workload, version, timedelta(minutes=1))
    return render_query(MetricTemplate(query=query, unit=unit), target)


ISTIO = 'reporter="destination",destination_workload_namespace="production",destination_workload=~"WORKLOAD"'
ERROR_RATE_5M = (  # R-MON's query as the issue states it
    'sum(rate(http_requests_total{namespace="production",app="trip-service",version=~"VERSION",status=~"5.."}[5m]))'
    ' / sum(rate(http_requests_total{namespace="production",app="trip-service",version=~"VERSION"}[5m])) * 100'
)
ERROR_COUNT = 'sum(increase(istio_requests_total{' + ISTIO + ',response_code=~"5.."}[1m]))'
BUCKETS = "sum(increase(istio_request_duration_milliseconds_bucket{" + ISTIO + "}[1m])) by (le)"


def drive(app, clock: FakeClock, telemetry: Telemetry, requests: list[tuple[str, str, dict]], seconds: int) -> None:
    """Send `requests` once per fake second for `seconds`, snapshotting after each second."""
    telemetry.sample()
    for _ in range(seconds):
        call(app, requests)
        clock.advance(1)
        telemetry.sample()


def query_value(prometheus, query: str) -> float:
    body = api_get(prometheus, "/api/v1/query", query=query).json()
    (series,) = body["data"]["result"]
    return float(series["value"][1])


def tolerance(rate: float, n: int) -> float:
    """Four standard deviations of an observed proportion, in percent."""
    return 400 * math.sqrt(rate * (1 - rate) / n)


def test_error_rates_of_a_faulty_and_a_healthy_version_through_the_templates() -> None:
    clock = FakeClock()
    telemetry = Telemetry(clock=clock)
    fast = dict(latency_p50_ms=0.01, latency_p95_ms=0.02)
    behaviors = BehaviorBook((
        BehaviorRule("*-faulty", VersionBehavior(error_rate=0.05, **fast)),
        BehaviorRule("*", VersionBehavior(error_rate=0.0005, **fast)),
    ))
    gateway = build_gateway_app(trip_service_store("blue", "v1.3.0-faulty"), behaviors, telemetry, random.Random(4))
    per_second = 50
    blue = ("GET", "/api/trips", {})
    green = ("GET", "/api/trips", {"host": "validation.tripgen.com"})
    drive(gateway, clock, telemetry, [blue] * per_second + [green] * per_second, 60)
    prometheus = build_prometheus_app(telemetry)
    n = per_second * 59  # the first second's requests precede the first sample of their series

    faulty = query_value(prometheus, template("error-rate-5xx", version="green"))
    assert abs(faulty - 5.0) <= tolerance(0.05, n)
    healthy = query_value(prometheus, template("error-rate-5xx", version="blue"))
    assert 0 <= healthy <= 0.05 + tolerance(0.0005, n)
    assert query_value(prometheus, ERROR_RATE_5M.replace("VERSION", "green")) == pytest.approx(faulty, abs=0.5)

    faulty_success = query_value(prometheus, template("request-success-rate", workload="trip-service-green"))
    assert abs(100 - faulty_success - faulty) < 1.0  # same requests, same verdict from Istio's metric
    assert query_value(prometheus, template("request-success-rate", workload="trip-service-blue")) > 99.5

    errors = query_value(prometheus, ERROR_COUNT.replace("WORKLOAD", "trip-service-green"))
    assert abs(errors - 0.05 * per_second * 60) <= 4 * math.sqrt(0.05 * per_second * 60)
    buckets = api_get(prometheus, "/api/v1/query", query=BUCKETS.replace("WORKLOAD", "trip-service-green")).json()
    by_le = {s["metric"]["le"]: float(s["value"][1]) for s in buckets["data"]["result"]}
    assert by_le["+Inf"] == pytest.approx(per_second * 60, rel=0.05) and by_le["0.5"] == by_le["+Inf"]
    assert query_value(prometheus, template("request-duration", workload="trip-service-green")) < 1.0


def test_p95_of_a_slow_version_is_near_1500_ms() -> None:
    """The one slow test (~4 s): 1 then 300 concurrent requests really wait ~0.9-1.5 s each."""
    clock = FakeClock()
    telemetry = Telemetry(clock=clock)
    behaviors = BehaviorBook((
        BehaviorRule("*-slow", VersionBehavior(error_rate=0.0, latency_p50_ms=900, latency_p95_ms=1500)),
        BehaviorRule("*", VersionBehavior(error_rate=0.0, latency_p50_ms=0.01, latency_p95_ms=0.02)),
    ))
    gateway = build_gateway_app(trip_service_store("green", "v1.3.0-slow"), behaviors, telemetry, random.Random(8))
    call(gateway, [("GET", "/api/trips", {})])  # creates the series before the first sample
    clock.advance(1)
    telemetry.sample()
    call(gateway, [("GET", "/api/trips", {})] * 300)
    clock.advance(1)
    telemetry.sample()
    prometheus = build_prometheus_app(telemetry)
    p95 = query_value(prometheus, template("response-time-p95", version="green"))
    assert 1.3 <= p95 <= 1.75  # sampling error of p95 over 300 requests plus 0.25 s buckets
    p99_ms = query_value(prometheus, template("request-duration", workload="trip-service-green"))
    assert 1000 < p99_ms <= 2500  # Istio's buckets around it are (1000, 2500]
