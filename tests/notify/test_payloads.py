"""Each notifier's exact request against the service's documented format (respx stands in for the service)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import respx
from pydantic import SecretStr

from delivery.notify.jira import JiraConfig, JiraNotifier
from delivery.notify.pagerduty import EVENTS_URL, PagerDutyNotifier
from delivery.notify.slack import SlackNotifier, slack_message
from delivery.notify.sms import MESSAGE_MAX_CHARS, SmsConfig, SmsNotifier, sms_text
from delivery.notify.teams import TeamsNotifier
from tests.notify.conftest import RUN_URL

SLACK_URL = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
TEAMS_URL = "https://prod-00.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?api-version=2016-06-01&sig=xyz"
JIRA = JiraConfig(url="https://tripgen.atlassian.net/", email="release-bot@tripgen.com", api_token=SecretStr("jira-token"), project="OPS")
SMS = SmsConfig(url="https://sms.tripgen.com/v1/messages", token=SecretStr("sms-token"), to=("+821000000001", "+821000000002"))


@pytest.fixture
def http():
    with httpx.Client() as client:
        yield client


def body(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


@respx.mock
def test_slack_posts_block_kit_with_fields_context_and_a_button(http, alert):
    route = respx.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))

    delivery = SlackNotifier(SecretStr(SLACK_URL), http).send(alert)

    assert (delivery.notifier, delivery.delivered, delivery.detail) == ("slack", True, "HTTP 200")
    assert route.calls.last.request.headers["content-type"] == "application/json"
    assert body(route) == {
        "text": "CRITICAL: Error rate above 5% after the switch (release v1.3.0)",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Error rate above 5% after the switch", "emoji": True}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Release*\nv1.3.0"},
                    {"type": "mrkdwn", "text": "*Severity*\ncritical"},
                    {"type": "mrkdwn", "text": "*Service*\ntrip-service"},
                    {"type": "mrkdwn", "text": "*error rate %*\n6.25"},
                    {"type": "mrkdwn", "text": "*p95 response time s*\n12"},
                    {"type": "mrkdwn", "text": "*requests*\n4000"},
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "TripGen release orchestrator · release `v1.3.0`"}]},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open the flow run"}, "url": RUN_URL, "action_id": "open-flow-run"}
                ],
            },
        ],
    }


def test_slack_escapes_mrkdwn_and_keeps_within_block_kit_limits(alert):
    numbers = {f"check {n} <5xx> & more": n for n in range(12)}
    message = slack_message(alert.model_copy(update={"title": "x" * 200, "numbers": numbers, "release": "v1.3.0<&>"}))

    header, *sections = [b for b in message["blocks"] if b["type"] in ("header", "section")]
    assert len(header["text"]["text"]) == 150
    assert [len(s["fields"]) for s in sections] == [10, 5]
    assert sections[0]["fields"][3]["text"] == "*check 0 &lt;5xx&gt; &amp; more*\n0"
    assert message["text"].endswith("(release v1.3.0&lt;&amp;&gt;)")


def test_slack_escalation_names_the_level_and_mentions_its_contacts(alert):
    escalated = alert.model_copy(update={"escalated_to": "team-lead", "recipients": {"slack": ("<@U024BE7LH>",)}})

    blocks = slack_message(escalated)["blocks"]

    assert blocks[0]["text"]["text"] == "Escalated to team-lead: Error rate above 5% after the switch"
    assert blocks[1] == {"type": "section", "text": {"type": "mrkdwn", "text": "Escalated to *team-lead* <@U024BE7LH>"}}


def test_slack_without_a_run_link_has_no_button(alert):
    blocks = slack_message(alert.model_copy(update={"run_url": None}))["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "context"]


@respx.mock
def test_teams_posts_a_message_with_an_adaptive_card(http, alert):
    route = respx.post(TEAMS_URL).mock(return_value=httpx.Response(202))

    delivery = TeamsNotifier(SecretStr(TEAMS_URL), http).send(alert)

    assert (delivery.notifier, delivery.delivered, delivery.detail) == ("teams", True, "HTTP 202")
    assert body(route) == {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "text": "Error rate above 5% after the switch",
                            "size": "Large",
                            "weight": "Bolder",
                            "color": "Attention",
                            "wrap": True,
                        },
                        {
                            "type": "FactSet",
                            "facts": [
                                {"title": "Release", "value": "v1.3.0"},
                                {"title": "Severity", "value": "critical"},
                                {"title": "Service", "value": "trip-service"},
                                {"title": "error rate %", "value": "6.25"},
                                {"title": "p95 response time s", "value": "12"},
                                {"title": "requests", "value": "4000"},
                            ],
                        },
                        {"type": "TextBlock", "text": "TripGen release orchestrator", "size": "Small", "isSubtle": True, "wrap": True},
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Open the flow run", "url": RUN_URL}],
                },
            }
        ],
    }


@respx.mock
def test_pagerduty_triggers_an_events_v2_event_keyed_by_release(http, alert):
    accepted = {"status": "success", "message": "Event processed", "dedup_key": "tripgen-release/v1.3.0"}
    route = respx.post(EVENTS_URL).mock(return_value=httpx.Response(202, json=accepted))

    delivery = PagerDutyNotifier(SecretStr("R0UTINGKEY00000000000000000000AB"), http).send(alert)

    assert (delivery.notifier, delivery.delivered, delivery.detail) == ("pagerduty", True, "triggered tripgen-release/v1.3.0")
    assert body(route) == {
        "routing_key": "R0UTINGKEY00000000000000000000AB",
        "event_action": "trigger",
        "dedup_key": "tripgen-release/v1.3.0",
        "payload": {
            "summary": "Error rate above 5% after the switch (release v1.3.0)",
            "source": "tripgen-release",
            "severity": "critical",
            "component": "trip-service",
            "group": "tripgen",
            "class": "release",
            "custom_details": {"release": "v1.3.0", "error rate %": 6.25, "p95 response time s": 12.0, "requests": 4000},
        },
        "client": "TripGen release orchestrator",
        "client_url": RUN_URL,
        "links": [{"href": RUN_URL, "text": "Prefect flow run"}],
    }


@pytest.mark.parametrize(("severity", "event_severity"), [("critical", "critical"), ("high", "error"), ("medium", "warning"), ("low", "info")])
@respx.mock
def test_pagerduty_severity_uses_the_events_api_levels(http, alert, severity, event_severity):
    route = respx.post(EVENTS_URL).mock(return_value=httpx.Response(202))
    PagerDutyNotifier(SecretStr("key"), http).send(alert.model_copy(update={"severity": severity}))
    assert body(route)["payload"]["severity"] == event_severity


@respx.mock
def test_pagerduty_resolves_the_release_incident_by_its_dedup_key(http):
    route = respx.post(EVENTS_URL).mock(return_value=httpx.Response(202, json={"status": "success"}))

    delivery = PagerDutyNotifier(SecretStr("R0UTINGKEY00000000000000000000AB"), http).resolve("v1.3.0")

    assert (delivery.delivered, delivery.detail) == (True, "resolved tripgen-release/v1.3.0")
    assert body(route) == {"routing_key": "R0UTINGKEY00000000000000000000AB", "event_action": "resolve", "dedup_key": "tripgen-release/v1.3.0"}


@respx.mock
def test_jira_creates_an_incident_with_basic_auth(http, alert):
    route = respx.post("https://tripgen.atlassian.net/rest/api/2/issue").mock(
        return_value=httpx.Response(201, json={"id": "10042", "key": "OPS-42", "self": "https://tripgen.atlassian.net/rest/api/2/issue/10042"})
    )

    delivery = JiraNotifier(JIRA, http).send(alert)

    assert (delivery.notifier, delivery.delivered, delivery.detail) == ("jira", True, "created OPS-42")
    expected_auth = "Basic " + base64.b64encode(b"release-bot@tripgen.com:jira-token").decode()
    assert route.calls.last.request.headers["authorization"] == expected_auth
    assert body(route) == {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Incident"},
            "summary": "[v1.3.0] Error rate above 5% after the switch",
            "description": (
                "h3. Error rate above 5% after the switch\n\n"
                "||Measure||Value||\n"
                "|Release|v1.3.0|\n|Severity|critical|\n|Service|trip-service|\n"
                "|error rate %|6.25|\n|p95 response time s|12|\n|requests|4000|\n\n"
                f"[Prefect flow run|{RUN_URL}]\n\n"
                "_Opened by the TripGen release orchestrator._"
            ),
            "labels": ["tripgen-release", "release-v1.3.0", "severity-critical"],
        }
    }


@respx.mock
def test_jira_sets_priority_and_issue_type_when_configured(http, alert):
    route = respx.post("https://tripgen.atlassian.net/rest/api/2/issue").mock(return_value=httpx.Response(201, json={"key": "OPS-43"}))
    config = JIRA.model_copy(update={"issue_type": "Bug", "set_priority": True})

    JiraNotifier(config, http).send(alert.model_copy(update={"severity": "high"}))

    fields = body(route)["fields"]
    assert (fields["issuetype"], fields["priority"]) == ({"name": "Bug"}, {"name": "High"})


@respx.mock
def test_sms_posts_to_and_message_with_a_bearer_token(http, alert):
    route = respx.post("https://sms.tripgen.com/v1/messages").mock(return_value=httpx.Response(202))

    delivery = SmsNotifier(SMS, http).send(alert)

    assert (delivery.notifier, delivery.delivered, delivery.detail) == ("sms", True, "sent to 2 number(s)")
    assert route.calls.last.request.headers["authorization"] == "Bearer sms-token"
    assert body(route) == {
        "to": ["+821000000001", "+821000000002"],
        "message": (
            "[CRITICAL] Error rate above 5% after the switch | release v1.3.0 (trip-service)"
            f" | error rate % 6.25, p95 response time s 12, requests 4000 {RUN_URL}"
        ),
    }


@respx.mock
def test_sms_escalation_texts_the_levels_numbers(http, alert):
    route = respx.post("https://sms.tripgen.com/v1/messages").mock(return_value=httpx.Response(200))
    escalated = alert.model_copy(update={"escalated_to": "team-lead", "recipients": {"sms": ("+821099999999",)}})

    SmsNotifier(SMS, http).send(escalated)

    assert body(route)["to"] == ["+821099999999"]
    assert body(route)["message"].startswith("[CRITICAL] Escalated to team-lead: Error rate")


def test_a_long_sms_is_clipped_but_keeps_the_whole_link(alert):
    text = sms_text(alert.model_copy(update={"title": "y" * 500}))
    assert len(text) == MESSAGE_MAX_CHARS and text.endswith(f"… {RUN_URL}")
