"""KPIs and DORA keys from a hand-built audit log, every number worked out by hand in the comments."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from delivery import audit
from delivery.audit import AuditLog, verify
from delivery.kpi import measure, release_runs, tag_commit_times
from delivery.kpi_cli import kpi
from delivery.policy.models import Kpi
from tests.conftest import REPO
from tests.kpi.repos import at, tagged_repo

POLICY = str(REPO / "policies" / "tripgen.yaml")
DAY = datetime(2026, 11, 27, tzinfo=timezone.utc)  # the demo-like releases run on the 27th and the 28th
NOW = DAY + timedelta(days=3)
WINDOW = timedelta(days=30)


@pytest.fixture
def write(tmp_path, monkeypatch):
    """write(time, event, release, run, **details): an AuditLog.append whose record carries `time`."""
    log = AuditLog(tmp_path / "audit.jsonl")
    clock = SimpleNamespace(at=None)
    monkeypatch.setattr(audit, "datetime", SimpleNamespace(now=lambda tz: clock.at))

    def append(at: datetime, event: str, release: str, run: str, actor: str = "release-manager", **details) -> None:
        clock.at = at
        log.append(event, actor, release, flow_run_id=run, **details)

    append.log = log
    return append


def demo_like(write, day: datetime) -> list[dict]:
    """Like the demo: v1.2.0 released with four switches on `day`; v1.3.0-faulty rolled back after a watch_failed the
    day after; v1.3.1 stopped by its gates; and v1.1.0, released 40 days before, outside a 30-day window."""
    old = day - timedelta(days=40)
    write(at(old, "10:00:00"), "deployment_initiated", "v1.1.0", "run-old", services=["trip-service"])
    write(at(old, "10:05:00"), "traffic_switched", "v1.1.0", "run-old", service="trip-service", seconds=900.0)
    write(at(old, "10:30:00"), "deployment_completed", "v1.1.0", "run-old", outcome="released", seconds=1800.0)

    write(at(day, "10:00:00"), "deployment_initiated", "v1.2.0", "run-a", services=["user-service"], strategy="blue-green")
    write(at(day, "10:00:15"), "approval_granted", "v1.2.0", "run-a", actor="demo-lead", kind="production")
    write(at(day, "10:00:16"), "approval_granted", "v1.2.0", "run-a", actor="demo-ops", kind="production")
    write(at(day, "10:00:17"), "migration_applied", "v1.2.0", "run-a", phase="expand", seconds=0.001)
    for clock, service, seconds in (("10:02:00", "user-service", 2.0), ("10:02:01", "location-service", 4.0),
                                    ("10:04:00", "trip-service", 6.0), ("10:06:00", "ai-service", 12.0)):
        write(at(day, clock), "traffic_switched", "v1.2.0", "run-a", service=service, from_color="blue", to_color="green", seconds=seconds)
    write(at(day, "10:06:10"), "migration_applied", "v1.2.0", "run-a", phase="backfill", seconds=0.1)
    write(at(day, "10:10:00"), "deployment_completed", "v1.2.0", "run-a", outcome="released", detail="ok", seconds=600.0)

    next_day = day + timedelta(days=1)
    write(at(next_day, "09:00:00"), "deployment_initiated", "v1.3.0-faulty", "run-b", services=["user-service"])
    write(at(next_day, "09:00:20"), "approval_granted", "v1.3.0-faulty", "run-b", actor="demo-lead")
    write(at(next_day, "09:04:00"), "traffic_switched", "v1.3.0-faulty", "run-b", service="user-service", seconds=3.0)
    write(at(next_day, "09:04:01"), "traffic_switched", "v1.3.0-faulty", "run-b", service="location-service", seconds=5.0)
    write(at(next_day, "09:06:00"), "watch_failed", "v1.3.0-faulty", "run-b", actor="watch", service="location-service")
    write(at(next_day, "09:06:30"), "rollback_executed", "v1.3.0-faulty", "run-b", service="location-service", seconds=20.0)
    write(at(next_day, "09:07:00"), "rollback_executed", "v1.3.0-faulty", "run-b", service="user-service", seconds=25.0)
    write(at(next_day, "09:07:01"), "migration_reverted", "v1.3.0-faulty", "run-b", seconds=0.002)
    write(at(next_day, "09:07:10"), "deployment_failed", "v1.3.0-faulty", "run-b", outcome="rolled back", seconds=430.0)

    write(at(next_day, "12:00:00"), "deployment_initiated", "v1.3.1", "run-c", services=["trip-service"])
    write(at(next_day, "12:01:00"), "gate_failed", "v1.3.1", "run-c", actor="quality-gates", gate="coverage")
    write(at(next_day, "12:01:05"), "deployment_failed", "v1.3.1", "run-c", outcome="stopped by quality gates", seconds=65.0)
    return write.log.records()


def values(report) -> dict[str, float | None]:
    return {row.name: row.value for row in report.rows}


def verdicts(report) -> dict[str, list[bool | None]]:
    return {row.name: row.verdicts() for row in report.rows if row.bounds}


def test_the_demo_like_log_gives_the_numbers_worked_out_by_hand(write):
    records = demo_like(write, DAY)
    assert verify(write.log.path).intact  # real chained records, only their times chosen
    report = measure(records, Kpi(), NOW - WINDOW, NOW, {})

    # runs started in the window: run-a, run-b, run-c (run-old started 40 days before DAY, 37 before the window's end)
    assert [(r.release, r.outcome) for r in report.runs] == [("v1.2.0", "released"), ("v1.3.0-faulty", "rolled back"), ("v1.3.1", "stopped")]
    released, rolled_back, _ = report.runs
    assert released.seconds == 600.0 and released.switch_seconds == (2.0, 4.0, 6.0, 12.0)
    # detected at the watch_failed (09:06:00), restored at the last rollback_executed (09:07:00)
    assert rolled_back.detected == at(DAY + timedelta(days=1), "09:06:00")
    assert rolled_back.restored == at(DAY + timedelta(days=1), "09:07:00") and rolled_back.time_to_restore == 60.0
    assert values(report) == pytest.approx({
        "deployment_success_rate": 50.0,  # production releases: run-a (released), run-b (rolled back); run-c never got there
        "rollback_frequency (mean)": 1 / 30,  # run-b's rollback over 30 days
        "rollback_frequency (busiest day)": 1,  # the 28th: one
        "deployment_duration (mean)": 600.0,  # released ones only: run-a's recorded 600 s
        "deployment_duration (p95)": 600.0,
        "deployment_duration (max)": 600.0,
        "canary_error_rate": None,  # no canary ran
        "blue_green_switch_time (mean)": 32 / 6,  # (2 + 4 + 6 + 12) + (3 + 5) = 32 s over 6 switches
        "blue_green_switch_time (max)": 12.0,
        "deployment_frequency": 7 / 30,  # one release in 30/7 weeks
        "lead_time_for_changes (mean)": None,  # no commit time recorded, no repository given: unknown
        "change_failure_rate": 50.0,  # run-b rolled back of the 2 production releases
        "time_to_restore (mean)": 60.0,  # 09:06:00 → 09:07:00
    })
    assert verdicts(report) == {
        "deployment_success_rate": [False, False],  # 50% < threshold 95%, < target 98%
        "rollback_frequency (busiest day)": [True],  # 1 ≤ 2 a day
        "deployment_duration (mean)": [True],  # 10 min ≤ target 20 min
        "deployment_duration (max)": [True],  # 10 min ≤ threshold 30 min
        "canary_error_rate": [None],
        "blue_green_switch_time (max)": [True],  # 12 s ≤ 5 min
        "deployment_frequency": [False],  # 0.23 < 1 a week
        "change_failure_rate": [False],  # 50% ≥ 5%
        "time_to_restore (mean)": [True],  # 1 min ≤ MTTR 15 min
    }


def test_recovered_crashes_and_manual_rollbacks_count_and_an_unrestored_service_is_no_restore(write):
    day = DAY + timedelta(days=1)
    # run-d crashed after a switch; the recover run (run-r) restored it, its records naming the crashed run
    write(at(day, "10:00:00"), "deployment_initiated", "v1.4.0", "run-d")
    write(at(day, "10:05:00"), "traffic_switched", "v1.4.0", "run-d", service="trip-service", seconds=1.0)
    write(at(day, "10:30:00"), "deployment_crashed", "v1.4.0", "run-r", flow_run="run-d", state="CRASHED")
    write(at(day, "10:31:00"), "rollback_executed", "v1.4.0", "run-r", crashed_flow_run="run-d", service="trip-service", seconds=10.0)
    write(at(day, "10:31:30"), "deployment_recovered", "v1.4.0", "run-r", flow_run="run-d", complete=True)
    # run-e's watch failed; one service came back, the other could not
    write(at(day, "13:00:00"), "deployment_initiated", "v1.4.1", "run-e")
    write(at(day, "13:01:00"), "traffic_switched", "v1.4.1", "run-e", service="user-service", seconds=2.0)
    write(at(day, "13:03:00"), "watch_failed", "v1.4.1", "run-e", actor="watch", service="user-service")
    write(at(day, "13:03:20"), "rollback_executed", "v1.4.1", "run-e", service="trip-service", seconds=5.0)
    write(at(day, "13:03:40"), "rollback_failed", "v1.4.1", "run-e", service="user-service")
    write(at(day, "13:03:50"), "deployment_failed", "v1.4.1", "run-e", outcome="rolled back", seconds=230.0)
    # `tripgen-release rollback --to v1.3.0`: a rollback, not a release
    write(at(day, "15:00:00"), "rollback_requested", "v1.3.0", "run-m", reason="slow")
    write(at(day, "15:05:00"), "rollback_executed", "v1.3.0", "run-m", service="trip-service", seconds=3.0)
    records = write.log.records()

    assert [(r.flow_run_id, r.outcome) for r in release_runs(records)] == [("run-d", "rolled back"), ("run-e", "rolled back")]
    crashed, unrestored = release_runs(records)
    assert crashed.detected == at(day, "10:30:00") and crashed.time_to_restore == 60.0  # the crash noticed → restored
    assert crashed.seconds == 1890.0  # no seconds recorded on recovery: 10:00:00 → 10:31:30
    assert unrestored.detected == at(day, "13:03:00") and unrestored.restored is None
    report = measure(records, Kpi(), NOW - WINDOW, NOW, {})
    assert values(report)["rollback_frequency (busiest day)"] == 3  # run-d, run-e and run-m, all on the 28th
    assert verdicts(report)["rollback_frequency (busiest day)"] == [False]  # 3 > 2 a day
    assert values(report)["deployment_success_rate"] == 0.0
    assert values(report)["time_to_restore (mean)"] == 60.0  # run-d only: run-e was never fully restored


def test_a_commit_time_recorded_at_initiation_gives_the_lead_time(write):
    write(at(DAY, "10:00:00"), "deployment_initiated", "v1.2.0", "run-a", commit_time="2026-11-26T22:00:00Z")
    write(at(DAY, "10:30:00"), "deployment_completed", "v1.2.0", "run-a", outcome="released", seconds=1800.0)
    report = measure(write.log.records(), Kpi(), NOW - WINDOW, NOW, {"v1.2.0": DAY})
    assert values(report)["lead_time_for_changes (mean)"] == 12.5 * 3600  # 22:00 the day before → 10:30, over git's


def canary_releases(write, day: datetime) -> None:
    """v1.5.0's two canaries promoted (trip-service by hand, which records canary_promoted twice), v1.5.1's trip-service
    canary aborted after user-service's was promoted, and v1.4.9's canary from before the counts were recorded."""
    write(at(day, "08:00:00"), "deployment_initiated", "v1.4.9", "run-j", strategy="canary")
    write(at(day, "08:20:00"), "canary_promoted", "v1.4.9", "run-j", service="user-service", intervals=4)
    write(at(day, "08:21:00"), "deployment_completed", "v1.4.9", "run-j", outcome="released", seconds=1260.0)

    write(at(day, "10:00:00"), "deployment_initiated", "v1.5.0", "run-k", strategy="canary")
    write(at(day, "10:20:00"), "canary_promoted", "v1.5.0", "run-k", service="user-service", errors=2, requests=800, intervals=4)
    write(at(day, "10:25:00"), "canary_promoted", "v1.5.0", "run-k", actor="demo-lead", service="trip-service", errors=1,
          requests=400, manual=True)
    write(at(day, "10:26:00"), "canary_promoted", "v1.5.0", "run-k", service="trip-service", errors=1, requests=400, intervals=2)
    write(at(day, "10:27:00"), "deployment_completed", "v1.5.0", "run-k", outcome="released", seconds=1620.0)

    write(at(day, "14:00:00"), "deployment_initiated", "v1.5.1", "run-l", strategy="canary")
    write(at(day, "14:20:00"), "canary_promoted", "v1.5.1", "run-l", service="user-service", errors=0, requests=500, intervals=4)
    write(at(day, "14:30:00"), "canary_aborted", "v1.5.1", "run-l", service="trip-service", errors=9, requests=300,
          reason="trip-service: 5xx rate 3%")
    write(at(day, "14:31:00"), "rollback_executed", "v1.5.1", "run-l", service="user-service", seconds=30.0)
    write(at(day, "14:31:10"), "deployment_failed", "v1.5.1", "run-l", outcome="rolled back", seconds=1870.0)


def test_the_canary_error_rate_sums_each_canarys_counts_over_the_windows_runs(write):
    canary_releases(write, DAY)
    report = measure(write.log.records(), Kpi(), NOW - WINDOW, NOW, {})
    old, released, aborted = report.runs
    assert old.canary is None and old.canary_error_rate is None  # recorded without counts: not counted, not zero
    # v1.5.0: user-service 2 of 800, trip-service 1 of 400 (its manual promotion's record and the last one count once)
    assert (released.canary.errors, released.canary.requests, released.canary_error_rate) == (3, 1200, 0.25)
    assert (aborted.canary.errors, aborted.canary.requests, aborted.canary_error_rate) == (9, 800, 1.125)  # 0 of 500, 9 of 300
    assert values(report)["canary_error_rate"] == 0.6  # (3 + 9) 5xx of (1200 + 800) requests
    assert verdicts(report)["canary_error_rate"] == [False]  # 0.6% > 0.5%
    lenient = measure(write.log.records(), Kpi(max_canary_error_rate_percent=1), NOW - WINDOW, NOW, {})
    assert verdicts(lenient)["canary_error_rate"] == [True]  # 0.6% ≤ 1%


def test_canaries_that_counted_no_requests_give_no_rate(write):
    write(at(DAY, "10:00:00"), "deployment_initiated", "v1.5.0", "run-k", strategy="canary")
    write(at(DAY, "10:20:00"), "canary_promoted", "v1.5.0", "run-k", service="user-service", errors=0, requests=0, intervals=4)
    report = measure(write.log.records(), Kpi(), NOW - WINDOW, NOW, {})
    (row,) = [row for row in report.rows if row.name == "canary_error_rate"]
    assert (row.value, row.note, row.verdicts()) == (None, "no canary requests counted", [None])


def test_the_command_shows_each_runs_canary_error_rate(write):
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    canary_releases(write, day)
    result = CliRunner().invoke(kpi, ["--audit-log", str(write.log.path), "--policy", POLICY])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert f"v1.4.9 released {day:%Y-%m-%d} 08:00 21m - - -" in lines
    assert f"v1.5.0 released {day:%Y-%m-%d} 10:00 27m - 0.25% -" in lines
    assert f"v1.5.1 rolled back {day:%Y-%m-%d} 14:00 31m10s 1m 1.12% -" in lines  # 14:30:00 aborted → 14:31:00 restored
    assert "canary_error_rate 0.6% (12 5xx of 2000 canary requests in 2 canary releases) threshold ≤ 0.5% NO" in lines


def test_the_lead_time_comes_from_the_tags_commit_time_in_git(write, tmp_path):
    records = demo_like(write, DAY)
    repo = tagged_repo(tmp_path / "services", DAY)
    times = tag_commit_times(repo, {"v1.2.0", "v1.3.0-faulty"})
    assert times == {"v1.2.0": at(DAY, "08:00:00")}  # git knows no v1.3.0-faulty: left out, not guessed
    report = measure(records, Kpi(), NOW - WINDOW, NOW, times)
    assert values(report)["lead_time_for_changes (mean)"] == 7800.0  # committed 08:00, in production 10:10: 2h10m


def test_a_folder_that_is_no_git_repository_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a git repository"):
        tag_commit_times(tmp_path, {"v1.2.0"})


def test_the_command_prints_the_releases_and_every_kpi_against_its_bounds(write, tmp_path):
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    demo_like(write, day)
    repo = tagged_repo(tmp_path / "services", day)
    result = CliRunner().invoke(kpi, ["--audit-log", str(write.log.path), "--policy", POLICY, "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert f"audit log {write.log.path}: 25 records, hash chain intact" in lines
    assert f"v1.2.0 released {day:%Y-%m-%d} 10:00 10m - - 2.0s 4.0s 6.0s 12.0s" in lines  # no restore, no canary
    assert f"v1.3.0-faulty rolled back {day + timedelta(days=1):%Y-%m-%d} 09:00 7m10s 1m - 3.0s 5.0s" in lines
    assert "v1.1.0" not in result.output  # outside the 30-day window
    for expected in (
        "deployment_success_rate 50% (1 of 2 production releases) threshold ≥ 95% NO",
        "target ≥ 98% NO",
        "rollback_frequency (mean) 0.03/day (1 in 30 days)",
        "rollback_frequency (busiest day) 1/day (most in one UTC day) threshold ≤ 2/day ok",
        "deployment_duration (mean) 10m (1 released) target ≤ 20m ok",
        "deployment_duration (max) 10m (1 released) threshold ≤ 30m ok",
        "canary_error_rate - (no canary release in the window) threshold ≤ 0.5% n/a",
        "blue_green_switch_time (mean) 5.3s (6 switches)",
        "blue_green_switch_time (max) 12.0s (6 switches) threshold ≤ 5m ok",
        "deployment_frequency 0.23/week (1 released in 4.29 weeks) target ≥ 1/week NO",
        "lead_time_for_changes (mean) 2h10m (1 of 1 released with a commit time)",  # committed 08:00, released 10:10
        "change_failure_rate 50% (1 rolled back of 2 production releases) target < 5% NO",
        "time_to_restore (mean) 1m (of 1, failure detected → restored) target ≤ 15m ok",
    ):
        assert expected in lines, f"{expected!r} not in:\n{result.output}"


@pytest.mark.parametrize("args, message", [
    (["--since", "banana"], "'banana' is not a duration"),
    (["--since", "0s"], "longer than 0s"),
    (["--repo", "."], "not a git repository"),
])
def test_bad_usage_exits_2_saying_why(write, tmp_path, args, message):
    demo_like(write, DAY)
    folder = tmp_path / "plain"
    folder.mkdir()
    args = [str(folder) if arg == "." else arg for arg in args]
    result = CliRunner().invoke(kpi, ["--audit-log", str(write.log.path), "--policy", POLICY, *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_missing_audit_log_exits_2(tmp_path):
    result = CliRunner().invoke(kpi, ["--audit-log", str(tmp_path / "none.jsonl"), "--policy", POLICY])
    assert result.exit_code == 2 and "does not exist" in result.output
