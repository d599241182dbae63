"""The metric templates shipped with the policy: Flagger's Istio checks, R-MON's 5xx rate, p95/p99.

Variables: `namespace`, `service` (the app label), `target` (workload regex, e.g. `trip-service-canary`),
`version` (version label regex, e.g. `green` or `.*`) and `interval` (a PromQL range such as `1m`).
"""

_ISTIO = (
    'reporter="destination",destination_workload_namespace="{{ namespace }}",'
    'destination_workload=~"{{ target }}"'
)
_HTTP = 'namespace="{{ namespace }}",app="{{ service }}",version=~"{{ version }}"'

_RAW: dict[str, tuple[str, str]] = {
    "request-success-rate": (
        "sum(rate(istio_requests_total{ISTIO,response_code!~\"5.*\"}[{{ interval }}]))"
        " / sum(rate(istio_requests_total{ISTIO}[{{ interval }}])) * 100",
        "percent",
    ),
    "request-duration": (
        "histogram_quantile(0.99, sum(rate("
        "istio_request_duration_milliseconds_bucket{ISTIO}[{{ interval }}])) by (le))",
        "ms",
    ),
    # 100 minus the non-5xx share: with no 5xx series at all this is 0, not an empty result.
    "error-rate-5xx": (
        "(1 - sum(rate(http_requests_total{HTTP,status!~\"5..\"}[{{ interval }}]))"
        " / sum(rate(http_requests_total{HTTP}[{{ interval }}]))) * 100",
        "percent",
    ),
    "istio-requests": (
        "sum(increase(istio_requests_total{ISTIO}[{{ interval }}]))",
        "count",
    ),
    "istio-requests-5xx": (
        "sum(increase(istio_requests_total{ISTIO,response_code=~\"5..\"}[{{ interval }}])) or vector(0)",
        "count",
    ),
    "istio-latency-buckets": (
        "sum(increase(istio_request_duration_milliseconds_bucket{ISTIO}[{{ interval }}])) by (le)",
        "count",
    ),
    "requests-total": (
        "sum(increase(http_requests_total{HTTP}[{{ interval }}]))",
        "count",
    ),
    # `or vector(0)`: no 5xx series at all means no errors, as long as requests-total has data.
    "requests-5xx": (
        "sum(increase(http_requests_total{HTTP,status=~\"5..\"}[{{ interval }}])) or vector(0)",
        "count",
    ),
    "response-time-p95": (
        "histogram_quantile(0.95, sum(rate("
        "http_server_requests_seconds_bucket{HTTP}[{{ interval }}])) by (le))",
        "seconds",
    ),
    "response-time-p99": (
        "histogram_quantile(0.99, sum(rate("
        "http_server_requests_seconds_bucket{HTTP}[{{ interval }}])) by (le))",
        "seconds",
    ),
}
DEFAULT_QUERIES: dict[str, tuple[str, str]] = {
    name: (query.replace("{ISTIO", "{" + _ISTIO).replace("{HTTP", "{" + _HTTP), unit)
    for name, (query, unit) in _RAW.items()
}
"""Template name -> (PromQL with `{{ variables }}`, unit of the result)."""
