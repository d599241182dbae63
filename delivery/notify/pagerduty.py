"""PagerDuty Events API v2: one incident per release, triggered by alerts and resolved when the release recovers.

PagerDuty escalates an unacknowledged incident by the service's own escalation policy, so the
orchestrator never re-notifies this channel itself.
"""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from delivery.notify.alert import SENDER, Alert, Delivery, release_dedup_key
from delivery.notify.http import post_json

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX_CHARS = 1024
SOURCE = "tripgen-release"
GROUP = "tripgen"
EVENT_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


def trigger_event(routing_key: str, alert: Alert) -> dict:
    """A `trigger` event whose dedup key is the release's: later alerts of the release update one incident."""
    event = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "payload": {
            "summary": f"{alert.headline} (release {alert.release})"[:SUMMARY_MAX_CHARS],
            "source": SOURCE,
            "severity": EVENT_SEVERITY[alert.severity],
            "component": alert.service or "all-services",
            "group": GROUP,
            "class": "release",
            "custom_details": {"release": alert.release, **alert.numbers},
        },
        "client": SENDER,
    }
    if alert.run_url:
        event["client_url"] = alert.run_url
        event["links"] = [{"href": alert.run_url, "text": "Prefect flow run"}]
    return event


def resolve_event(routing_key: str, release: str) -> dict:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": release_dedup_key(release)}


class PagerDutyNotifier:
    """Pages on-call through an Events API v2 integration (its routing key is the secret)."""

    channel = "pagerduty"

    def __init__(self, routing_key: SecretStr, http: httpx.Client, events_url: str = EVENTS_URL) -> None:
        self.routing_key = routing_key
        self.http = http
        self.events_url = events_url

    def send(self, alert: Alert) -> Delivery:
        post_json(self.http, self.events_url, trigger_event(self.routing_key.get_secret_value(), alert))
        return Delivery(self.channel, True, 1, f"triggered {alert.dedup_key}")

    def resolve(self, release: str) -> Delivery:
        """Resolve the release's incident (a no-op at PagerDuty when none is open)."""
        post_json(self.http, self.events_url, resolve_event(self.routing_key.get_secret_value(), release))
        return Delivery(self.channel, True, 1, f"resolved {release_dedup_key(release)}")
