"""Send alerts to their channels; a channel that fails is retried, logged and recorded, never raised."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import httpx
from tenacity import retry_if_exception

from delivery.notify.alert import Alert, Delivery, DeliveryFailed, Notifier
from delivery.notify.alert_log import AlertLog
from delivery.notify.routing import Clock, Contacts, Escalation, channels_for, utc_now
from delivery.policy.models import AlertRoute
from delivery.retry import retrying

log = logging.getLogger(__name__)

ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
"""The wait before the second attempt when the service names none; it doubles for each further one."""
MAX_RETRY_AFTER_SECONDS = 30.0
"""A longer Retry-After is honoured by not retrying: a release or a rollback never waits on a notification."""


def _where(error: Exception) -> str:
    """`file:line` where an unexpected error was raised: enough to find a bug, with no message that could hold a secret."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f"{frame.filename.rpartition('/')[2]}:{frame.lineno}"


class Dispatcher:
    """Routes alerts by severity (R-ALERT), tracks them for escalation, and reports a Delivery per channel."""

    def __init__(
        self,
        notifiers: Mapping[str, Notifier],
        alerting: Mapping[str, AlertRoute],
        clock: Clock = utc_now,
        *,
        sleep: Callable[[float], None] = time.sleep,
        contacts: Contacts | None = None,
        http: httpx.Client | None = None,
        alert_log: AlertLog | None = None,
    ) -> None:
        self.notifiers = dict(notifiers)
        self.alerting = alerting
        self.clock = clock
        self.sleep = sleep
        self.escalation = Escalation(alerting, clock, contacts)
        self.http = http
        self.alert_log = alert_log

    def notify(self, alert: Alert) -> list[Delivery]:
        """Send to every channel of the alert's severity at once; escalate it later unless acknowledged.

        The alert log, when given, keeps it for the scheduled escalation check (delivery.notify.escalation)."""
        channels = channels_for(self.alerting, alert.severity)
        if not channels:
            log.warning("the policy routes no %s alerts; '%s' not sent", alert.severity, alert.title)
        deliveries = self.send_to(channels, alert)
        self.escalation.track(alert)
        if self.alert_log and channels:
            self._record(lambda log_: log_.sent(alert, self.clock()))
        return deliveries

    def send_to(self, channels: Iterable[str], alert: Alert) -> list[Delivery]:
        """Send to the named channels at once (e.g. the policy's `blue_green.notify`), one Delivery each, in order."""
        names = list(dict.fromkeys(channels))
        if not names:
            return []
        with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="notify") as pool:
            return list(pool.map(lambda name: self._deliver(name, "send", alert), names))

    def open_incident(self, alert: Alert) -> Delivery:
        """Create the Jira incident of R-INC."""
        return self._deliver("jira", "send", alert)

    def resolve(self, release: str) -> Delivery:
        """The release recovered: resolve its PagerDuty incident and stop escalating its alerts."""
        self._close(release, "resolved")
        return self._deliver("pagerduty", "resolve", release)

    def acknowledge(self, release: str) -> None:
        """Someone took the release's alerts in hand: no escalation for them."""
        self._close(release, "acknowledged")

    def escalate(self, alerts: Iterable[Alert] | None = None) -> list[Delivery]:
        """Re-notify `alerts` to their escalation level, or else those this process tracked that are now due."""
        reminders = self.escalation.due() if alerts is None else [self.escalation.reminder(alert) for alert in alerts]
        deliveries = []
        for due in reminders:
            log.info("escalating '%s' of %s to %s on %s", due.alert.title, due.alert.release, due.alert.escalated_to, ", ".join(due.channels))
            deliveries += self.send_to(due.channels, due.alert)
        return deliveries

    def _close(self, release: str, reason: str) -> None:
        self.escalation.acknowledge(release)
        if self.alert_log:
            self._record(lambda log_: log_.close_release(release, reason, self.clock()))

    def _record(self, write: Callable[[AlertLog], None]) -> None:
        """Write to the alert log; a log that cannot be written is logged, never raised (the alert went out)."""
        try:
            write(self.alert_log)
        except (OSError, ValueError) as error:
            log.error("alert log %s not written: %s", self.alert_log.path, type(error).__name__)

    def close(self) -> None:
        """Close the HTTP client `build_dispatcher` opened for the notifiers."""
        if self.http is not None:
            self.http.close()

    def _deliver(self, channel: str, action: str, subject: Alert | str) -> Delivery:
        """Call `notifier.<action>(subject)` with bounded retries; every failure ends as an undelivered Delivery."""
        notifier = self.notifiers.get(channel)
        if notifier is None:
            log.warning("%s: not configured; nothing sent", channel)
            return Delivery(channel, False, 0, "not configured")
        policy = retrying(
            attempts=ATTEMPTS,
            retry=retry_if_exception(_worth_retrying),
            backoff=BACKOFF_SECONDS,
            jitter=False,
            retry_after=lambda failure: failure.retry_after,
            sleep=self.sleep,
            before_sleep=lambda state: log.info(
                "%s: attempt %d failed (%s); retrying in %.1f s",
                channel, state.attempt_number, state.outcome.exception().detail, state.upcoming_sleep,
            ),
        )
        try:
            delivery = policy(lambda: getattr(notifier, action)(subject))
        except DeliveryFailed as failure:
            attempts = policy.statistics["attempt_number"]
            log.warning("%s: not delivered after %d attempt(s): %s", channel, attempts, failure.detail)
            return Delivery(channel, False, attempts, failure.detail)
        except Exception as error:  # a notifier's bug must not fail a release either
            detail = f"notifier error {type(error).__name__} at {_where(error)}"
            log.error("%s: not delivered: %s", channel, detail)
            return Delivery(channel, False, policy.statistics["attempt_number"], detail)
        return Delivery(channel, delivery.delivered, policy.statistics["attempt_number"], delivery.detail)


def _worth_retrying(error: BaseException) -> bool:
    """A retryable failure whose Retry-After, if any, is short enough to wait for."""
    if not isinstance(error, DeliveryFailed) or not error.retryable:
        return False
    return error.retry_after is None or error.retry_after <= MAX_RETRY_AFTER_SECONDS
