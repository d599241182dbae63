"""Credentials: a Prefect Secret block first, else the environment; an incomplete channel is simply not configured."""

from __future__ import annotations

import logging

import httpx
import pytest
from prefect.blocks import system
from prefect.settings import PREFECT_API_URL, temporary_settings

from delivery.notify.credentials import PrefectSecrets, load_credentials


def no_blocks(name: str) -> None:
    return None


def test_every_channel_from_the_environment():
    environ = {
        "TRIPGEN_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
        "TRIPGEN_SLACK_BOT_TOKEN": "xoxb-bot",
        "TRIPGEN_TEAMS_WEBHOOK_URL": "https://teams.example/hook",
        "TRIPGEN_PAGERDUTY_ROUTING_KEY": "rk",
        "TRIPGEN_JIRA_URL": "https://tripgen.atlassian.net",
        "TRIPGEN_JIRA_EMAIL": "bot@tripgen.com",
        "TRIPGEN_JIRA_API_TOKEN": "jt",
        "TRIPGEN_JIRA_PROJECT": "OPS",
        "TRIPGEN_SMTP_HOST": "smtp.tripgen.com",
        "TRIPGEN_SMTP_FROM": "bot@tripgen.com",
        "TRIPGEN_SMTP_TO": "a@tripgen.com, b@tripgen.com",
        "TRIPGEN_SMS_URL": "https://sms.tripgen.com/send",
        "TRIPGEN_SMS_TOKEN": "st",
        "TRIPGEN_SMS_TO": "+8210",
    }

    credentials = load_credentials(environ=environ, blocks=no_blocks)

    assert credentials.pagerduty_routing_key.get_secret_value() == "rk"
    assert credentials.slack_bot_token.get_secret_value() == "xoxb-bot"
    assert (credentials.jira.project, credentials.jira.issue_type, credentials.jira.set_priority) == ("OPS", "Incident", False)
    smtp = credentials.smtp
    assert (smtp.port, smtp.starttls, smtp.to, smtp.user, smtp.password) == (587, True, ("a@tripgen.com", "b@tripgen.com"), None, None)
    assert credentials.sms.to == ("+8210",)


def test_nothing_configured_is_no_error():
    credentials = load_credentials(environ={}, blocks=no_blocks)
    assert credentials.model_dump() == {
        "slack_webhook_url": None,
        "slack_bot_token": None,
        "teams_webhook_url": None,
        "pagerduty_routing_key": None,
        "pagerduty_api_token": None,
        "jira": None,
        "smtp": None,
        "sms": None,
        "contacts": {},
    }


def test_a_secret_block_wins_over_the_environment():
    blocks = {"tripgen-pagerduty-routing-key": "from-block"}

    credentials = load_credentials(environ={"TRIPGEN_PAGERDUTY_ROUTING_KEY": "from-env"}, blocks=blocks.get)

    assert credentials.pagerduty_routing_key.get_secret_value() == "from-block"


def test_an_incomplete_channel_is_not_configured_and_the_warning_names_only_variables(caplog):
    environ = {"TRIPGEN_JIRA_URL": "https://tripgen.atlassian.net", "TRIPGEN_JIRA_API_TOKEN": "token-value-123"}

    credentials = load_credentials(environ=environ, blocks=no_blocks)

    assert credentials.jira is None
    assert "jira not configured: TRIPGEN_JIRA_EMAIL, TRIPGEN_JIRA_PROJECT missing" in caplog.text
    assert "token-value-123" not in caplog.text


@pytest.mark.parametrize(("port", "configured"), [("2525", True), ("smtp", False)])
def test_the_smtp_port_must_be_a_number(port, configured):
    environ = {"TRIPGEN_SMTP_HOST": "h", "TRIPGEN_SMTP_FROM": "f@t.com", "TRIPGEN_SMTP_TO": "t@t.com"}
    environ |= {"TRIPGEN_SMTP_PORT": port, "TRIPGEN_SMTP_STARTTLS": "false"}
    smtp = load_credentials(environ=environ, blocks=no_blocks).smtp
    assert (smtp is not None) == configured
    assert smtp is None or (smtp.port, smtp.starttls) == (2525, False)


def test_escalation_contacts_by_level_and_channel(caplog):
    environ = {
        "TRIPGEN_ESCALATION_TEAM_LEAD": "sms:+821011112222, email:lead@tripgen.com, sms:+821033334444, pager:123, nonsense",
        "TRIPGEN_ESCALATION_MANAGER": "slack:<@U0MANAGER>",
    }

    contacts = load_credentials(["team-lead", "manager", "weekly-report"], environ=environ, blocks=no_blocks).contacts

    assert contacts == {
        "team-lead": {"sms": ("+821011112222", "+821033334444"), "email": ("lead@tripgen.com",)},
        "manager": {"slack": ("<@U0MANAGER>",)},
    }
    assert caplog.text.count("TRIPGEN_ESCALATION_TEAM_LEAD: an entry is not channel:address") == 2


def test_without_a_prefect_api_no_block_is_asked_for(monkeypatch):
    monkeypatch.setattr(system.Secret, "load", pytest.fail)
    with temporary_settings({PREFECT_API_URL: None}):
        assert PrefectSecrets()("tripgen-slack-webhook-url") is None


class Stored:
    def __init__(self, value: str) -> None:
        self.value = value

    def get(self) -> str:
        return self.value


def test_with_a_prefect_api_blocks_are_read_and_a_missing_one_is_none(monkeypatch):
    def load(name, **options):
        if name != "tripgen-sms-token":
            raise ValueError(f"Unable to find block document named {name} for block type secret")
        return Stored("block-token")

    monkeypatch.setattr(system.Secret, "load", load)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        secrets = PrefectSecrets()

    assert (secrets("tripgen-sms-token"), secrets("tripgen-sms-url")) == ("block-token", None)


def test_an_unreachable_prefect_api_falls_back_to_the_environment_after_one_try(monkeypatch, caplog):
    calls = []

    def load(name, **options):
        calls.append(name)
        raise httpx.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(system.Secret, "load", load)
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        secrets = PrefectSecrets()
    environ = {"TRIPGEN_PAGERDUTY_ROUTING_KEY": "from-env"}

    with caplog.at_level(logging.WARNING):
        credentials = load_credentials(environ=environ, blocks=secrets)

    assert credentials.pagerduty_routing_key.get_secret_value() == "from-env"
    assert len(calls) == 1
    assert "Prefect Secret blocks unreadable (ConnectError)" in caplog.text
