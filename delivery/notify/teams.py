"""Microsoft Teams through an incoming webhook or a Workflows trigger: a message carrying an Adaptive Card."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from delivery.notify.alert import SENDER, Alert, Delivery
from delivery.notify.http import post_json

CARD_VERSION = "1.4"
TITLE_COLOR = {"critical": "Attention", "high": "Attention", "medium": "Warning", "low": "Default"}


def adaptive_card(alert: Alert) -> dict:
    """The Adaptive Card: headline, escalation, facts, sender, and an Action.OpenUrl to the flow run."""
    body: list[dict] = [
        {"type": "TextBlock", "text": alert.headline, "size": "Large", "weight": "Bolder", "color": TITLE_COLOR[alert.severity], "wrap": True}
    ]
    if alert.escalated_to:
        names = ", ".join(alert.recipients.get("teams", ()))
        body.append({"type": "TextBlock", "text": f"Escalated to {alert.escalated_to}{': ' + names if names else ''}", "wrap": True})
    body.append({"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in alert.facts()]})
    body.append({"type": "TextBlock", "text": SENDER, "size": "Small", "isSubtle": True, "wrap": True})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": CARD_VERSION, "body": body}
    if alert.run_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the flow run", "url": alert.run_url}]
    return card


def teams_message(alert: Alert) -> dict:
    """The webhook body, as Microsoft documents it for incoming webhooks and Workflows."""
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": adaptive_card(alert)}
    return {"type": "message", "attachments": [attachment]}


class TeamsNotifier:
    """Posts alerts to a Teams channel's webhook (the URL, with its signature, is the secret)."""

    channel = "teams"

    def __init__(self, webhook_url: SecretStr, http: httpx.Client) -> None:
        self.webhook_url = webhook_url
        self.http = http

    def send(self, alert: Alert) -> Delivery:
        response = post_json(self.http, self.webhook_url.get_secret_value(), teams_message(alert))
        return Delivery(self.channel, True, 1, f"HTTP {response.status_code}")
