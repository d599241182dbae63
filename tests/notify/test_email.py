"""E-mail against a real local SMTP server (aiosmtpd): STARTTLS with a self-signed certificate, login, both parts."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from delivery.notify import Delivery, Dispatcher
from delivery.notify.dispatch import ATTEMPTS
from delivery.notify.email import EmailNotifier, SmtpConfig
from tests.notify.conftest import RUN_URL, free_port


def config(server, certificate, **changes) -> SmtpConfig:
    base = SmtpConfig(
        host=server.host,
        port=server.port,
        user=server.inbox.user,
        password=SecretStr(server.inbox.password),
        sender="release-bot@tripgen.com",
        to=("oncall@tripgen.com", "devops@tripgen.com"),
        ca_file=certificate[0],
    )
    return base.model_copy(update=changes)


def deliver(smtp: SmtpConfig, alert, policy, sleeps) -> Delivery:
    [delivery] = Dispatcher({"email": EmailNotifier(smtp)}, policy.alerting, sleep=sleeps).send_to(["email"], alert)
    return delivery


def test_the_alert_arrives_over_starttls_after_login_as_text_and_html(smtp_server, certificate, alert, policy, sleeps):
    delivery = deliver(config(smtp_server, certificate), alert, policy, sleeps)

    assert delivery == Delivery("email", True, 1, "sent to 2 of 2 recipient(s)")
    [received] = smtp_server.inbox.received
    assert (received.over_tls, received.login) == (True, "alerts@tripgen.com")
    assert received.mail_from == "release-bot@tripgen.com"
    assert received.rcpt_tos == ["oncall@tripgen.com", "devops@tripgen.com"]
    message = received.message
    assert message["Subject"] == "[TripGen CRITICAL] Error rate above 5% after the switch (v1.3.0)"
    assert message["To"] == "oncall@tripgen.com, devops@tripgen.com"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = message.get_body(("html",)).get_content()
    assert "Release: v1.3.0\nSeverity: critical\nService: trip-service\nerror rate %: 6.25\np95 response time s: 12\nrequests: 4000" in text
    assert f"Prefect flow run: {RUN_URL}" in text
    assert "<tr><th align='left'>error rate %</th><td>6.25</td></tr>" in html
    assert f'<a href="{RUN_URL}">Open the flow run</a>' in html


def test_an_escalation_goes_to_the_levels_addresses(smtp_server, certificate, alert, policy, sleeps):
    escalated = alert.model_copy(update={"escalated_to": "team-lead", "recipients": {"email": ("lead@tripgen.com",)}})

    deliver(config(smtp_server, certificate), escalated, policy, sleeps)

    [received] = smtp_server.inbox.received
    assert received.rcpt_tos == ["lead@tripgen.com"]
    assert received.message["Subject"].startswith("[TripGen CRITICAL] Escalated to team-lead:")


def test_a_server_without_starttls_is_refused_when_tls_is_required(plain_smtp_server, certificate, alert, policy, sleeps):
    delivery = deliver(config(plain_smtp_server, certificate), alert, policy, sleeps)

    assert delivery == Delivery("email", False, 1, "the SMTP server does not offer STARTTLS")
    assert plain_smtp_server.inbox.received == []


def test_without_required_tls_a_plain_relay_is_used(plain_smtp_server, certificate, alert, policy, sleeps):
    smtp = config(plain_smtp_server, certificate, starttls=False, user=None, password=None)

    assert deliver(smtp, alert, policy, sleeps).delivered
    assert plain_smtp_server.inbox.received[0].over_tls is False


def test_an_untrusted_certificate_is_not_retried(smtp_server, certificate, alert, policy, sleeps):
    delivery = deliver(config(smtp_server, certificate, ca_file=None), alert, policy, sleeps)

    assert delivery == Delivery("email", False, 1, "TLS failed (SSLCertVerificationError)")


def test_a_refused_login_is_not_retried(smtp_server, certificate, alert, policy, sleeps):
    smtp_server.inbox.refuse_logins = True

    assert deliver(config(smtp_server, certificate), alert, policy, sleeps) == Delivery("email", False, 1, "SMTP 535")


@pytest.mark.timeout(10)
def test_an_unreachable_server_is_retried_then_recorded_undelivered(certificate, alert, policy, sleeps):
    smtp = SmtpConfig(host="127.0.0.1", port=free_port(), sender="bot@tripgen.com", to=("oncall@tripgen.com",))

    delivery = deliver(smtp, alert, policy, sleeps)

    assert delivery == Delivery("email", False, ATTEMPTS, "SMTP connection failed (ConnectionRefusedError)")
    assert len(sleeps) == ATTEMPTS - 1
