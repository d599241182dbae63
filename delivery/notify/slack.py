"""Slack through an incoming webhook: a Block Kit message (header, fields, context, a button to the flow run)."""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from delivery.notify.alert import SENDER, Alert, Delivery
from delivery.notify.http import post_json

HEADER_MAX_CHARS = 150
FIELD_MAX_CHARS = 2000
FIELDS_PER_SECTION = 10
"""Block Kit limits: header text, one section field, fields in one section."""


def mrkdwn(text: str) -> str:
    """Slack's required escaping of `&`, `<` and `>` in mrkdwn text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_message(alert: Alert) -> dict:
    """The webhook body: `text` is the notification fallback, `blocks` the message."""
    fields = [{"type": "mrkdwn", "text": clip(f"*{mrkdwn(label)}*\n{mrkdwn(value)}", FIELD_MAX_CHARS)} for label, value in alert.facts()]
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": clip(alert.headline, HEADER_MAX_CHARS), "emoji": True}}]
    if alert.escalated_to:
        mentions = " ".join(alert.recipients.get("slack", ()))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"Escalated to *{mrkdwn(alert.escalated_to)}* {mentions}".rstrip()}})
    for start in range(0, len(fields), FIELDS_PER_SECTION):
        blocks.append({"type": "section", "fields": fields[start : start + FIELDS_PER_SECTION]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"{SENDER} · release `{mrkdwn(alert.release)}`"}]})
    if alert.run_url:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open the flow run"}, "url": alert.run_url, "action_id": "open-flow-run"}
        blocks.append({"type": "actions", "elements": [button]})
    fallback = f"{alert.severity.upper()}: {alert.headline} (release {alert.release})"
    return {"text": mrkdwn(fallback), "blocks": blocks}


class SlackNotifier:
    """Posts alerts to one Slack channel's incoming webhook (the URL is the secret)."""

    channel = "slack"

    def __init__(self, webhook_url: SecretStr, http: httpx.Client) -> None:
        self.webhook_url = webhook_url
        self.http = http

    def send(self, alert: Alert) -> Delivery:
        response = post_json(self.http, self.webhook_url.get_secret_value(), slack_message(alert))
        return Delivery(self.channel, True, 1, f"HTTP {response.status_code}")
