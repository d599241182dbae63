"""E-mail over SMTP with STARTTLS: one message with a plain-text and an HTML part of the same content."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape

from pydantic import BaseModel, ConfigDict, SecretStr

from delivery.notify.alert import SENDER, Alert, Delivery, DeliveryFailed

TIMEOUT_SECONDS = 15.0
DEFAULT_PORT = 587


class SmtpConfig(BaseModel):
    """The relay, its account (optional), the sender and default recipients; `starttls` refuses a relay without it."""

    model_config = ConfigDict(frozen=True)

    host: str
    port: int = DEFAULT_PORT
    user: str | None = None
    password: SecretStr | None = None
    sender: str
    to: tuple[str, ...]
    starttls: bool = True
    ca_file: str | None = None


def plain_body(alert: Alert) -> str:
    lines = [alert.headline, "", *(f"{label}: {value}" for label, value in alert.facts())]
    if alert.run_url:
        lines += ["", f"Prefect flow run: {alert.run_url}"]
    return "\n".join([*lines, "", "-- ", SENDER, ""])


def html_body(alert: Alert) -> str:
    rows = "".join(f"<tr><th align='left'>{escape(label)}</th><td>{escape(value)}</td></tr>" for label, value in alert.facts())
    link = f"<p><a href=\"{escape(alert.run_url)}\">Open the flow run</a></p>" if alert.run_url else ""
    return (
        f"<html><body><h2>{escape(alert.headline)}</h2><table>{rows}</table>{link}"
        f"<p style='color:#666'>{escape(SENDER)}</p></body></html>"
    )


def email_message(config: SmtpConfig, alert: Alert, to: tuple[str, ...]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"[TripGen {alert.severity.upper()}] {alert.headline} ({alert.release})"
    message["From"] = config.sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2])
    message.set_content(plain_body(alert))
    message.add_alternative(html_body(alert), subtype="html")
    return message


class EmailNotifier:
    """Mails the configured recipients, or an escalation's recipients when the alert names them."""

    channel = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    def send(self, alert: Alert) -> Delivery:
        to = tuple(alert.recipients.get("email") or self.config.to)
        refused = submit(self.config, email_message(self.config, alert, to))
        return Delivery(self.channel, True, 1, f"sent to {len(to) - len(refused)} of {len(to)} recipient(s)")


def submit(config: SmtpConfig, message: EmailMessage) -> dict:
    """Send `message` through the relay; returns the refused recipients, raises DeliveryFailed naming no secret."""
    try:
        return _submit(config, message)
    except smtplib.SMTPResponseException as error:
        raise DeliveryFailed(f"SMTP {error.smtp_code}", retryable=400 <= error.smtp_code < 500) from None
    except ssl.SSLError as error:
        raise DeliveryFailed(f"TLS failed ({type(error).__name__})", retryable=False) from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("every recipient refused", retryable=False) from None
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryFailed(f"SMTP connection failed ({type(error).__name__})", retryable=True) from None


def _submit(config: SmtpConfig, message: EmailMessage) -> dict:
    """Connect, STARTTLS as configured, log in when there is an account, send; returns refused recipients."""
    with smtplib.SMTP(config.host, config.port, timeout=TIMEOUT_SECONDS) as smtp:
        smtp.ehlo()
        if config.starttls:
            if not smtp.has_extn("starttls"):
                raise DeliveryFailed("the SMTP server does not offer STARTTLS", retryable=False)
            smtp.starttls(context=ssl.create_default_context(cafile=config.ca_file))
            smtp.ehlo()
        if config.user and config.password:
            smtp.login(config.user, config.password.get_secret_value())
        return smtp.send_message(message)
