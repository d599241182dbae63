"""The monthly compliance report (R-AUDIT): November's runs, call-outs, chain head and weekly counts in the PDF,
one CSV row per November event, and `audit report` writing both and refusing a bad month."""

import csv
import io
import json
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from delivery import audit
from delivery.audit import AuditLog
from delivery.audit_report import Month, WeekCount, build_report, write_csv
from delivery.audit_report_cli import report
from delivery.audit_report_pdf import write_pdf

DIGEST = "sha256:" + "9c865106fc9b" + "3a8aa1c1886f967fe1002cf24af6e5aec7351e85a35b27bf"
REASON = "location-service watch failed: 5xx rate 3.61% (4 of 103; ≥ 1.04% at 99% confidence) > 0.5%"
AUTO = "critical security hotfix: approved by policy (approvals.hotfix.auto_approve)"


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


@pytest.fixture
def log(tmp_path, monkeypatch):
    """Four November runs (released, rolled back, stopped by a gate, hotfix approved by policy) between an
    October and a December record; AuditLog writes each at the time it is given."""

    class Clock(datetime):
        moment = at("2026-11-01T00:00:00")

        @classmethod
        def now(cls, tz=None):
            return cls.moment

    monkeypatch.setattr(audit, "datetime", Clock)
    log = AuditLog(tmp_path / "audit.jsonl")

    def write(when: str, event: str, actor: str, release: str, run: str, **details) -> None:
        Clock.moment = at(when)
        log.append(event, actor, release, flow_run_id=run, **details)

    write("2026-10-31T23:59:59.999", "deployment_initiated", "release-manager", "v1.3.9", "run-october", hotfix=False)
    # v1.4.0, week 45: two approvers, released
    write("2026-11-03T09:00:00", "deployment_initiated", "release-manager", "v1.4.0", "run-a", hotfix=False, reason="monthly")
    write("2026-11-03T09:10:00", "approval_granted", "demo-lead", "v1.4.0", "run-a", comment="looks good", override=False, kind="production")
    write("2026-11-03T09:12:30", "approval_granted", "ops-anna", "v1.4.0", "run-a", comment="ok", override=False, kind="production")
    write("2026-11-03T09:20:00", "traffic_switched", "release-manager", "v1.4.0", "run-a", service="user-service",
          from_color="blue", to_color="green", seconds=1.5)
    write("2026-11-03T09:40:00", "deployment_completed", "release-manager", "v1.4.0", "run-a", outcome="released",
          detail="every service released and watched", seconds=2400.0)
    # v1.5.0, week 46: an emergency override, a failed watch, rolled back
    write("2026-11-10T14:00:00", "deployment_initiated", "release-manager", "v1.5.0", "run-b", hotfix=False)
    write("2026-11-10T14:05:00", "approval_granted", "sec-lee", "v1.5.0", "run-b", comment="security fix cannot wait",
          override=True, kind="production")
    write("2026-11-10T14:10:00", "traffic_switched", "release-manager", "v1.5.0", "run-b", service="location-service",
          from_color="green", to_color="blue", seconds=2.1)
    write("2026-11-10T14:12:00", "watch_failed", "watch", "v1.5.0", "run-b", service="location-service", check=2, reason=REASON)
    write("2026-11-10T14:12:30", "rollback_executed", "release-manager", "v1.5.0", "run-b", service="location-service",
          action=f"selector back to green (acr.example/location-service@{DIGEST})", seconds=1.2, reason=REASON)
    write("2026-11-10T14:13:00", "deployment_failed", "release-manager", "v1.5.0", "run-b", outcome="rolled back",
          detail=REASON, seconds=780.0)
    # v1.6.0-rc.1, week 47: stopped by the coverage gate
    write("2026-11-17T08:00:00", "deployment_initiated", "release-manager", "v1.6.0-rc.1", "run-c", hotfix=False)
    write("2026-11-17T08:01:00", "gate_failed", "quality-gates", "v1.6.0-rc.1", "run-c", gate="coverage", measured="72.1",
          threshold="80", on_failure="block")
    write("2026-11-17T08:02:00", "deployment_failed", "release-manager", "v1.6.0-rc.1", "run-c",
          outcome="stopped by quality gates", detail="coverage 72.1% < 80%", seconds=120.0)
    # v1.5.1, week 48: a hotfix approved by policy
    write("2026-11-24T03:00:00", "deployment_initiated", "oncall-park", "v1.5.1", "run-d", hotfix=True, reason="CVE fix")
    write("2026-11-24T03:00:05", "approval_granted", "policy", "v1.5.1", "run-d", reason=AUTO, kind="hotfix")
    write("2026-11-24T03:30:00", "deployment_completed", "oncall-park", "v1.5.1", "run-d", outcome="released",
          detail="every service released and watched", seconds=1795.0)
    write("2026-12-01T00:00:00", "deployment_initiated", "release-manager", "v1.7.0", "run-december", hotfix=False)
    return log


NOVEMBER_EVENTS = 17


def pdf_text(path) -> str:
    """Every page's text, wrapped lines joined by single spaces."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split())


def test_the_report_groups_november_into_runs_and_weeks(log):
    found = build_report(log.path, Month.parse("2026-11"))
    assert [(r.release, r.outcome, r.approvers) for r in found.runs] == [
        ("v1.4.0", "released", ["demo-lead", "ops-anna"]),
        ("v1.5.0", "rolled back", ["sec-lee"]),
        ("v1.6.0-rc.1", "stopped by quality gates", []),
        ("v1.5.1", "released", ["policy"]),
    ]
    assert found.runs[1].rollbacks[0].reason == REASON and found.runs[2].failed_gates == ["coverage (measured 72.1, threshold 80)"]
    assert found.runs[0].seconds == 2400.0
    assert [(n.kind, n.actor, n.release) for n in found.notices] == [
        ("emergency override", "sec-lee", "v1.5.0"), ("hotfix auto-approval", "policy", "v1.5.1")]
    assert list(found.weeks) == [WeekCount("2026-W44", 0, 0), WeekCount("2026-W45", 1, 0), WeekCount("2026-W46", 1, 1),
                                 WeekCount("2026-W47", 1, 0), WeekCount("2026-W48", 1, 0), WeekCount("2026-W49", 0, 0)]
    assert found.verification.intact and found.head.sha256 == log.records()[-1]["sha256"]


def test_the_pdf_lists_releases_approvers_reasons_call_outs_and_the_chain_head(log, tmp_path):
    out = tmp_path / "november.pdf"
    write_pdf(build_report(log.path, Month.parse("2026-11")), out, generated=at("2026-12-01T06:00:00"))
    text = pdf_text(out)
    for expected in ("v1.4.0", "v1.5.0", "v1.6.0-rc.1", "v1.5.1", "demo-lead", "ops-anna", "sec-lee", "oncall-park",
                     "coverage", "Overrides and hotfix auto-approvals", "hotfix auto-approval", "emergency override", AUTO,
                     "yes: all 19 records intact", log.records()[-1]["sha256"], "2026-12-01 06:00:00 UTC"):
        assert expected in text, expected
    assert REASON in text
    assert "v1.7.0" not in text and "v1.3.9" not in text
    assert "9c865106fc9b…" in text and DIGEST not in text  # long digests shortened


def test_a_broken_chain_is_reported_on_the_title_block(log, tmp_path):
    log.path.write_text(log.path.read_text().replace("ops-anna", "ops-anya"))
    out = tmp_path / "broken.pdf"
    write_pdf(build_report(log.path, Month.parse("2026-11")), out, generated=at("2026-12-01T06:00:00"))
    assert "NO: line 4: content does not match its sha256" in pdf_text(out)


def test_the_csv_has_one_row_per_november_event(log):
    out = io.StringIO()
    write_csv(build_report(log.path, Month.parse("2026-11")), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    november = [r for r in log.records() if r["time"].startswith("2026-11")]
    assert len(rows) == len(november) == NOVEMBER_EVENTS
    assert [int(r["seq"]) for r in rows] == [r["seq"] for r in november]
    rollback = next(r for r in rows if r["event"] == "rollback_executed")
    assert (rollback["release"], rollback["flow_run_id"], rollback["service"]) == ("v1.5.0", "run-b", "location-service")
    assert json.loads(rollback["details"])["reason"] == REASON


def test_the_command_writes_pdf_and_csv_and_refuses_a_bad_month_or_format(log, tmp_path):
    runner = CliRunner()
    for form in ("pdf", "csv"):
        out = tmp_path / "reports" / f"november.{form}"
        result = runner.invoke(report, ["--month", "2026-11", "--format", form, "--audit-log", str(log.path), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"4 run(s), {NOVEMBER_EVENTS} event(s) of 2026-11; chain intact" in result.output
    assert (tmp_path / "reports" / "november.pdf").read_bytes().startswith(b"%PDF")
    assert len((tmp_path / "reports" / "november.csv").read_text().splitlines()) == NOVEMBER_EVENTS + 1

    bad_month = runner.invoke(report, ["--month", "2026-13", "--audit-log", str(log.path)])
    assert bad_month.exit_code == 2 and "month must be YYYY-MM with a month from 01 to 12, not '2026-13'" in bad_month.output
    bad_format = runner.invoke(report, ["--month", "2026-11", "--format", "docx", "--audit-log", str(log.path)])
    assert bad_format.exit_code == 2 and "'docx' is not one of 'pdf', 'csv'" in bad_format.output
