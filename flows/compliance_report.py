"""The scheduled monthly compliance report (R-AUDIT): on the 1st, last month's PDF and CSV, mailed to the compliance
and audit teams. Thin on purpose: the report is delivery.audit_report's, the mail delivery.audit_report_mail's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from delivery.audit_report import Month, build_report
from delivery.audit_report_mail import facts, mail_report, previous_month, write_report_files
from delivery.notify import load_credentials
from delivery.settings import Settings


class AuditChainBroken(RuntimeError):
    """The month's report was built and mailed, but the audit log's hash chain does not verify."""


@dataclass(frozen=True)
class ReportSent:
    """What the run produced: the month, its two files (beside the audit log) and who got them."""

    month: str
    pdf: str
    csv: str
    recipients: tuple[str, ...]
    events: int


@flow(name="compliance-report", log_prints=True)
def compliance_report(month: str | None = None) -> ReportSent:
    """Build a month's compliance report as PDF and CSV beside the audit log and mail both to the policy's
    `compliance.report_recipients`; the run fails when the mail is not sent or the audit chain is broken.

    Args:
        month: The UTC month to report, YYYY-MM (e.g. 2026-11); empty: the calendar month before this run's.
    """
    settings = Settings()
    now = datetime.now(timezone.utc)
    report = build_report(settings.audit_log, Month.parse(month) if month else previous_month(now))
    files = write_report_files(report, settings.audit_log.parent, generated=now)
    rows = "\n".join(f"| {label} | `{value}` |" for label, value in facts(report))
    create_markdown_artifact(f"# Compliance report {report.month}\n\n| | |\n|---|---|\n{rows}\n",
                             key="compliance-report", description=f"Compliance report {report.month}")
    recipients = tuple(settings.load_policy().compliance.report_recipients)
    mail_report(load_credentials().smtp, recipients, report, files)
    print(f"compliance report {report.month} ({files.pdf.name}, {files.csv.name}) mailed to {', '.join(recipients)}")
    if not report.verification.intact:
        raise AuditChainBroken(f"the audit log {settings.audit_log} is broken at line {report.verification.broken_line} "
                               f"({report.verification.problem}); the mailed report says so")
    return ReportSent(str(report.month), str(files.pdf), str(files.csv), recipients, len(report.events))
