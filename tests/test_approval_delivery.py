"""Sending personal approval codes: e-mail through a real local SMTP server (aiosmtpd, STARTTLS, login), Slack DMs
through chat.postMessage as Slack documents it (respx), no code or credential in reprs, reasons or logs, and the
verifier's inputs read from a real audit log."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import httpx
import pytest
import respx
from pydantic import SecretStr

from delivery.approval_codes import ApprovalEvidence, issue_code
from delivery.approval_delivery import POST_MESSAGE_URL, CodeDelivery, CodeMessage, deliver_codes, evidence_summary
from delivery.audit import AuditLog
from delivery.notify.credentials import Credentials
from delivery.policy.models import ApproverChannel
from tests.notify.conftest import certificate, smtp_server  # noqa: F401 (fixtures)
from tests.notify.test_email import config

KEY = b"approval-code-key-for-tests-0123456789"
RUN = "0b6c2d3e-4f50-4a1b-8c9d-0e1f2a3b4c5d"
UI = "https://prefect.tripgen.com/"
RUN_URL = f"https://prefect.tripgen.com/runs/flow-run/{RUN}"
EXPIRES = datetime(2025, 5, 12, 2, 29, 59, tzinfo=timezone.utc)
BOT_TOKEN = "xoxb-17-canary-bot-token"
EVIDENCE = ApprovalEvidence(
    tag="v1.2.0",
    images={"trip-service": "sha256:" + "ab" * 32, "api-gateway": "sha256:" + "0f" * 32},
    gates={"security": "passed", "performance": "warning"},
    staging={"trip-service health": True, "api-gateway health": False},
    migrations={"v1.2.0/expand/001.sql": "c" * 64},
)
CHANNELS = {
    "lead.choi": ApproverChannel(email="lead.choi@tripgen.com"),
    "ops.kang": ApproverChannel(email="ops.kang@tripgen.com"),
    "ops.lee": ApproverChannel(slack="U024BE7LH"),
}


def message(approver: str) -> CodeMessage:
    issued = issue_code(KEY, RUN, "approval-1", approver, EVIDENCE.digest(), EXPIRES)
    return CodeMessage.of(issued, EVIDENCE, RUN, UI)


def credentials(smtp_server, certificate, **changes) -> Credentials:  # noqa: F811 (fixtures)
    return Credentials(smtp=config(smtp_server, certificate), slack_bot_token=SecretStr(BOT_TOKEN)).model_copy(update=changes)


def text_of(received) -> str:
    return received.message.get_body(("plain",)).get_content().replace("\r\n", "\n")


@pytest.fixture
def slack():
    with respx.mock(assert_all_called=False) as router:
        yield router.post(POST_MESSAGE_URL)


def test_the_summary_shortens_digests_and_names_each_verdict():
    assert evidence_summary(EVIDENCE) == (
        "Release: v1.2.0",
        "Images: api-gateway sha256:0f0f0f0f0f0f, trip-service sha256:abababababab",
        "Gates: performance warning, security passed",
        "Staging: 1 of 2 checks passed (failed: api-gateway health)",
        "Migrations: 1 file(s)",
        f"Evidence digest: {EVIDENCE.digest()[:12]}",
    )


def test_each_approver_is_mailed_their_own_code_alone(smtp_server, certificate):  # noqa: F811 (fixtures)
    choi, kang = message("lead.choi"), message("ops.kang")

    with httpx.Client() as http:
        deliveries = deliver_codes([choi, kang], CHANNELS, credentials(smtp_server, certificate), http)

    assert deliveries == [CodeDelivery("lead.choi", "email", True, "mailed to lead.choi@tripgen.com", choi.code_id),
                          CodeDelivery("ops.kang", "email", True, "mailed to ops.kang@tripgen.com", kang.code_id)]
    first, second = smtp_server.inbox.received
    assert (first.rcpt_tos, second.rcpt_tos) == (["lead.choi@tripgen.com"], ["ops.kang@tripgen.com"])
    assert (first.over_tls, first.message["Subject"]) == (True, "Approve v1.2.0: your code")
    body = text_of(first)
    assert f"Your code: {choi.code}\nIt expires at 2025-05-12 02:29:59 UTC" in body
    assert kang.code not in body and kang.code in text_of(second)
    assert f"Open the run: {RUN_URL}\n" in body
    assert f"tripgen-release approve {RUN} --as lead.choi --code {choi.code}" in body
    assert "  Images: api-gateway sha256:0f0f0f0f0f0f, trip-service sha256:abababababab\n" in body


def test_a_slack_approver_gets_a_dm_through_chat_post_message(slack, smtp_server, certificate):  # noqa: F811 (fixtures)
    slack.respond(200, json={"ok": True, "channel": "D024BE91L", "ts": "1503435956.000247"})
    lee = message("ops.lee")

    with httpx.Client() as http:
        [delivery] = deliver_codes([lee], CHANNELS, credentials(smtp_server, certificate), http)

    assert delivery == CodeDelivery("ops.lee", "slack", True, "Slack DM to U024BE7LH", lee.code_id)
    request = slack.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.content)
    assert set(body) == {"channel", "text"} and body["channel"] == "U024BE7LH"
    assert f"Your code: `{lee.code}` (expires 2025-05-12 02:29:59 UTC;" in body["text"]
    assert f"<{RUN_URL}|Open the run in Prefect>" in body["text"]
    assert "• Gates: performance warning, security passed" in body["text"]


@pytest.mark.parametrize(("answer", "reason"), [
    (httpx.Response(200, json={"ok": False, "error": "channel_not_found"}), "Slack refused the message: channel_not_found"),
    (httpx.Response(200, json={"ok": False, "error": "missing_scope", "needed": "chat:write"}), "Slack refused the message: missing_scope"),
    (httpx.Response(429, headers={"Retry-After": "30"}), "HTTP 429 Too Many Requests"),
    (httpx.Response(200, text="<html>proxy</html>"), "Slack answered without JSON"),
])
def test_a_failing_slack_dm_names_why_and_the_mail_still_goes(slack, smtp_server, certificate, answer, reason):  # noqa: F811
    slack.mock(return_value=answer)
    choi, lee = message("lead.choi"), message("ops.lee")

    with httpx.Client() as http:
        deliveries = deliver_codes([lee, choi], CHANNELS, credentials(smtp_server, certificate), http)

    assert [(d.approver, d.sent, d.detail) for d in deliveries] == [
        ("ops.lee", False, reason), ("lead.choi", True, "mailed to lead.choi@tripgen.com")]
    [received] = smtp_server.inbox.received
    assert choi.code in text_of(received)


def test_a_refused_smtp_login_fails_the_mail_and_the_slack_dm_still_goes(slack, smtp_server, certificate):  # noqa: F811
    slack.respond(200, json={"ok": True})
    smtp_server.inbox.refuse_logins = True

    with httpx.Client() as http:
        deliveries = deliver_codes([message("lead.choi"), message("ops.lee")], CHANNELS,
                                   credentials(smtp_server, certificate), http)

    assert [(d.approver, d.channel, d.sent, d.detail) for d in deliveries] == [
        ("lead.choi", "email", False, "SMTP 535"), ("ops.lee", "slack", True, "Slack DM to U024BE7LH")]
    assert smtp_server.inbox.received == []


def test_missing_channels_and_settings_are_named(slack):
    with httpx.Client() as http:
        deliveries = deliver_codes([message("lead.choi"), message("ops.lee"), message("sec.yoon")], CHANNELS,
                                   Credentials(), http)

    assert [(d.approver, d.sent, d.detail) for d in deliveries] == [
        ("lead.choi", False, "e-mail is not configured (set TRIPGEN_SMTP_HOST, TRIPGEN_SMTP_FROM and TRIPGEN_SMTP_TO)"),
        ("ops.lee", False, "Slack DMs are not configured (set TRIPGEN_SLACK_BOT_TOKEN, a bot token with chat:write)"),
        ("sec.yoon", False, "no channel: list the approver in approvals.approver_channels")]
    assert not slack.called


def test_no_code_token_or_password_in_reprs_reasons_or_logs(slack, smtp_server, certificate, caplog):  # noqa: F811
    slack.respond(200, json={"ok": False, "error": "invalid_auth"})
    messages = [message("lead.choi"), message("ops.kang"), message("ops.lee")]
    smtp_server.inbox.refuse_logins = True
    caplog.set_level(logging.DEBUG)

    with httpx.Client() as http:
        deliveries = deliver_codes(messages, CHANNELS, credentials(smtp_server, certificate), http)

    assert not any(d.sent for d in deliveries)
    shown = repr(deliveries) + repr(messages) + caplog.text
    assert "approval code" in caplog.text and messages[0].code_id in caplog.text
    for secret in (*(m.code for m in messages), BOT_TOKEN, smtp_server.inbox.password):
        assert secret not in shown


