"""Failures of every HTTP notifier: timeouts, 5xx and 429 are retried (Retry-After honoured); none raises out of the dispatcher."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
import respx
from pydantic import SecretStr

from delivery.notify import Alert, Delivery, Dispatcher
from delivery.notify.dispatch import ATTEMPTS, BACKOFF_SECONDS, MAX_RETRY_AFTER_SECONDS
from delivery.notify.http import retry_after_seconds
from delivery.notify.jira import JiraConfig, JiraNotifier
from delivery.notify.pagerduty import EVENTS_URL, PagerDutyNotifier
from delivery.notify.slack import SlackNotifier
from delivery.notify.sms import SmsConfig, SmsNotifier
from delivery.notify.teams import TeamsNotifier

SLACK_URL = "https://hooks.slack.com/services/T0/B0/X0"
TEAMS_URL = "https://tripgen.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi"
JIRA_URL = "https://tripgen.atlassian.net/rest/api/2/issue"
SMS_URL = "https://sms.tripgen.com/v1/messages"


def http_notifiers(http: httpx.Client) -> dict[str, tuple[object, str]]:
    """channel → (notifier, the URL it posts to)."""
    jira = JiraConfig(url="https://tripgen.atlassian.net", email="bot@tripgen.com", api_token=SecretStr("t"), project="OPS")
    return {
        "slack": (SlackNotifier(SecretStr(SLACK_URL), http), SLACK_URL),
        "teams": (TeamsNotifier(SecretStr(TEAMS_URL), http), TEAMS_URL),
        "pagerduty": (PagerDutyNotifier(SecretStr("key"), http), EVENTS_URL),
        "jira": (JiraNotifier(jira, http), JIRA_URL),
        "sms": (SmsNotifier(SmsConfig(url=SMS_URL, token=SecretStr("t"), to=("+821000000001",)), http), SMS_URL),
    }


CHANNELS = ["slack", "teams", "pagerduty", "jira", "sms"]
OK = {"slack": 200, "teams": 202, "pagerduty": 202, "jira": 201, "sms": 202}


@pytest.fixture
def http():
    with httpx.Client() as client:
        yield client


@pytest.fixture
def mock():
    with respx.mock(assert_all_called=False) as router:
        yield router


def one_channel(channel: str, http, policy, sleeps) -> tuple[Dispatcher, str]:
    notifier, url = http_notifiers(http)[channel]
    return Dispatcher({channel: notifier}, policy.alerting, sleep=sleeps), url


def send(dispatcher: Dispatcher, channel: str, alert: Alert) -> Delivery:
    [delivery] = dispatcher.send_to([channel], alert)
    return delivery


def ok(channel: str) -> httpx.Response:
    return httpx.Response(OK[channel], json={"key": "OPS-1"} if channel == "jira" else {})


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_timeout_is_retried_after_a_backoff(channel, http, policy, sleeps, mock, alert):
    dispatcher, url = one_channel(channel, http, policy, sleeps)
    route = mock.post(url).mock(side_effect=[httpx.ReadTimeout("timed out"), ok(channel)])

    delivery = send(dispatcher, channel, alert)

    assert (delivery.delivered, delivery.attempts, route.call_count, sleeps) == (True, 2, 2, [BACKOFF_SECONDS])


@pytest.mark.parametrize("channel", CHANNELS)
def test_timeouts_every_time_end_undelivered(channel, http, policy, sleeps, mock, alert):
    dispatcher, url = one_channel(channel, http, policy, sleeps)
    mock.post(url).mock(side_effect=httpx.ConnectTimeout("timed out"))

    delivery = send(dispatcher, channel, alert)

    assert delivery == Delivery(channel, False, ATTEMPTS, "timed out (ConnectTimeout)")
    assert sleeps == [BACKOFF_SECONDS * 2**n for n in range(ATTEMPTS - 1)]


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_500_is_retried_and_then_recorded_undelivered(channel, http, policy, sleeps, mock, alert, caplog):
    dispatcher, url = one_channel(channel, http, policy, sleeps)
    route = mock.post(url).mock(return_value=httpx.Response(500))

    with caplog.at_level(logging.WARNING, logger="delivery.notify"):
        delivery = send(dispatcher, channel, alert)

    assert delivery == Delivery(channel, False, ATTEMPTS, "HTTP 500 Internal Server Error")
    assert route.call_count == ATTEMPTS
    assert f"{channel}: not delivered after {ATTEMPTS} attempt(s): HTTP 500" in caplog.text


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_429_waits_as_long_as_retry_after_says(channel, http, policy, sleeps, mock, alert):
    dispatcher, url = one_channel(channel, http, policy, sleeps)
    route = mock.post(url).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}), ok(channel)])

    delivery = send(dispatcher, channel, alert)

    assert (delivery.delivered, delivery.attempts, route.call_count, sleeps) == (True, 2, 2, [7.0])


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_retry_after_beyond_the_limit_is_not_waited_for(channel, http, policy, sleeps, mock, alert):
    dispatcher, url = one_channel(channel, http, policy, sleeps)
    mock.post(url).mock(return_value=httpx.Response(429, headers={"Retry-After": str(int(MAX_RETRY_AFTER_SECONDS) + 1)}))

    delivery = send(dispatcher, channel, alert)

    assert delivery == Delivery(channel, False, 1, "HTTP 429 Too Many Requests")
    assert sleeps == []


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_client_error_is_not_retried(channel, http, policy, sleeps, mock, alert):
    dispatcher, url = one_channel(channel, http, policy, sleeps)
    route = mock.post(url).mock(return_value=httpx.Response(400, text="invalid_payload"))

    delivery = send(dispatcher, channel, alert)

    assert (delivery, route.call_count, sleeps) == (Delivery(channel, False, 1, "HTTP 400 Bad Request"), 1, [])


def test_a_refused_connection_is_retried(http, policy, sleeps, mock, alert):
    dispatcher, url = one_channel("slack", http, policy, sleeps)
    mock.post(url).mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200)])
    assert send(dispatcher, "slack", alert) == Delivery("slack", True, 2, "HTTP 200")


def test_pagerduty_resolve_is_retried_like_a_trigger(http, policy, sleeps, mock):
    dispatcher, url = one_channel("pagerduty", http, policy, sleeps)
    mock.post(url).mock(side_effect=[httpx.Response(503, headers={"Retry-After": "2"}), httpx.Response(202)])
    assert dispatcher.resolve("v1.3.0") == Delivery("pagerduty", True, 2, "resolved tripgen-release/v1.3.0")
    assert sleeps == [2.0]


class Broken:
    """A notifier with a bug: it raises something other than DeliveryFailed."""

    channel = "slack"

    def send(self, alert: Alert) -> Delivery:
        raise RuntimeError("boom")


def test_a_notifier_bug_is_recorded_undelivered_not_raised(policy, sleeps, alert, caplog):
    dispatcher = Dispatcher({"slack": Broken()}, policy.alerting, sleep=sleeps)

    [delivery] = dispatcher.send_to(["slack"], alert)

    assert (delivery.delivered, delivery.attempts) == (False, 1)
    assert delivery.detail.startswith("notifier error RuntimeError at test_failures.py:")
    assert "slack: not delivered: notifier error RuntimeError" in caplog.text


def test_one_failing_channel_does_not_stop_the_others(http, policy, sleeps, mock, alert):
    notifiers = http_notifiers(http)
    dispatcher = Dispatcher({name: notifiers[name][0] for name in ("pagerduty", "sms")}, policy.alerting, sleep=sleeps)
    mock.post(EVENTS_URL).mock(return_value=httpx.Response(500))
    mock.post(SMS_URL).mock(return_value=httpx.Response(202))

    deliveries = dispatcher.notify(alert)

    assert [(d.notifier, d.delivered) for d in deliveries] == [("pagerduty", False), ("sms", True)]


def test_a_channel_without_credentials_is_recorded_not_configured(policy, sleeps, alert, caplog):
    dispatcher = Dispatcher({}, policy.alerting, sleep=sleeps)

    deliveries = dispatcher.notify(alert) + [dispatcher.open_incident(alert), dispatcher.resolve(alert.release)]

    assert deliveries == [
        Delivery("pagerduty", False, 0, "not configured"),
        Delivery("sms", False, 0, "not configured"),
        Delivery("jira", False, 0, "not configured"),
        Delivery("pagerduty", False, 0, "not configured"),
    ]
    assert "sms: not configured" in caplog.text


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("12", 12.0),
        ("1.5", 1.5),
        ("soon", None),
        (format_datetime(datetime(2000, 1, 1, tzinfo=timezone.utc), usegmt=True), 0.0),
    ],
)
def test_retry_after_reads_seconds_and_dates(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_a_future_http_date_counts_from_now():
    header = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    assert 110 < retry_after_seconds(header) <= 120
