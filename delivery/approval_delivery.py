"""Sending approvers their personal codes (R-SEC-3, issue 14): e-mail over SMTP or a Slack DM through
chat.postMessage. Prefect-free; docs/approval-codes.md describes it."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import httpx
from pydantic import SecretStr

from delivery.approval_codes import ApprovalEvidence, IssuedCode
from delivery.audit_report_mail import SMTP_VARIABLES
from delivery.notify.alert import SENDER, DeliveryFailed
from delivery.notify.credentials import Credentials
from delivery.notify.email import SmtpConfig, submit
from delivery.notify.http import post_json
from delivery.notify.slack import mrkdwn
from delivery.policy.models import ApproverChannel

log = logging.getLogger(__name__)

POST_MESSAGE_URL = "https://slack.com/api/chat.postMessage"
BOT_TOKEN_SETTING = "TRIPGEN_SLACK_BOT_TOKEN"
CODE_ID, EVIDENCE_DIGEST = "code_id", "evidence_digest"
"""The audit details naming an answer's code (its public id) and the evidence digest it was checked against."""
SHORT_HEX = 12


@dataclass(frozen=True)
class CodeMessage:
    """What one approver is sent: their code (left out of the repr), its expiry, the run's link and what they approve."""

    approver: str
    tag: str
    code: str = field(repr=False)
    code_id: str
    expires_at: datetime
    flow_run_id: str
    run_url: str
    summary: tuple[str, ...]

    @classmethod
    def of(cls, issued: IssuedCode, evidence: ApprovalEvidence, flow_run_id: str, ui_url: str) -> CodeMessage:
        """The message carrying `issued` for the run `flow_run_id`, linked from the Prefect UI at `ui_url`."""
        return cls(issued.approver, evidence.tag, issued.code, issued.code_id, issued.expires_at, flow_run_id,
                   run_link(ui_url, flow_run_id), evidence_summary(evidence))

    @property
    def expiry(self) -> str:
        return f"{self.expires_at:%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True)
class CodeDelivery:
    """Whether one approver's code left through their channel; `detail` names the address or why not, never a secret."""

    approver: str
    channel: str | None
    sent: bool
    detail: str
    code_id: str


def run_link(ui_url: str, flow_run_id: str) -> str:
    """The run's page in the Prefect UI, e.g. https://prefect.tripgen.com/runs/flow-run/<id>."""
    return f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}"


def short_digest(digest: str) -> str:
    """`sha256:0123…` (64 hex) → `sha256:0123456789ab`: enough to compare with what the UI shows."""
    algorithm, _, hexed = digest.rpartition(":")
    return f"{algorithm}:{hexed[:SHORT_HEX]}" if algorithm else hexed[:SHORT_HEX]


def evidence_summary(evidence: ApprovalEvidence) -> tuple[str, ...]:
    """A few lines of what the code approves: tag, images, gates, staging, migrations and the evidence digest."""
    failed = sorted(check for check, passed in evidence.staging.items() if not passed)
    staging = f"{len(evidence.staging) - len(failed)} of {len(evidence.staging)} checks passed"
    return (
        f"Release: {evidence.tag}",
        "Images: " + ", ".join(f"{name} {short_digest(d)}" for name, d in sorted(evidence.images.items())),
        "Gates: " + ", ".join(f"{gate} {verdict}" for gate, verdict in sorted(evidence.gates.items())),
        f"Staging: {staging}" + (f" (failed: {', '.join(failed)})" if failed else ""),
        f"Migrations: {len(evidence.migrations)} file(s)" if evidence.migrations else "Migrations: none",
        f"Evidence digest: {evidence.digest()[:SHORT_HEX]}",
    )


def answer_command(message: CodeMessage) -> str:
    """The CLI line that answers with this code."""
    return f"tripgen-release approve {message.flow_run_id} --as {message.approver} --code {message.code}"


def email_text(message: CodeMessage) -> str:
    """The plain-text mail: the code, its expiry, what it approves, the link and how to answer."""
    return "\n".join([
        f"{message.approver}, release {message.tag} waits for your approval.", "",
        f"Your code: {message.code}",
        f"It expires at {message.expiry} and counts once, for this approval only. Do not forward it.", "",
        "What you approve:", *(f"  {line}" for line in message.summary), "",
        f"Open the run: {message.run_url}",
        f"Answer with Resume there: approver {message.approver}, code as above. Or run:",
        f"  {answer_command(message)}", "", "-- ", SENDER, ""])


def slack_text(message: CodeMessage) -> str:
    """The DM in Slack's mrkdwn: the same content as the mail, the link as a Slack link."""
    return "\n".join([
        f"*{mrkdwn(message.approver)}*, release *{mrkdwn(message.tag)}* waits for your approval.",
        f"Your code: `{message.code}` (expires {message.expiry}; counts once, for this approval only; do not forward it)",
        "What you approve:", *(f"• {mrkdwn(line)}" for line in message.summary),
        f"<{message.run_url}|Open the run in Prefect> and answer with Resume (approver {mrkdwn(message.approver)}, "
        f"code as above), or run `{mrkdwn(answer_command(message))}`"])


def code_email(sender: str, address: str, message: CodeMessage) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = f"Approve {message.tag}: your code"
    mail["From"] = sender
    mail["To"] = address
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    mail.set_content(email_text(message))
    return mail


def mail_code(smtp: SmtpConfig | None, address: str, message: CodeMessage) -> str:
    """Mail the code to `address` alone; raises DeliveryFailed naming no secret."""
    if smtp is None:
        raise DeliveryFailed(f"e-mail is not configured (set {SMTP_VARIABLES})", retryable=False)
    submit(smtp, code_email(smtp.sender, address, message))
    return f"mailed to {address}"


def post_code(token: SecretStr | None, user_id: str, message: CodeMessage, http: httpx.Client) -> str:
    """DM the code to `user_id` with chat.postMessage; Slack's `ok: false` (HTTP 200) is a failure naming its error."""
    if token is None:
        raise DeliveryFailed(f"Slack DMs are not configured (set {BOT_TOKEN_SETTING}, a bot token with chat:write)",
                             retryable=False)
    response = post_json(http, POST_MESSAGE_URL, {"channel": user_id, "text": slack_text(message)},
                         headers={"Authorization": f"Bearer {token.get_secret_value()}"})
    try:
        answer = response.json()
    except ValueError:
        raise DeliveryFailed("Slack answered without JSON", retryable=True) from None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        error = answer.get("error") if isinstance(answer, dict) else None
        raise DeliveryFailed(f"Slack refused the message: {error or 'no error named'}", retryable=False)
    return f"Slack DM to {user_id}"


def deliver_codes(messages: Iterable[CodeMessage], channels: Mapping[str, ApproverChannel], credentials: Credentials,
                  http: httpx.Client) -> list[CodeDelivery]:
    """Send each message through its approver's channel (policy approvals.approver_channels); a failure stops no other."""
    deliveries = []
    for message in messages:
        delivery = _deliver(message, channels.get(message.approver), credentials, http)
        level = logging.INFO if delivery.sent else logging.WARNING
        log.log(level, "approval code %s for %s %s: %s", delivery.code_id, delivery.approver,
                "sent" if delivery.sent else "not sent", delivery.detail)
        deliveries.append(delivery)
    return deliveries


def _deliver(message: CodeMessage, channel: ApproverChannel | None, credentials: Credentials,
             http: httpx.Client) -> CodeDelivery:
    if channel is None:
        return CodeDelivery(message.approver, None, False, "no channel: list the approver in approvals.approver_channels",
                            message.code_id)
    kind = "email" if channel.email else "slack"
    try:
        if channel.email:
            detail = mail_code(credentials.smtp, channel.email, message)
        else:
            detail = post_code(credentials.slack_bot_token, channel.slack, message, http)
    except DeliveryFailed as failure:
        return CodeDelivery(message.approver, kind, False, failure.detail, message.code_id)
    return CodeDelivery(message.approver, kind, True, detail, message.code_id)
