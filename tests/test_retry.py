"""The shared retry policy (delivery/retry.py): the Retry-After parser, the waits, the attempts; no real time passes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from kubernetes.client.exceptions import ApiException
from tenacity import retry_if_exception_type, retry_if_result

from delivery.kube.connection import KubeConnection, RetryPolicy
from delivery.prefect_rest import ATTEMPTS, BACKOFF_SECONDS, RetryingTransport
from delivery.retry import retry_after_seconds, retrying

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=timezone.utc)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        ("-3", 0.0),
        (http_date(NOW + timedelta(seconds=90)), 90.0),
        (http_date(NOW - timedelta(hours=1)), 0.0),
        ("Fri, 14 Mar 2025 12:00:30 GMT", 30.0),
    ],
)
def test_retry_after_reads_delay_seconds_and_http_dates(header, seconds):
    assert retry_after_seconds(header, now=NOW) == seconds


@pytest.mark.parametrize("header", [None, "", "   ", "soon", "12s", "nan", "inf", "Fri, 32 Foo 2025 99:00:00 GMT"])
def test_retry_after_that_is_absent_or_garbage_is_none(header):
    assert retry_after_seconds(header, now=NOW) is None


def test_retry_after_as_a_date_counts_from_the_current_time_by_default():
    header = http_date(datetime.now(timezone.utc) + timedelta(seconds=120))
    assert 110 < retry_after_seconds(header) <= 120


def test_retry_after_takes_a_naive_now_as_utc():
    assert retry_after_seconds(http_date(NOW + timedelta(seconds=5)), now=NOW.replace(tzinfo=None)) == 5.0


class Flaky:
    """Raises `error` for the first `failures` calls, then returns "ok"; counts its calls."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures, self.error, self.calls = failures, error or ConnectionError("reset"), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def policy(sleeps: list[float], **options):
    defaults = {"attempts": 4, "retry": retry_if_exception_type(ConnectionError), "backoff": 1.0, "jitter": False}
    return retrying(**{**defaults, **options}, sleep=sleeps.append)


def test_a_call_that_recovers_returns_its_value_after_the_backoff_waits():
    sleeps: list[float] = []
    retry, flaky = policy(sleeps), Flaky(failures=2)
    assert retry(flaky) == "ok"
    assert (flaky.calls, retry.statistics["attempt_number"], sleeps) == (3, 3, [1.0, 2.0])


def test_out_of_attempts_the_last_exception_is_raised_itself():
    sleeps: list[float] = []
    retry, flaky = policy(sleeps, attempts=3), Flaky(failures=10, error=ConnectionError("still down"))
    with pytest.raises(ConnectionError, match="still down"):
        retry(flaky)
    assert (flaky.calls, retry.statistics["attempt_number"], sleeps) == (3, 3, [1.0, 2.0])


def test_out_of_attempts_the_last_value_is_returned():
    sleeps: list[float] = []
    answers = iter([503, 503, 502])
    retry = policy(sleeps, attempts=3, retry=retry_if_result(lambda status: status >= 500))
    assert retry(lambda: next(answers)) == 502
    assert sleeps == [1.0, 2.0]


def test_an_error_the_predicate_refuses_is_raised_at_once():
    sleeps: list[float] = []
    retry, flaky = policy(sleeps), Flaky(failures=1, error=ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        retry(flaky)
    assert (flaky.calls, sleeps) == (1, [])


def test_the_backoff_doubles_up_to_its_cap():
    sleeps: list[float] = []
    with pytest.raises(ConnectionError):
        policy(sleeps, attempts=6, backoff=0.5, max_backoff=3.0)(Flaky(failures=10))
    assert sleeps == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_keeps_each_wait_between_half_and_all_of_the_backoff():
    sleeps: list[float] = []
    with pytest.raises(ConnectionError):
        policy(sleeps, attempts=6, backoff=0.5, max_backoff=3.0, jitter=True)(Flaky(failures=10))
    for wait, backoff in zip(sleeps, [0.5, 1.0, 2.0, 3.0, 3.0], strict=True):
        assert backoff / 2 <= wait <= backoff


def test_a_retry_after_replaces_the_backoff_and_is_capped():
    sleeps: list[float] = []
    hints = iter([4.0, 120.0, None])
    retry = policy(sleeps, retry_after=lambda error: next(hints), max_retry_after=30.0)
    assert retry(Flaky(failures=3)) == "ok"
    assert sleeps == [4.0, 30.0, 4.0]  # the third wait has no hint: backoff 1 * 2**2


def test_before_sleep_sees_the_failed_attempt_and_the_wait():
    sleeps: list[float] = []
    seen: list[tuple[int, float]] = []
    retry = policy(sleeps, before_sleep=lambda state: seen.append((state.attempt_number, state.upcoming_sleep)))
    retry(Flaky(failures=2))
    assert seen == [(1, 1.0), (2, 2.0)]


def throttled(retry_after: str | None = None, status: int = 429) -> ApiException:
    error = ApiException(status=status, reason="Too Many Requests")
    error.headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return error


def test_the_cluster_connection_honours_an_http_date_retry_after_up_to_its_cap():
    sleeps: list[float] = []
    later = http_date(datetime.now(timezone.utc) + timedelta(hours=1))
    conn = KubeConnection(api=None, retry=RetryPolicy(attempts=3, max_retry_after=30.0), sleep=sleeps.append)
    flaky = Flaky(failures=2, error=throttled(later))
    assert conn.call(flaky) == "ok"
    assert (flaky.calls, sleeps) == (3, [30.0, 30.0])


def test_the_cluster_connection_gives_up_after_its_attempts_and_never_retries_a_404():
    sleeps: list[float] = []
    conn = KubeConnection(api=None, retry=RetryPolicy(attempts=4, base_delay=0.2, max_delay=5.0), sleep=sleeps.append)
    failing = Flaky(failures=10, error=throttled(status=503))
    with pytest.raises(ApiException) as raised:
        conn.call(failing)
    assert (raised.value.status, failing.calls, len(sleeps)) == (503, 4, 3)
    for wait, backoff in zip(sleeps, [0.2, 0.4, 0.8], strict=True):
        assert backoff / 2 <= wait <= backoff
    missing = Flaky(failures=10, error=throttled(status=404))
    with pytest.raises(ApiException):
        conn.call(missing)
    assert missing.calls == 1


def test_the_prefect_transport_retries_a_busy_server_then_returns_its_last_answer():
    sleeps: list[float] = []
    requests: list[httpx.Request] = []

    def busy(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(503, headers={"Retry-After": "2"} if len(requests) == 1 else {})

    with httpx.Client(transport=RetryingTransport(httpx.MockTransport(busy), sleep=sleeps.append)) as http:
        assert http.get("http://prefect.test/api/health").status_code == 503
    assert len(requests) == ATTEMPTS
    assert sleeps == [2.0] + [BACKOFF_SECONDS * 2**n for n in range(1, ATTEMPTS - 1)]


def test_the_prefect_transport_does_not_retry_other_statuses():
    sleeps: list[float] = []
    transport = RetryingTransport(httpx.MockTransport(lambda request: httpx.Response(500)), sleep=sleeps.append)
    with httpx.Client(transport=transport) as http:
        assert http.get("http://prefect.test/api/health").status_code == 500
    assert sleeps == []
