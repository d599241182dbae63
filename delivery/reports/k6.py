"""k6 end-of-test summaries: `k6 run --summary-export` JSON and the `handleSummary(data)` object.

The export puts a metric's statistics at its top level (`http_req_failed.value`); `handleSummary`
puts them under `values` (`http_req_failed.values.rate`). Both are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery.reports import RawReport, ReportError, as_number, parse_json


@dataclass(frozen=True)
class LoadTestSummary:
    """The three numbers the performance gate compares with the baseline."""

    p95_duration_ms: float
    error_rate: float
    requests_per_second: float

    @property
    def error_rate_percent(self) -> float:
        return self.error_rate * 100


def parse_k6_summary(report: RawReport) -> LoadTestSummary:
    """p95 of `http_req_duration` (ms), the rate of `http_req_failed` (0..1) and `http_reqs` per second."""
    data = parse_json(report)
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise ReportError(
            f"{report.location} is not a k6 summary (no 'metrics' object): "
            "write it with `k6 run --summary-export FILE` or handleSummary"
        )
    return LoadTestSummary(
        p95_duration_ms=_statistic(metrics, "http_req_duration", "p(95)", "p(95)", report.location),
        error_rate=_statistic(metrics, "http_req_failed", "value", "rate", report.location),
        requests_per_second=_statistic(metrics, "http_reqs", "rate", "rate", report.location),
    )


def _statistic(metrics: dict, metric: str, export_key: str, summary_key: str, location: str) -> float:
    """A metric's statistic from either shape: `values[summary_key]` or the top-level `export_key`."""
    entry = metrics.get(metric)
    if not isinstance(entry, dict):
        raise ReportError(f"{location} has no '{metric}' metric: the load test must make HTTP requests with k6/http")
    values, key = (entry["values"], summary_key) if "values" in entry else (entry, export_key)
    if not isinstance(values, dict) or key not in values:
        hint = ": keep p(95) in the test's summaryTrendStats" if key == "p(95)" else ""
        raise ReportError(f"{location}: the '{metric}' metric has no '{key}'{hint}")
    return as_number(values[key], f"{metric} {key}", location)
