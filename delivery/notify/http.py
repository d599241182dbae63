"""One JSON POST to a notification service, its failures turned into `DeliveryFailed` without the URL in them."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from delivery.notify.alert import DeliveryFailed

TIMEOUT_SECONDS = 10.0
RETRIED_STATUS = frozenset({408, 429})
"""Besides every 5xx: a request timeout and rate limiting."""


def post_json(http: httpx.Client, url: str, body: dict, **request: object) -> httpx.Response:
    """POST `body` as JSON; a 2xx response is returned, anything else raises DeliveryFailed naming only the status."""
    try:
        response = http.post(url, json=body, timeout=TIMEOUT_SECONDS, **request)
    except httpx.TimeoutException as error:
        raise DeliveryFailed(f"timed out ({type(error).__name__})", retryable=True) from None
    except httpx.TransportError as error:
        raise DeliveryFailed(f"connection failed ({type(error).__name__})", retryable=True) from None
    if response.is_success:
        return response
    status = response.status_code
    raise DeliveryFailed(
        f"HTTP {status} {response.reason_phrase}".rstrip(),
        retryable=status in RETRIED_STATUS or status >= 500,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds())
