"""PagerDuty: Events API v2 triggers one incident per release and resolves it; REST API v2 reads its status.

PagerDuty escalates an unacknowledged incident by the service's own escalation policy, so the
orchestrator never re-notifies this channel itself; it reads the status to escalate on its other channels.
"""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import SecretStr

from delivery.notify.alert import SENDER, Alert, Delivery, release_dedup_key
from delivery.notify.http import TIMEOUT_SECONDS, post_json

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
REST_URL = "https://api.pagerduty.com"
REST_ACCEPT = "application/vnd.pagerduty+json;version=2"
IncidentStatus = Literal["triggered", "acknowledged", "resolved"]
STATUS_ORDER: tuple[IncidentStatus, ...] = ("triggered", "acknowledged", "resolved")
"""When one incident key names several incidents (a new one after a resolved one), the open one counts."""
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


class PagerDutyIncidents:
    """Reads incident status through REST API v2 (`GET /incidents?incident_key=...`) with an API token."""

    def __init__(self, api_token: SecretStr, http: httpx.Client, rest_url: str = REST_URL) -> None:
        self.api_token = api_token
        self.http = http
        self.rest_url = rest_url.rstrip("/")

    def status(self, incident_key: str) -> IncidentStatus | None:
        """The status of the incident with `incident_key`; None when PagerDuty has none. Raises httpx.HTTPError."""
        response = self.http.get(
            f"{self.rest_url}/incidents",
            params={"incident_key": incident_key},
            headers={"Authorization": f"Token token={self.api_token.get_secret_value()}", "Accept": REST_ACCEPT},
            timeout=TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        found = {incident["status"] for incident in response.json()["incidents"]}
        return next((status for status in STATUS_ORDER if status in found), None)
