"""R-ALERT: the channels of each severity, and the escalation of alerts nobody acknowledged in time.

An alert is escalated once, after its route's `escalate_after`, to its `escalate_to` level: the
route's channels are notified again, addressed to that level's contacts (channel → addresses).
PagerDuty is left out: it escalates an unacknowledged incident by its own escalation policy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from delivery.notify.alert import Alert
from delivery.policy.models import AlertRoute

Clock = Callable[[], datetime]
Contacts = Mapping[str, Mapping[str, tuple[str, ...]]]
"""Escalation level (e.g. `team-lead`) → channel → addresses (e-mail addresses, phone numbers, Slack mentions)."""
SELF_ESCALATING = frozenset({"pagerduty"})


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def channels_for(alerting: Mapping[str, AlertRoute], severity: str) -> tuple[str, ...]:
    """The channels an alert of `severity` goes to, all at once; none when the policy has no route for it."""
    route = alerting.get(severity)
    return tuple(route.channels) if route else ()


def escalation_channels(route: AlertRoute) -> tuple[str, ...]:
    """The channels the orchestrator re-notifies itself: the route's, less those that escalate on their own."""
    return tuple(channel for channel in route.channels if channel not in SELF_ESCALATING)


@dataclass(frozen=True)
class EscalationDue:
    """A re-notification to send now: the alert addressed to its escalation level, and the channels."""

    alert: Alert
    channels: tuple[str, ...]


@dataclass(frozen=True)
class _Pending:
    alert: Alert
    sent_at: datetime


class Escalation:
    """Alerts sent and not yet acknowledged; `due()` hands out each re-notification once, when its time has come."""

    def __init__(self, alerting: Mapping[str, AlertRoute], clock: Clock = utc_now, contacts: Contacts | None = None) -> None:
        self.alerting = alerting
        self.clock = clock
        self.contacts = contacts or {}
        self._pending: dict[tuple[str, str, str], _Pending] = {}
        self._lock = threading.Lock()

    def track(self, alert: Alert) -> None:
        """Note that `alert` was sent now; a repeat of a pending alert keeps the first time."""
        route = self.alerting.get(alert.severity)
        if alert.escalated_to or not route or not escalation_channels(route):
            return
        with self._lock:
            self._pending.setdefault((alert.release, alert.severity, alert.title), _Pending(alert, self.clock()))

    def acknowledge(self, release: str) -> None:
        """Someone acted on `release` (or it recovered): none of its alerts escalates any more."""
        with self._lock:
            self._pending = {key: pending for key, pending in self._pending.items() if key[0] != release}

    def pending(self) -> list[Alert]:
        with self._lock:
            return [pending.alert for pending in self._pending.values()]

    def due(self) -> list[EscalationDue]:
        """The re-notifications whose `escalate_after` has passed; each is handed out once."""
        now, due = self.clock(), []
        with self._lock:
            for key, pending in list(self._pending.items()):
                route = self.alerting[pending.alert.severity]
                if now - pending.sent_at >= route.escalate_after:
                    del self._pending[key]
                    due.append(self.reminder(pending.alert))
        return due

    def reminder(self, alert: Alert) -> EscalationDue:
        """`alert` addressed to its route's escalation level, with the channels that re-notify it."""
        route = self.alerting[alert.severity]
        return EscalationDue(self._addressed(alert, route.escalate_to), escalation_channels(route))

    def _addressed(self, alert: Alert, level: str) -> Alert:
        """`alert` re-addressed to `level`: its contacts, or the channels' default recipients when it has none."""
        return alert.model_copy(update={"escalated_to": level, "recipients": dict(self.contacts.get(level, {}))})
