"""The Prometheus adapter over respx: values, and every way a reading becomes inconclusive."""

from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx

from delivery.metrics.prometheus import PrometheusClient
from delivery.metrics.templates import QueryTarget, render_query
from delivery.policy.models import MetricTemplate, Policy

URL = "http://prometheus.test:9090"


def _vector(*values, labels=None):
    result = [{"metric": labels or {}, "value": [1764200000.0, v]} for v in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


@pytest.fixture
def client():
    with PrometheusClient(URL, timeout=1, retries=2, backoff=0, sleep=lambda s: None) as c:
        yield c


@respx.mock
def test_a_value(client):
    route = respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(200, json=_vector("99.52")))
    reading = client.query("up")
    assert reading.conclusive and reading.value == pytest.approx(99.52)
    assert route.calls.last.request.url.params["query"] == "up"


@respx.mock
def test_prometheus_down_is_inconclusive_after_retries(client):
    route = respx.get(f"{URL}/api/v1/query").mock(side_effect=httpx.ConnectError("refused"))
    reading = client.query("up")
    assert not reading.conclusive and reading.value is None
    assert "unreachable" in reading.inconclusive and "3 attempt(s)" in reading.inconclusive
    assert route.call_count == 3


@respx.mock
def test_timeout_is_inconclusive(client):
    respx.get(f"{URL}/api/v1/query").mock(side_effect=httpx.ReadTimeout("slow"))
    assert "timed out" in client.query("up").inconclusive


@respx.mock
def test_http_503_is_retried_then_inconclusive(client):
    route = respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(503, text="unavailable"))
    reading = client.query("up")
    assert reading.inconclusive == "Prometheus answered HTTP 503 after 3 attempt(s)"
    assert route.call_count == 3


@respx.mock
def test_http_503_then_success_recovers(client):
    respx.get(f"{URL}/api/v1/query").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=_vector("0.2"))]
    )
    assert client.query("up").value == pytest.approx(0.2)


@respx.mock
def test_bad_query_is_not_retried(client):
    body = {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}
    route = respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(400, json=body))
    reading = client.query("sum(")
    assert "bad_data: parse error" in reading.inconclusive
    assert route.call_count == 1


@respx.mock
def test_empty_vector_is_inconclusive(client):
    respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(200, json=_vector()))
    assert client.query("up").inconclusive.startswith("empty result")


@pytest.mark.parametrize("text, reason", [("NaN", "NaN"), ("+Inf", "inf"), ("-Inf", "-inf")])
@respx.mock
def test_nan_and_inf_are_inconclusive(client, text, reason):
    respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(200, json=_vector(text)))
    reading = client.query("x")
    assert not reading.conclusive and reason in reading.inconclusive


@respx.mock
def test_several_series_where_one_was_expected_is_inconclusive(client):
    respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(200, json=_vector("1", "2")))
    assert "ambiguous" in client.query("x").inconclusive


@respx.mock
def test_scalar_result_and_evaluation_time(client):
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1764200000.0, "42"]}}
    route = respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(200, json=body))
    at = datetime(2026, 11, 27, tzinfo=timezone.utc)
    assert client.query("42", at=at).value == 42
    assert float(route.calls.last.request.url.params["time"]) == at.timestamp()


@respx.mock
def test_vector_of_buckets(client):
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"le": "100"}, "value": [1, "90"]},
                {"metric": {"le": "+Inf"}, "value": [1, "100"]},
                {"metric": {"le": "250"}, "value": [1, "NaN"]},
            ],
        },
    }
    respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(200, json=body))
    reading = client.query_vector("sum(increase(x_bucket[1m])) by (le)")
    assert [(s.labels["le"], s.value) for s in reading.series] == [("100", 90.0), ("+Inf", 100.0)]


@respx.mock
def test_empty_vector_of_buckets_is_inconclusive(client):
    respx.get(f"{URL}/api/v1/query").mock(return_value=httpx.Response(200, json=_vector()))
    assert not client.query_vector("x").conclusive


@respx.mock
def test_query_range(client):
    body = {
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[10, "1"], [20, "2.5"]]}]},
    }
    route = respx.get(f"{URL}/api/v1/query_range").mock(return_value=httpx.Response(200, json=body))
    end = datetime(2026, 11, 27, tzinfo=timezone.utc)
    points = client.query_range("x", end - timedelta(minutes=1), end, 10)
    assert points == [(10.0, 1.0), (20.0, 2.5)]
    assert route.calls.last.request.url.params["step"] == "10"


@respx.mock
def test_query_range_when_down_is_empty(client):
    respx.get(f"{URL}/api/v1/query_range").mock(side_effect=httpx.ConnectError("refused"))
    end = datetime(2026, 11, 27, tzinfo=timezone.utc)
    assert client.query_range("x", end - timedelta(minutes=1), end, 10) == []


def test_templates_render_their_variables():
    policy = Policy()
    target = QueryTarget(
        namespace="production", service="trip-service", target="trip-service-canary",
        version="canary", interval=timedelta(seconds=90),
    )
    success = render_query(policy.metric_templates["request-success-rate"], target)
    assert (
        'istio_requests_total{reporter="destination",destination_workload_namespace="production",'
        'destination_workload=~"trip-service-canary",response_code!~"5.*"}[1m30s]'
    ) in success
    assert "{{" not in success and success.endswith("* 100")
    errors = render_query(policy.metric_templates["error-rate-5xx"], target)
    assert errors.startswith('(1 - sum(rate(http_requests_total{namespace="production",app="trip-service",version=~"canary",status!~"5.."}[1m30s]))')
    p95 = render_query(policy.metric_templates["response-time-p95"], target)
    assert p95.startswith("histogram_quantile(0.95, sum(rate(http_server_requests_seconds_bucket{")


def test_template_with_an_undefined_variable_is_refused():
    with pytest.raises(ValueError, match="unknown variable"):
        render_query(MetricTemplate(query="up{job='{{ job }}'}", unit="count"), QueryTarget("a", "b", "c"))
