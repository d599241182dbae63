"""With every channel configured from distinctive secrets, no secret shows in any log record, Delivery, repr or exception."""

from __future__ import annotations

import logging
import threading
import traceback
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import respx

from delivery.notify import Alert, DeliveryFailed, build_dispatcher, load_credentials
from delivery.notify.pagerduty import EVENTS_URL

SLACK_URL = "https://hooks.slack.com/services/T0LEAK/B0LEAK/slackCanary7f3a"
TEAMS_URL = "https://tripgen.webhook.office.com/webhookb2/teamsCanary91c2/IncomingWebhook?sig=teamsSigCanary3d"
SECRETS = {
    "TRIPGEN_SLACK_WEBHOOK_URL": SLACK_URL,
    "TRIPGEN_TEAMS_WEBHOOK_URL": TEAMS_URL,
    "TRIPGEN_PAGERDUTY_ROUTING_KEY": "pagerdutyCanary5be0",
    "TRIPGEN_JIRA_API_TOKEN": "jiraCanary44d1",
    "TRIPGEN_SMTP_PASSWORD": "smtpCanary0e9b",
    "TRIPGEN_SMS_TOKEN": "smsCanary2a6f",
}
NEEDLES = [*SECRETS.values(), "slackCanary7f3a", "teamsCanary91c2", "teamsSigCanary3d"]
"""Whole secrets and the secret parts of the webhook URLs."""
JIRA_URL = "https://tripgen.atlassian.net"
SMS_URL = "https://sms.tripgen.com/v1/messages"
SMTP_SERVER_LOGGER = "mail.log"
"""aiosmtpd, the test's SMTP server, logs the AUTH exchange it receives: that is the server's log, not ours."""


@pytest.fixture
def configured(monkeypatch, smtp_server, certificate):
    """Every channel configured through TRIPGEN_* variables; no Prefect API, so no Secret blocks."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    smtp_server.inbox.password = SECRETS["TRIPGEN_SMTP_PASSWORD"]
    public = {
        "TRIPGEN_JIRA_URL": JIRA_URL,
        "TRIPGEN_JIRA_EMAIL": "release-bot@tripgen.com",
        "TRIPGEN_JIRA_PROJECT": "OPS",
        "TRIPGEN_SMTP_HOST": smtp_server.host,
        "TRIPGEN_SMTP_PORT": str(smtp_server.port),
        "TRIPGEN_SMTP_USER": smtp_server.inbox.user,
        "TRIPGEN_SMTP_FROM": "release-bot@tripgen.com",
        "TRIPGEN_SMTP_TO": "oncall@tripgen.com",
        "TRIPGEN_SMTP_CA_FILE": certificate[0],
        "TRIPGEN_SMS_URL": SMS_URL,
        "TRIPGEN_SMS_TO": "+821000000001",
        "TRIPGEN_ESCALATION_TEAM_LEAD": "sms:+821011112222, email:lead@tripgen.com",
        "TRIPGEN_ESCALATION_NEXT_LEVEL": "email:head-of-ops@tripgen.com, slack:<@U0HEAD>",
    }
    for name, value in {**public, **SECRETS}.items():
        monkeypatch.setenv(name, value)
    return smtp_server


@pytest.fixture
def every_log(caplog):
    """Capture every record at DEBUG, the HTTP libraries' included."""
    for name in (None, "httpx", "httpcore", "delivery"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def log_texts(caplog) -> list[str]:
    texts = []
    for record in caplog.records:
        if record.name.startswith(SMTP_SERVER_LOGGER):
            continue
        texts.append(f"{record.name} {record.getMessage()}")
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    return texts


def leaks(texts: list[str]) -> list[str]:
    return [f"{needle!r} in {text!r}" for text in texts for needle in NEEDLES if needle in text]


def failing_routes(router: respx.MockRouter) -> None:
    """Each service fails, some echoing the secret in their body (a body never reaches a Delivery or a log)."""
    router.post(SLACK_URL).mock(return_value=httpx.Response(500, text=f"rollup_error for {SLACK_URL}"))
    router.post(TEAMS_URL).mock(side_effect=httpx.ReadTimeout("timed out"))
    router.post(EVENTS_URL).mock(return_value=httpx.Response(400, json={"message": "invalid routing_key pagerdutyCanary5be0"}))
    router.post(f"{JIRA_URL}/rest/api/2/issue").mock(return_value=httpx.Response(401, text="bad token jiraCanary44d1"))
    router.post(SMS_URL).mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}, text="slow down smsCanary2a6f"))


def succeeding_routes(router: respx.MockRouter) -> None:
    router.post(SLACK_URL).mock(return_value=httpx.Response(200, text="ok"))
    router.post(TEAMS_URL).mock(return_value=httpx.Response(202))
    router.post(EVENTS_URL).mock(return_value=httpx.Response(202, json={"status": "success"}))
    router.post(f"{JIRA_URL}/rest/api/2/issue").mock(return_value=httpx.Response(201, json={"key": "OPS-7"}))
    router.post(SMS_URL).mock(return_value=httpx.Response(202))


def run_everything(dispatcher, clock, alert: Alert) -> list[str]:
    """Every dispatcher call and every notifier once directly; the texts of all Deliveries and exceptions."""
    deliveries = [d for severity in ("critical", "high", "medium", "low") for d in dispatcher.notify(alert.model_copy(update={"severity": severity}))]
    deliveries += dispatcher.send_to(["teams"], alert) + [dispatcher.open_incident(alert)]
    clock.advance(timedelta(days=1))
    deliveries += dispatcher.escalate() + [dispatcher.resolve(alert.release)]
    texts = [repr(d) for d in deliveries]
    for notifier in dispatcher.notifiers.values():
        try:
            texts.append(repr(notifier.send(alert)))
        except DeliveryFailed as failure:
            texts += [str(failure), repr(failure), "".join(traceback.format_exception(failure))]
        texts.append(repr(vars(notifier)))
    return texts


def test_no_secret_in_logs_deliveries_reprs_or_exceptions(configured, every_log, policy, clock, sleeps, alert, capsys):
    dispatcher = build_dispatcher(policy, clock, sleep=sleeps)
    assert set(dispatcher.notifiers) == {"slack", "teams", "pagerduty", "jira", "email", "sms"}

    with respx.mock(assert_all_called=False) as router:
        failing_routes(router)
        configured.inbox.refuse_logins = True
        texts = run_everything(dispatcher, clock, alert)
        router.reset()
        router.routes.clear()
        succeeding_routes(router)
        configured.inbox.refuse_logins = False
        texts += run_everything(dispatcher, clock, alert)

    assert any("not delivered" in t for t in texts + log_texts(every_log)), "the failures were not exercised"
    assert configured.inbox.received, "the successes were not exercised"
    assert any(r.name == "httpx" for r in every_log.records), "httpx's request lines were not captured"
    captured = capsys.readouterr()
    everything = texts + log_texts(every_log) + [repr(load_credentials()), captured.out, captured.err]
    assert leaks(everything) == []


class FlakyService(BaseHTTPRequestHandler):
    """A real HTTP endpoint: the first POST to each path gets a 500, later ones a 200."""

    seen: set[str] = set()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status = 200 if self.path in self.seen else 500
        self.seen.add(self.path)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test server's access log is not the orchestrator's."""


def test_no_secret_in_httpx_and_httpcore_logs_of_real_requests(monkeypatch, every_log, policy, clock, sleeps, alert):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    for name in ("TRIPGEN_TEAMS_WEBHOOK_URL", "TRIPGEN_PAGERDUTY_ROUTING_KEY", "TRIPGEN_JIRA_URL", "TRIPGEN_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRIPGEN_SLACK_WEBHOOK_URL", f"{base}/services/T0LEAK/B0LEAK/slackCanary7f3a")
    monkeypatch.setenv("TRIPGEN_SMS_URL", f"{base}/sms")
    monkeypatch.setenv("TRIPGEN_SMS_TOKEN", SECRETS["TRIPGEN_SMS_TOKEN"])
    monkeypatch.setenv("TRIPGEN_SMS_TO", "+821000000001")
    try:
        dispatcher = build_dispatcher(policy, clock, sleep=sleeps)
        deliveries = dispatcher.send_to(["slack", "sms"], alert)
        dispatcher.close()
    finally:
        server.shutdown()
        server.server_close()

    assert [(d.notifier, d.delivered, d.attempts) for d in deliveries] == [("slack", True, 2), ("sms", True, 2)]
    assert {"httpx", "httpcore.connection", "httpcore.http11"} <= {r.name for r in every_log.records}
    assert leaks(log_texts(every_log) + [repr(d) for d in deliveries]) == []
