"""Jira REST API v2: an incident issue in a configured project, with the release, the numbers and the run link."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr

from delivery.notify.alert import SENDER, Alert, Delivery
from delivery.notify.http import post_json

SUMMARY_MAX_CHARS = 255
PRIORITY = {"critical": "Highest", "high": "High", "medium": "Medium", "low": "Low"}
"""Severity → the names of Jira's default priority scheme."""


class JiraConfig(BaseModel):
    """A Jira site, its account (e-mail and API token, basic auth) and where incidents go."""

    model_config = ConfigDict(frozen=True)

    url: str
    email: str
    api_token: SecretStr
    project: str
    issue_type: str = "Incident"
    set_priority: bool = False


def wiki_cell(text: str) -> str:
    """A value safe inside a Jira wiki-markup table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def issue_description(alert: Alert) -> str:
    """Jira wiki markup: the headline, a table of the facts, the flow run link."""
    rows = "\n".join(f"|{wiki_cell(label)}|{wiki_cell(value)}|" for label, value in alert.facts())
    link = f"\n\n[Prefect flow run|{alert.run_url}]" if alert.run_url else ""
    return f"h3. {alert.headline}\n\n||Measure||Value||\n{rows}{link}\n\n_Opened by the {SENDER}._"


def issue_fields(config: JiraConfig, alert: Alert) -> dict:
    """The `fields` of the create-issue request."""
    fields = {
        "project": {"key": config.project},
        "issuetype": {"name": config.issue_type},
        "summary": f"[{alert.release}] {alert.headline}"[:SUMMARY_MAX_CHARS],
        "description": issue_description(alert),
        "labels": ["tripgen-release", f"release-{alert.release}", f"severity-{alert.severity}"],
    }
    if config.set_priority:
        fields["priority"] = {"name": PRIORITY[alert.severity]}
    return fields


class JiraNotifier:
    """Creates one Jira incident per alert it is given (R-INC)."""

    channel = "jira"

    def __init__(self, config: JiraConfig, http: httpx.Client) -> None:
        self.config = config
        self.http = http

    def send(self, alert: Alert) -> Delivery:
        url = f"{self.config.url.rstrip('/')}/rest/api/2/issue"
        auth = (self.config.email, self.config.api_token.get_secret_value())
        response = post_json(self.http, url, {"fields": issue_fields(self.config, alert)}, auth=auth)
        return Delivery(self.channel, True, 1, f"created {created_key(response)}")


def created_key(response: httpx.Response) -> str:
    """The new issue's key from Jira's 201 body (`{"id", "key", "self"}`), or `?` if the body is unreadable."""
    try:
        return str(response.json()["key"])
    except (ValueError, KeyError, TypeError):
        return "?"
