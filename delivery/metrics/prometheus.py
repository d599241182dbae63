"""A Prometheus HTTP API client whose answers are a value or an *inconclusive* reading, never a guess."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from tenacity import retry_if_exception_type, retry_if_result

from delivery.retry import retrying
from delivery.timing import timed


@dataclass(frozen=True)
class Reading:
    """One metric value, or why there is none (`inconclusive` holds the reason)."""

    query: str
    value: float | None = None
    inconclusive: str | None = None

    @property
    def conclusive(self) -> bool:
        return self.inconclusive is None

    def __str__(self) -> str:
        return f"{self.value:g}" if self.conclusive else f"inconclusive ({self.inconclusive})"


@dataclass(frozen=True)
class Series:
    """One series of an instant vector: its labels and value."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class VectorReading:
    """An instant vector (e.g. histogram buckets), or why there is none."""

    query: str
    series: list[Series] = field(default_factory=list)
    inconclusive: str | None = None

    @property
    def conclusive(self) -> bool:
        return self.inconclusive is None


class _Unanswered(Exception):
    """The query got no usable answer; the message is the reason."""


class PrometheusClient:
    """Runs PromQL through `/api/v1/query` and `/api/v1/query_range` with timeouts and retries."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, promql: str, at: datetime | None = None) -> Reading:
        """The single value `promql` evaluates to; inconclusive when there is not exactly one finite value."""
        try:
            data = self._get("/api/v1/query", _params(promql, at))
            value = _single_value(data)
        except _Unanswered as why:
            return Reading(promql, inconclusive=str(why))
        return Reading(promql, value=value)

    def query_vector(self, promql: str, at: datetime | None = None) -> VectorReading:
        """Every series of an instant vector (NaN samples dropped); inconclusive when empty."""
        try:
            data = self._get("/api/v1/query", _params(promql, at))
            if data.get("resultType") != "vector":
                raise _Unanswered(f"expected a vector, got {data.get('resultType')}")
            series = [
                Series(item["metric"], v)
                for item in data["result"]
                if math.isfinite(v := _number(item["value"][1]))
            ]
        except _Unanswered as why:
            return VectorReading(promql, inconclusive=str(why))
        if not series:
            return VectorReading(promql, inconclusive="empty result: no series matched")
        return VectorReading(promql, series=series)

    def query_range(self, promql: str, start: datetime, end: datetime, step_seconds: float) -> list[tuple[float, float]]:
        """(timestamp, value) points of the first series over [start, end]; empty when there is no data."""
        params = {"query": promql, "start": start.timestamp(), "end": end.timestamp(), "step": step_seconds}
        try:
            data = self._get("/api/v1/query_range", params)
        except _Unanswered:
            return []
        result = data.get("result") or []
        return [(float(ts), _number(v)) for ts, v in result[0]["values"]] if result else []

    def _get(self, path: str, params: dict) -> dict:
        """The `data` of a successful answer; retries transient failures, raises _Unanswered otherwise."""
        attempts = self.retries + 1
        policy = retrying(
            attempts=attempts,
            retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(_busy),
            backoff=self.backoff,
            jitter=False,
            sleep=self._sleep,
        )
        try:
            with timed("metrics"):
                response = policy(self._http.get, path, params=params)
        except httpx.TimeoutException:
            raise _Unanswered(f"Prometheus at {self.base_url} timed out after {attempts} attempt(s)") from None
        except httpx.TransportError as err:
            raise _Unanswered(f"Prometheus at {self.base_url} is unreachable ({type(err).__name__}) after {attempts} attempt(s)") from None
        if _busy(response):
            raise _Unanswered(f"Prometheus answered HTTP {response.status_code} after {attempts} attempt(s)")
        return _data_of(response)


def _busy(response: httpx.Response) -> bool:
    """A 5xx or a 429: worth asking again."""
    return response.status_code >= 500 or response.status_code == 429


def _params(promql: str, at: datetime | None) -> dict:
    return {"query": promql, **({"time": at.timestamp()} if at else {})}


def _data_of(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise _Unanswered(f"Prometheus answered HTTP {response.status_code} with a body that is not JSON") from None
    if response.status_code != 200 or body.get("status") != "success":
        error = body.get("error") or "no error message"
        raise _Unanswered(f"Prometheus answered HTTP {response.status_code}: {body.get('errorType', 'error')}: {error}")
    return body["data"]


def _single_value(data: dict) -> float:
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        value = _number(result[1])
    elif kind == "vector":
        if not result:
            raise _Unanswered("empty result: no series matched (no traffic, or the labels are wrong)")
        if len(result) > 1:
            raise _Unanswered(f"ambiguous result: {len(result)} series where one was expected")
        value = _number(result[0]["value"][1])
    else:
        raise _Unanswered(f"expected a scalar or a vector, got {kind}")
    if math.isnan(value):
        raise _Unanswered("the value is NaN (e.g. 0/0: no requests in the interval)")
    if math.isinf(value):
        raise _Unanswered(f"the value is {value} (e.g. a division by zero or a histogram without data)")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise _Unanswered(f"the sample value {text!r} is not a number") from None
