"""SMS through a configured HTTP provider: a generic JSON POST `{"to": [numbers], "message": text}` with a bearer token.

This is the adapter point for a provider such as Twilio or Azure Communication Services: put a
small relay (or the provider's compatible endpoint) behind `TRIPGEN_SMS_URL`.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from delivery.notify.alert import Alert, Delivery, format_value
from delivery.notify.http import post_json

MESSAGE_MAX_CHARS = 320
"""Two concatenated SMS segments; the flow run link is kept whole after the text."""


class SmsConfig(BaseModel):
    """The provider endpoint, its bearer token, and the numbers paged by default."""

    model_config = ConfigDict(frozen=True)

    url: str
    token: SecretStr
    to: tuple[str, ...]


def sms_text(alert: Alert) -> str:
    """`[CRITICAL] headline | release (service) | numbers`, clipped, then the link."""
    where = f"release {alert.release}" + (f" ({alert.service})" if alert.service else "")
    numbers = ", ".join(f"{name} {format_value(value)}" for name, value in alert.numbers.items())
    text = " | ".join(part for part in (f"[{alert.severity.upper()}] {alert.headline}", where, numbers) if part)
    link = f" {alert.run_url}" if alert.run_url else ""
    room = MESSAGE_MAX_CHARS - len(link)
    return (text if len(text) <= room else text[: room - 1] + "…") + link


class SmsNotifier:
    """Texts the configured numbers, or an escalation's numbers when the alert names them."""

    channel = "sms"

    def __init__(self, config: SmsConfig, http: httpx.Client) -> None:
        self.config = config
        self.http = http

    def send(self, alert: Alert) -> Delivery:
        to = list(alert.recipients.get("sms") or self.config.to)
        headers = {"Authorization": f"Bearer {self.config.token.get_secret_value()}"}
        post_json(self.http, self.config.url, {"to": to, "message": sms_text(alert)}, headers=headers)
        return Delivery(self.channel, True, 1, f"sent to {len(to)} number(s)")
