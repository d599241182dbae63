"""Notifier credentials and escalation contacts: a Prefect Secret block when one exists, else a `TRIPGEN_*` variable.

Each value's block is named like its variable, in lower case with dashes (`TRIPGEN_SLACK_WEBHOOK_URL`
→ `tripgen-slack-webhook-url`). A channel missing a required value is simply not configured.
Secrets live in `SecretStr` (its repr hides them) and are masked in httpx's request log lines.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from delivery.notify.email import DEFAULT_PORT, SmtpConfig
from delivery.notify.jira import JiraConfig
from delivery.notify.sms import SmsConfig

log = logging.getLogger(__name__)

Lookup = Callable[[str], str | None]
CONTACT_CHANNELS = frozenset({"email", "sms", "slack", "teams"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
URL_LOGGER = "httpx"
"""httpx logs each request's URL at INFO; httpcore's trace records name only host and port."""
MASK = "***"


class PrefectSecrets:
    """Reads Prefect Secret blocks while a Prefect API is configured and answers; None for a block that does not exist."""

    def __init__(self) -> None:
        from prefect.settings import get_current_settings

        self.available = bool(get_current_settings().api.url)

    def __call__(self, name: str) -> str | None:
        if not self.available:
            return None
        from prefect.blocks.system import Secret

        try:
            value = Secret.load(name, _sync=True).get()
        except ValueError:  # Prefect's "Unable to find block document named ..."
            return None
        except Exception as error:
            log.warning("Prefect Secret blocks unreadable (%s): credentials come from the environment", type(error).__name__)
            self.available = False
            return None
        return value if isinstance(value, str) else None


class Credentials(BaseModel):
    """What each channel needs (None: not configured) and the escalation contacts by level."""

    model_config = ConfigDict(frozen=True)

    slack_webhook_url: SecretStr | None = None
    slack_bot_token: SecretStr | None = None  # chat.postMessage (approval codes' DMs, delivery/approval_delivery.py)
    teams_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_api_token: SecretStr | None = None
    jira: JiraConfig | None = None
    smtp: SmtpConfig | None = None
    sms: SmsConfig | None = None
    contacts: dict[str, dict[str, tuple[str, ...]]] = {}

    def secret_values(self) -> set[str]:
        """Every secret held, webhook URLs also as httpx writes them, to mask in logs."""
        held = [
            self.slack_webhook_url,
            self.slack_bot_token,
            self.teams_webhook_url,
            self.pagerduty_routing_key,
            self.pagerduty_api_token,
            self.jira and self.jira.api_token,
            self.smtp and self.smtp.password,
            self.sms and self.sms.token,
        ]
        values = {secret.get_secret_value() for secret in held if secret}
        for url in (self.slack_webhook_url, self.teams_webhook_url):
            if url:
                values.add(_as_httpx_writes(url.get_secret_value()))
        return {value for value in values if value}


def _as_httpx_writes(url: str) -> str:
    try:
        return str(httpx.URL(url))
    except httpx.InvalidURL:
        return url


class _Settings:
    """Values by variable name: the Secret block first, then the environment; blank counts as unset."""

    def __init__(self, environ: Mapping[str, str], blocks: Lookup) -> None:
        self.environ = environ
        self.blocks = blocks

    def get(self, variable: str) -> str | None:
        value = self.blocks(variable.lower().replace("_", "-")) or self.environ.get(variable, "")
        return value.strip() or None

    def required(self, channel: str, *variables: str) -> list[str] | None:
        """All the values, or None (with a warning naming the missing variables when only some are set)."""
        values = [self.get(variable) for variable in variables]
        missing = [variable for variable, value in zip(variables, values) if value is None]
        if missing and len(missing) < len(variables):
            log.warning("%s not configured: %s missing", channel, ", ".join(missing))
        return None if missing else values

    def flag(self, variable: str, default: bool) -> bool:
        value = self.get(variable)
        return default if value is None else value.lower() in TRUE_WORDS


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


def _jira(settings: _Settings) -> JiraConfig | None:
    found = settings.required("jira", "TRIPGEN_JIRA_URL", "TRIPGEN_JIRA_EMAIL", "TRIPGEN_JIRA_API_TOKEN", "TRIPGEN_JIRA_PROJECT")
    if not found:
        return None
    url, email, token, project = found
    return JiraConfig(
        url=url,
        email=email,
        api_token=SecretStr(token),
        project=project,
        issue_type=settings.get("TRIPGEN_JIRA_ISSUE_TYPE") or "Incident",
        set_priority=settings.flag("TRIPGEN_JIRA_SET_PRIORITY", False),
    )


def _smtp(settings: _Settings) -> SmtpConfig | None:
    found = settings.required("email", "TRIPGEN_SMTP_HOST", "TRIPGEN_SMTP_FROM", "TRIPGEN_SMTP_TO")
    if not found:
        return None
    host, sender, to = found
    port = settings.get("TRIPGEN_SMTP_PORT") or str(DEFAULT_PORT)
    if not port.isdigit():
        log.warning("email not configured: TRIPGEN_SMTP_PORT is not a port number")
        return None
    return SmtpConfig(
        host=host,
        port=int(port),
        user=settings.get("TRIPGEN_SMTP_USER"),
        password=_secret(settings.get("TRIPGEN_SMTP_PASSWORD")),
        sender=sender,
        to=_items(to),
        starttls=settings.flag("TRIPGEN_SMTP_STARTTLS", True),
        ca_file=settings.get("TRIPGEN_SMTP_CA_FILE"),
    )


def _sms(settings: _Settings) -> SmsConfig | None:
    found = settings.required("sms", "TRIPGEN_SMS_URL", "TRIPGEN_SMS_TOKEN", "TRIPGEN_SMS_TO")
    if not found:
        return None
    url, token, to = found
    return SmsConfig(url=url, token=SecretStr(token), to=_items(to))


def contact_variable(level: str) -> str:
    """`team-lead` → `TRIPGEN_ESCALATION_TEAM_LEAD`."""
    return "TRIPGEN_ESCALATION_" + level.upper().replace("-", "_")


def _contacts(settings: _Settings, levels: Iterable[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Each level's `channel:address` list, e.g. `email:lead@tripgen.com, sms:+821012345678, slack:<@U024BE7LH>`."""
    contacts: dict[str, dict[str, tuple[str, ...]]] = {}
    for level in levels:
        variable, by_channel = contact_variable(level), {}
        for entry in _items(settings.get(variable)):
            channel, _, address = (part.strip() for part in entry.partition(":"))
            if channel not in CONTACT_CHANNELS or not address:
                log.warning("%s: an entry is not channel:address with a channel among %s; ignored", variable, ", ".join(sorted(CONTACT_CHANNELS)))
                continue
            by_channel[channel] = (*by_channel.get(channel, ()), address)
        if by_channel:
            contacts[level] = by_channel
    return contacts


def load_credentials(levels: Iterable[str] = (), environ: Mapping[str, str] | None = None, blocks: Lookup | None = None) -> Credentials:
    """Every channel's credentials and the contacts of the escalation `levels`; `blocks` defaults to Prefect's Secret blocks."""
    settings = _Settings(os.environ if environ is None else environ, blocks or PrefectSecrets())
    return Credentials(
        slack_webhook_url=_secret(settings.get("TRIPGEN_SLACK_WEBHOOK_URL")),
        slack_bot_token=_secret(settings.get("TRIPGEN_SLACK_BOT_TOKEN")),
        teams_webhook_url=_secret(settings.get("TRIPGEN_TEAMS_WEBHOOK_URL")),
        pagerduty_routing_key=_secret(settings.get("TRIPGEN_PAGERDUTY_ROUTING_KEY")),
        pagerduty_api_token=_secret(settings.get("TRIPGEN_PAGERDUTY_API_TOKEN")),
        jira=_jira(settings),
        smtp=_smtp(settings),
        sms=_sms(settings),
        contacts=_contacts(settings, levels),
    )


class SecretRedaction(logging.Filter):
    """Masks known secret values in a logger's records (httpx logs every request's URL, webhook URLs included)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, MASK)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


REDACTION = SecretRedaction()


def hide_in_http_logs(secrets: Iterable[str]) -> None:
    """Mask `secrets` in every record of httpx's logger from now on."""
    REDACTION.secrets.update(secret for secret in secrets if secret)
    logger = logging.getLogger(URL_LOGGER)
    if REDACTION not in logger.filters:
        logger.addFilter(REDACTION)
