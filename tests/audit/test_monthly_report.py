"""The scheduled monthly compliance report (R-AUDIT): the flow on a real Prefect server mails November's PDF and CSV
to the policy's compliance and audit teams through a real SMTP server (aiosmtpd, STARTTLS, login), fails naming the
server when the mail is not sent, and prefect.yaml schedules it on the 1st."""

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from prefect import get_client
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from pypdf import PdfReader

from delivery import audit
from delivery.audit import AuditLog
from delivery.audit_report import Month
from delivery.audit_report_mail import ReportNotSent, previous_month
from delivery.localdb import free_port
from delivery.policy.loader import load_policy
from flows.compliance_report import AuditChainBroken, compliance_report
from tests.conftest import REPO
from tests.notify.conftest import certificate, smtp_server  # noqa: F401 (fixtures)
from tests.waiting import wait_until

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)

POLICY = REPO / "policies" / "demo.yaml"
RECIPIENTS = load_policy(POLICY).compliance.report_recipients
ALERTS_TO = "oncall@tripgen.example"


@pytest.fixture(scope="module", autouse=True)
def prefect_server(prefect_api):
    """The test process's Prefect server (tests/conftest.py) for this module's flow runs."""
    return prefect_api


class AuditClock(datetime):
    """Stands in for delivery.audit's datetime so each record is written at the time the test gives."""

    moment = datetime(2026, 10, 1, tzinfo=timezone.utc)

    @classmethod
    def now(cls, tz=None):
        return cls.moment


@pytest.fixture
def log(tmp_path, monkeypatch) -> AuditLog:
    """An October release (approved by demo-lead and ops-anna) and two November ones (v1.4.0 by demo-ops and
    sec-lee; v1.4.1, a hotfix approved by policy), in TRIPGEN_AUDIT_LOG."""
    monkeypatch.setattr(audit, "datetime", AuditClock)
    log = AuditLog(tmp_path / "audit" / "audit.jsonl")
    for when, event, actor, release, details in [
        ("2026-10-14T09:00", "deployment_initiated", "release-manager", "v1.3.0", {"hotfix": False}),
        ("2026-10-14T09:05", "approval_granted", "demo-lead", "v1.3.0", {"comment": "ok", "kind": "production"}),
        ("2026-10-14T09:06", "approval_granted", "ops-anna", "v1.3.0", {"comment": "ok", "kind": "production"}),
        ("2026-10-14T09:30", "deployment_completed", "release-manager", "v1.3.0", {"outcome": "released", "seconds": 1800.0}),
        ("2026-11-05T10:00", "deployment_initiated", "release-manager", "v1.4.0", {"hotfix": False}),
        ("2026-11-05T10:04", "approval_granted", "demo-ops", "v1.4.0", {"comment": "fine", "kind": "production"}),
        ("2026-11-05T10:07", "approval_granted", "sec-lee", "v1.4.0", {"comment": "fine", "kind": "production"}),
        ("2026-11-05T10:20", "traffic_switched", "release-manager", "v1.4.0",
         {"service": "trip-service", "from_color": "blue", "to_color": "green", "seconds": 1.4}),
        ("2026-11-05T10:50", "deployment_completed", "release-manager", "v1.4.0", {"outcome": "released", "seconds": 3000.0}),
        ("2026-11-20T03:00", "deployment_initiated", "oncall-park", "v1.4.1", {"hotfix": True}),
        ("2026-11-20T03:00:05", "approval_granted", "policy", "v1.4.1", {"reason": "critical security hotfix", "kind": "hotfix"}),
        ("2026-11-20T03:30", "deployment_completed", "oncall-park", "v1.4.1", {"outcome": "released", "seconds": 1800.0}),
    ]:
        AuditClock.moment = datetime.fromisoformat(when).replace(tzinfo=timezone.utc)
        log.append(event, actor, release, flow_run_id=f"run-{release}", **details)
    return log


@pytest.fixture
def worker_env(log, smtp_server, certificate, monkeypatch):  # noqa: F811 (fixtures)
    """The worker's TRIPGEN_* environment: the demo policy, the audit log, and the local SMTP relay with its account."""
    for name, value in {
        "TRIPGEN_POLICY": str(POLICY), "TRIPGEN_AUDIT_LOG": str(log.path),
        "TRIPGEN_SMTP_HOST": smtp_server.host, "TRIPGEN_SMTP_PORT": str(smtp_server.port),
        "TRIPGEN_SMTP_USER": smtp_server.inbox.user, "TRIPGEN_SMTP_PASSWORD": smtp_server.inbox.password,
        "TRIPGEN_SMTP_FROM": "release-bot@tripgen.example", "TRIPGEN_SMTP_TO": ALERTS_TO,
        "TRIPGEN_SMTP_CA_FILE": certificate[0],
    }.items():
        monkeypatch.setenv(name, value)
    return smtp_server


def pdf_text(data: bytes) -> str:
    """Every page's text, wrapped lines joined by single spaces."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def artifacts(flow_run_id) -> list[str]:
    """The run's artifacts' content, as the server keeps it."""
    with get_client(sync_client=True) as client:
        return [a.data for a in client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))]


def run_logs(flow_run_id) -> list[str]:
    """The run's log messages, once the server has the last one ("Finished in state ..."): they are sent in batches."""
    def read() -> list[str] | None:
        with get_client(sync_client=True) as client:
            messages = [e.message for e in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]
        return messages if any(m.startswith("Finished in state") for m in messages) else None

    return wait_until(read, 60, "the flow run's last log line on the server")


def test_the_flow_mails_the_months_pdf_and_csv_to_the_compliance_and_audit_teams(worker_env, log):
    state = compliance_report(month="2026-11", return_state=True)

    assert state.is_completed(), state.message
    [received] = worker_env.inbox.received
    assert (received.over_tls, received.login) == (True, worker_env.inbox.user)
    assert received.rcpt_tos == RECIPIENTS and ALERTS_TO not in received.rcpt_tos
    assert received.message["Subject"] == "TripGen compliance report 2026-11"
    pdf, table = received.message.iter_attachments()
    assert (pdf.get_content_type(), pdf.get_filename()) == ("application/pdf", "audit-report-2026-11.pdf")
    assert (table.get_content_type(), table.get_filename()) == ("text/csv", "audit-report-2026-11.csv")

    pdf_bytes, csv_bytes = pdf.get_payload(decode=True), table.get_payload(decode=True)
    text = pdf_text(pdf_bytes)
    for expected in ("2026-11", "v1.4.0", "v1.4.1", "demo-ops", "sec-lee", "oncall-park", "hotfix auto-approval"):
        assert expected in text, expected
    assert "v1.3.0" not in text and "ops-anna" not in text
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode())))
    november = [r for r in log.records() if r["time"].startswith("2026-11")]
    assert [(int(r["seq"]), r["event"], r["release"]) for r in rows] == [(r["seq"], r["event"], r["release"]) for r in november]

    kept = log.path.parent
    assert (kept / "audit-report-2026-11.pdf").read_bytes() == pdf_bytes
    assert (kept / "audit-report-2026-11.csv").read_bytes() == csv_bytes
    sent = state.result()
    assert (sent.month, sent.recipients, sent.events) == ("2026-11", tuple(RECIPIENTS), len(november))

    [artifact] = artifacts(state.state_details.flow_run_id)
    messages = run_logs(state.state_details.flow_run_id)
    head = log.records()[-1]["sha256"]
    for expected in ("Compliance report 2026-11", "| Audit events | `8` |", "intact (12 records)", head):
        assert expected in artifact, expected
    body = received.message.get_body(("plain",)).get_content()
    assert "Chain: intact (12 records)" in body and f"Chain head: {head}" in body
    assert any("mailed to " + ", ".join(RECIPIENTS) in m for m in messages)
    assert worker_env.inbox.password not in artifact + body + "".join(messages)


def test_a_broken_chain_is_mailed_and_fails_the_run(worker_env, log):
    log.path.write_text(log.path.read_text().replace("ops-anna", "ops-anya"))

    with pytest.raises(AuditChainBroken, match="broken at line 3"):
        compliance_report(month="2026-11")

    [received] = worker_env.inbox.received
    assert "Chain: BROKEN at line 3: content does not match its sha256" in received.message.get_body(("plain",)).get_content()


def test_a_refused_login_fails_the_run_naming_the_server_and_not_the_password(worker_env):
    worker_env.inbox.refuse_logins = True

    state = compliance_report(month="2026-11", return_state=True)

    assert state.is_failed()
    with pytest.raises(ReportNotSent) as failure:
        state.result()
    message = str(failure.value)
    assert message == (f"compliance report 2026-11 not sent via SMTP server {worker_env.host}:{worker_env.port} "
                       f"to {', '.join(RECIPIENTS)}: SMTP 535")
    logs = run_logs(state.state_details.flow_run_id)
    assert any(message in line for line in logs)
    assert worker_env.inbox.password not in state.message + "".join(logs)
    assert worker_env.inbox.received == []


def test_a_server_that_is_down_fails_the_run_naming_it(worker_env, monkeypatch):
    port = free_port()
    monkeypatch.setenv("TRIPGEN_SMTP_PORT", str(port))

    with pytest.raises(ReportNotSent, match=f"via SMTP server 127.0.0.1:{port} to .*SMTP connection failed \\(ConnectionRefusedError\\)"):
        compliance_report(month="2026-11")


def test_without_smtp_settings_the_run_fails_saying_what_to_set(worker_env, monkeypatch):
    monkeypatch.delenv("TRIPGEN_SMTP_HOST")

    with pytest.raises(ReportNotSent, match="e-mail is not configured \\(set TRIPGEN_SMTP_HOST, TRIPGEN_SMTP_FROM and TRIPGEN_SMTP_TO"):
        compliance_report(month="2026-11")


@pytest.mark.parametrize(("now", "month"), [
    (datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc), "2026-11"),  # the scheduled run
    (datetime(2027, 1, 1, 6, 0, tzinfo=timezone.utc), "2026-12"),  # across the year
    (datetime(2026, 3, 31, 23, 59, 59, tzinfo=timezone.utc), "2026-02"),
    (datetime(2026, 12, 1, 8, 0, tzinfo=timezone(timedelta(hours=9))), "2026-10"),  # Seoul's Dec 1st is Nov 30th in UTC
])
def test_the_default_month_is_the_utc_month_before_now(now, month):
    assert previous_month(now) == Month.parse(month)


def test_the_deployment_runs_on_the_first_of_each_month():
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(spec)
    [deployment] = [d for d in spec["deployments"] if d["entrypoint"] == "flows.compliance_report.compliance_report"]
    assert deployment["name"] == "production" and deployment["work_pool"]["name"] == "tripgen-release"
    assert deployment["schedules"] == [{"cron": "0 6 1 * *", "timezone": "UTC"}]
