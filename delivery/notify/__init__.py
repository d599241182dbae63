"""Notifications (R-ALERT, R-INC): Slack, Teams, PagerDuty, Jira, e-mail and SMS behind one `Notifier` protocol.

`build_dispatcher(policy)` builds every configured channel; flows then call `notify` (by severity),
`send_to` (named channels), `open_incident` (Jira) and `resolve` (PagerDuty) on it; the scheduled
`escalate_open_alerts` (delivery.notify.escalation) re-notifies through its `escalate`.
No notification failure ever raises out of the dispatcher.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import httpx

from delivery.notify.alert import Alert, Delivery, DeliveryFailed, Notifier
from delivery.notify.alert_log import AlertLog
from delivery.notify.credentials import Credentials, hide_in_http_logs, load_credentials
from delivery.notify.dispatch import Dispatcher
from delivery.notify.email import EmailNotifier
from delivery.notify.http import TIMEOUT_SECONDS
from delivery.notify.jira import JiraNotifier
from delivery.notify.pagerduty import PagerDutyNotifier
from delivery.notify.routing import Clock, Escalation, EscalationDue, channels_for, utc_now
from delivery.notify.slack import SlackNotifier
from delivery.notify.sms import SmsNotifier
from delivery.notify.teams import TeamsNotifier
from delivery.policy.models import Policy

__all__ = [
    "Alert",
    "Credentials",
    "Delivery",
    "DeliveryFailed",
    "Dispatcher",
    "Escalation",
    "EscalationDue",
    "Notifier",
    "build_dispatcher",
    "build_notifiers",
    "channels_for",
    "escalation_levels",
    "load_credentials",
]

log = logging.getLogger(__name__)


def build_notifiers(credentials: Credentials, http: httpx.Client) -> dict[str, Notifier]:
    """A notifier for every channel whose credentials are there, by channel name (`jira` included)."""
    notifiers: dict[str, Notifier] = {}
    if credentials.slack_webhook_url:
        notifiers["slack"] = SlackNotifier(credentials.slack_webhook_url, http)
    if credentials.teams_webhook_url:
        notifiers["teams"] = TeamsNotifier(credentials.teams_webhook_url, http)
    if credentials.pagerduty_routing_key:
        notifiers["pagerduty"] = PagerDutyNotifier(credentials.pagerduty_routing_key, http)
    if credentials.jira:
        notifiers["jira"] = JiraNotifier(credentials.jira, http)
    if credentials.smtp:
        notifiers["email"] = EmailNotifier(credentials.smtp)
    if credentials.sms:
        notifiers["sms"] = SmsNotifier(credentials.sms, http)
    return notifiers


def escalation_levels(policy: Policy) -> set[str]:
    """The levels alerts escalate to, whose contacts the credentials carry."""
    return {route.escalate_to for route in policy.alerting.values()}


def build_dispatcher(
    policy: Policy,
    clock: Clock = utc_now,
    http: httpx.Client | None = None,
    *,
    credentials: Credentials | None = None,
    sleep: Callable[[float], None] = time.sleep,
    alert_log: AlertLog | None = None,
) -> Dispatcher:
    """A Dispatcher over every configured channel, routing by `policy.alerting`; credentials are loaded when not given."""
    credentials = credentials or load_credentials(escalation_levels(policy))
    hide_in_http_logs(credentials.secret_values())
    client = http or httpx.Client(timeout=TIMEOUT_SECONDS)
    notifiers = build_notifiers(credentials, client)
    log.info("notification channels configured: %s", ", ".join(sorted(notifiers)) or "none")
    return Dispatcher(notifiers, policy.alerting, clock, sleep=sleep, contacts=credentials.contacts, http=None if http else client,
                      alert_log=alert_log)
