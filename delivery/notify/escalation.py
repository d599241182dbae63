"""R-ALERT's escalation, after the release run ended: the open alerts of the alert log, PagerDuty's state, a clock.

An alert not acknowledged within its route's `escalate_after` is re-notified once to its `escalate_to`
level through `Dispatcher.escalate`. Its release's PagerDuty incident (the alert's dedup key) tells whether
someone acknowledged or resolved it; without an incident, only `Dispatcher.resolve`/`acknowledge` stop it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx

from delivery.notify.alert_log import AlertLog, OpenAlert
from delivery.notify.dispatch import Dispatcher
from delivery.notify.pagerduty import IncidentStatus
from delivery.notify.routing import Clock, escalation_channels, utc_now
from delivery.policy.models import AlertRoute

log = logging.getLogger(__name__)

QUIET: frozenset[str] = frozenset({"acknowledged", "resolved"})
"""Incident states that stop an escalation; `triggered`, no incident, or an unreadable state do not."""


class IncidentStates(Protocol):
    """Where acknowledgement is read: the status of the incident with a dedup key, None when there is none."""

    def status(self, incident_key: str) -> IncidentStatus | None: ...


@dataclass(frozen=True)
class EscalationSent:
    """One alert escalated now: to which level, on which channels, and which of them delivered."""

    release: str
    severity: str
    title: str
    level: str
    delivered: tuple[str, ...]
    failed: tuple[str, ...]


def is_due(open_alert: OpenAlert, alerting: Mapping[str, AlertRoute], now: datetime) -> bool:
    """Its route re-notifies on some channel, `escalate_after` has passed, and its level was not escalated to yet."""
    route = alerting.get(open_alert.alert.severity)
    return (
        route is not None
        and bool(escalation_channels(route))
        and route.escalate_to not in open_alert.escalated_to
        and now - open_alert.sent_at >= route.escalate_after
    )


def read_states(incidents: IncidentStates | None, keys: set[str]) -> dict[str, IncidentStatus | None]:
    """Each key's incident status; an unreadable one counts as unacknowledged (escalating wrongly beats never)."""
    states: dict[str, IncidentStatus | None] = {}
    for key in sorted(keys):
        try:
            states[key] = incidents.status(key) if incidents else None
        except (httpx.HTTPError, KeyError, TypeError, ValueError) as error:
            log.warning("PagerDuty status of %s unreadable (%s): escalating as unacknowledged", key, _why(error))
            states[key] = None
    return states


def escalate_open_alerts(
    alert_log: AlertLog, incidents: IncidentStates | None, dispatcher: Dispatcher, clock: Clock = utc_now
) -> list[EscalationSent]:
    """Escalate every open alert that is due and unacknowledged, once per level; returns what was sent."""
    now = clock()
    due = [open_alert for open_alert in alert_log.open_alerts() if is_due(open_alert, dispatcher.alerting, now)]
    if due and incidents is None:
        log.warning("no PagerDuty API token (TRIPGEN_PAGERDUTY_API_TOKEN): acknowledgements cannot be read")
    states = read_states(incidents, {open_alert.incident_key for open_alert in due})
    sent = []
    for open_alert in due:
        state = states[open_alert.incident_key]
        if state == "resolved":
            alert_log.close(open_alert, "resolved", now)
        if state in QUIET:
            continue
        sent.append(_escalate(open_alert, alert_log, dispatcher, now))
    return sent


def _escalate(open_alert: OpenAlert, alert_log: AlertLog, dispatcher: Dispatcher, now: datetime) -> EscalationSent:
    """Re-notify through the dispatcher; recorded once a channel delivered, so a failed one is retried next run."""
    deliveries = dispatcher.escalate([open_alert.alert])
    route = dispatcher.alerting[open_alert.alert.severity]
    delivered = tuple(d.notifier for d in deliveries if d.delivered)
    if delivered:
        alert_log.escalated(open_alert, route.escalate_to, delivered, now)
    alert = open_alert.alert
    failed = tuple(d.notifier for d in deliveries if not d.delivered)
    return EscalationSent(alert.release, alert.severity, alert.title, route.escalate_to, delivered, failed)


def _why(error: Exception) -> str:
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code}"
    return type(error).__name__
