"""HTTP checks through the gateway (R-VAL-2..4): health with retries, response time, DB health."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from delivery.timing import timed


@dataclass(frozen=True)
class ProbeResult:
    """One check: did it pass, what was measured, and the words for the report."""

    name: str
    passed: bool
    detail: str
    seconds: float | None = None


SERVER_ERROR_ATTEMPTS = 3


class Prober:
    """Sends requests to `base_url` with a chosen Host header, as a client of the ingress would."""

    def __init__(self, http: httpx.Client, base_url: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep

    def get(self, host: str, path: str, headers: dict[str, str] | None = None) -> tuple[int | None, float, str]:
        """(status or None on a transport error, seconds taken, a short detail)."""
        started = time.perf_counter()
        try:
            with timed("probes"):
                response = self.http.get(f"{self.base_url}{path}", headers={"Host": host, **(headers or {})})
        except httpx.HTTPError as err:
            return None, time.perf_counter() - started, f"{type(err).__name__}"
        seconds = time.perf_counter() - started
        return response.status_code, seconds, f"HTTP {response.status_code}" + _why_down(response)

    def health(self, host: str, path: str, attempts: int, interval: float) -> ProbeResult:
        """GET `path` until it answers 2xx, at most `attempts` times `interval` seconds apart."""
        detail = "not tried"
        for attempt in range(1, attempts + 1):
            status, seconds, detail = self.get(host, path)
            if status is not None and 200 <= status < 300:
                return ProbeResult(f"health {host}{path}", True, f"{detail} on try {attempt}", seconds)
            if attempt < attempts:
                with timed("probes"):
                    self._sleep(interval)
        return ProbeResult(f"health {host}{path}", False, f"{detail} after {attempts} tries")

    def response_time(self, host: str, path: str, limit: float) -> ProbeResult:
        """GET `path`; passes when it answers 2xx within `limit` seconds.

        A 5xx or no answer is asked again at once, up to `SERVER_ERROR_ATTEMPTS` times: one stray error
        of a healthy service is no verdict on its response time; a broken one fails every time.
        """
        for _ in range(SERVER_ERROR_ATTEMPTS):
            status, seconds, detail = self.get(host, path)
            if status is not None and status < 500:
                break
        ok = status is not None and 200 <= status < 300 and seconds <= limit
        return ProbeResult(f"response time {host}{path}", ok, f"{detail} in {seconds:.3f}s (limit {limit:g}s)", seconds)


def _why_down(response: httpx.Response) -> str:
    """A failed Spring Boot health answer's reason (`{"status": "DOWN", "details": {"error": ...}}`), as ` (reason)`."""
    if response.status_code < 400:
        return ""
    try:
        error = (response.json().get("details") or {}).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({error})" if isinstance(error, str) and error else ""
