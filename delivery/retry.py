"""The retry policy the clients share (Kubernetes, Prometheus, notifiers, Prefect's REST API).

Built on tenacity: `retrying(...)` makes the `Retrying` each call site runs its call through, and
`retry_after_seconds` reads a server's Retry-After in both of RFC 9110's forms. See docs/retries.md
for what the attempts and waits add up to per release step.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, Retrying, stop_after_attempt, wait_exponential
from tenacity.retry import retry_base


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds from `now` (default: the current time); None when absent or unreadable.

    RFC 9110 §10.2.3 allows delay-seconds (`120`; a fraction such as `1.5` is read too) or an
    HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`); a date in the past, or a negative delay, is 0.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    now = now or datetime.now(timezone.utc)
    return max(0.0, (_utc(moment) - _utc(now)).total_seconds())


def _utc(moment: datetime) -> datetime:
    """HTTP-dates are GMT: a naive datetime is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def outcome_of(state: RetryCallState) -> object:
    """What the attempt just made ended with: the exception it raised, or the value it returned."""
    outcome = state.outcome
    return outcome.exception() if outcome.failed else outcome.result()


def _give_up(state: RetryCallState) -> object:
    """Out of attempts: return the last value or raise the last exception, as a call without retries would."""
    return state.outcome.result()


def retrying(
    *,
    attempts: int,
    retry: retry_base | Callable[[RetryCallState], bool],
    backoff: float,
    max_backoff: float = math.inf,
    jitter: bool = True,
    retry_after: Callable[[object], float | None] | None = None,
    max_retry_after: float = math.inf,
    sleep: Callable[[float], None] | None = None,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """A tenacity `Retrying` that makes at most `attempts` attempts, retrying those `retry` accepts.

    The wait after failed attempt n is what `retry_after(outcome)` says (the exception raised or the
    value returned), capped at `max_retry_after`; when it says None, `backoff * 2**(n-1)` capped at
    `max_backoff`, times a random factor in [0.5, 1] when `jitter`. `sleep` is injectable (default:
    tenacity's, i.e. `time.sleep` looked up when it sleeps). Out of attempts, the last value is returned
    or the last exception raised: never a tenacity `RetryError`. Make one per call: its `statistics`
    (`attempt_number`) then belong to that call.
    """
    exponential = wait_exponential(multiplier=backoff, max=max_backoff)
    read_retry_after = retry_after or (lambda outcome: None)

    def wait(state: RetryCallState) -> float:
        given = read_retry_after(outcome_of(state))
        if given is not None:
            return min(given, max_retry_after)
        delay = exponential(state)
        return delay * random.uniform(0.5, 1.0) if jitter else delay

    options = {"sleep": sleep} if sleep is not None else {}
    return Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry,
        before_sleep=before_sleep,
        retry_error_callback=_give_up,
        **options,
    )
