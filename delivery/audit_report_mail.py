"""The monthly compliance report's delivery (R-AUDIT): which month, its PDF and CSV files, and the mail carrying
both to the compliance and audit teams. Prefect-free: flows/compliance_report.py runs it on a schedule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from delivery.audit_report import Month, MonthReport, write_csv
from delivery.audit_report_pdf import write_pdf
from delivery.notify.alert import SENDER, DeliveryFailed
from delivery.notify.email import SmtpConfig, submit

SMTP_VARIABLES = "TRIPGEN_SMTP_HOST, TRIPGEN_SMTP_FROM and TRIPGEN_SMTP_TO"


class ReportNotSent(RuntimeError):
    """The report was not mailed; the message names the relay and the recipients, never the account's password."""


@dataclass(frozen=True)
class ReportFiles:
    """The two files of one month's report."""

    pdf: Path
    csv: Path


def previous_month(now: datetime) -> Month:
    """The calendar month before the one `now` (timezone-aware) falls in, in UTC: 2027-01-01T06:00Z → 2026-12."""
    utc = now.astimezone(timezone.utc)
    return Month(utc.year - 1, 12) if utc.month == 1 else Month(utc.year, utc.month - 1)


def write_report_files(report: MonthReport, folder: Path, generated: datetime) -> ReportFiles:
    """Write audit-report-MONTH.pdf and audit-report-MONTH.csv into `folder`, replacing an earlier run's."""
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(folder / f"audit-report-{report.month}.pdf", folder / f"audit-report-{report.month}.csv")
    write_pdf(report, files.pdf, generated=generated)
    with files.csv.open("w", newline="", encoding="utf-8") as handle:
        write_csv(report, handle)
    return files


def facts(report: MonthReport) -> list[tuple[str, str]]:
    """What the mail and the run's artifact state: the month, its counts, the chain's verification and head."""
    checked = report.verification
    chain = (f"intact ({checked.records} records)" if checked.intact
             else f"BROKEN at line {checked.broken_line}: {checked.problem}")
    return [
        ("Month", str(report.month)),
        ("Release runs", f"{len(report.runs)} ({len(report.releases)} releases, {len(report.runs) - len(report.releases)} rollbacks)"),
        ("Audit events", str(len(report.events))),
        ("Call-outs", str(len(report.notices))),
        ("Chain", chain),
        ("Chain head", report.head.sha256 if report.head else "(empty log)"),
    ]


def report_message(sender: str, recipients: Sequence[str], report: MonthReport, files: ReportFiles) -> EmailMessage:
    """A plain-text summary with the PDF and the CSV attached."""
    message = EmailMessage()
    message["Subject"] = f"TripGen compliance report {report.month}"
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    lines = [f"The release compliance report of {report.month} (UTC) is attached as PDF and CSV.", "",
             *(f"{label}: {value}" for label, value in facts(report))]
    message.set_content("\n".join([*lines, "", "-- ", SENDER, ""]))
    message.add_attachment(files.pdf.read_bytes(), maintype="application", subtype="pdf", filename=files.pdf.name)
    message.add_attachment(files.csv.read_bytes(), maintype="text", subtype="csv", filename=files.csv.name)
    return message


def mail_report(smtp: SmtpConfig | None, recipients: Sequence[str], report: MonthReport, files: ReportFiles) -> None:
    """Mail both files to `recipients` through the configured relay; ReportNotSent unless every recipient took it."""
    if smtp is None:
        raise ReportNotSent(f"compliance report {report.month} not sent: e-mail is not configured (set {SMTP_VARIABLES}, "
                            "or their Prefect Secret blocks)")
    where = f"compliance report {report.month} not sent via SMTP server {smtp.host}:{smtp.port} to {', '.join(recipients)}"
    try:
        refused = submit(smtp, report_message(smtp.sender, recipients, report, files))
    except DeliveryFailed as failure:
        raise ReportNotSent(f"{where}: {failure.detail}") from None
    if refused:
        raise ReportNotSent(f"{where}: the server refused {', '.join(sorted(refused))}")
