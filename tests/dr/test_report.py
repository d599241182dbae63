"""The drill's verdicts against the policy's limits, from numbers alone (no servers)."""

from __future__ import annotations

from datetime import timedelta

from delivery.dr.redis_backup import RedisRestore
from delivery.dr.report import DataLoss, DrillReport, TrafficSwitch, render_markdown, render_table
from delivery.policy.models import DisasterRecovery


def report(failover: float = 0.7, rpo: float = 0.0, rto: float = 0.8, restored: int = 100) -> DrillReport:
    data = DataLoss(last_primary_seq=12, last_standby_seq=10, rpo_seconds=rpo, lag_bytes=312,
                    primary_flush_lsn="0/3000148", standby_replay_lsn="0/3000010")
    return DrillReport(detected_seconds=0.5, promoted_seconds=0.6, failover_seconds=failover, rto_seconds=rto,
                       rto_scope="database healthy", data=data, redis=RedisRestore(100, restored, 0.02),
                       limits=DisasterRecovery())


def test_numbers_within_the_limits_pass_and_the_table_shows_them() -> None:
    good = report()
    assert good.ok and good.data.rows_lost == 2
    table = render_table(good)
    assert "RTO (database healthy)     800ms" in table and "≤ 30m" in table
    assert "RPO" in table and "2 rows lost, 312 B WAL lag" in table and "≤ 15m" in table
    assert "database failover" in table and "< 1m" in table
    assert table.endswith("within the policy's limits")
    assert "| RPO | 0ms (2 rows lost, 312 B WAL lag) | ≤ 15m | ok |" in render_markdown(good)


def test_each_limit_fails_on_its_own() -> None:
    assert [r.measure for r in report(failover=60.0).verdicts() if not r.ok] == ["database failover"]
    assert [r.measure for r in report(rpo=901).verdicts() if not r.ok] == ["RPO"]
    assert [r.measure for r in report(rto=1801).verdicts() if not r.ok] == ["RTO (database healthy)"]
    assert [r.measure for r in report(restored=99).verdicts() if not r.ok] == ["Redis restore (RDB + AOF)"]
    assert "OUTSIDE the policy's limits: database failover" in render_table(report(failover=61))


def test_the_limits_come_from_the_policy() -> None:
    strict = DisasterRecovery(rto=timedelta(seconds=1), rpo=timedelta(seconds=1), database_failover=timedelta(seconds=1))
    measured = report()
    assert not DrillReport(**{**measured.__dict__, "limits": strict, "failover_seconds": 1.5}).ok
    details = measured.details()
    assert details["limits"] == {"rto": 1800.0, "rpo": 900.0, "database_failover": 60.0}
    assert details["rows_lost"] == 2 and details["within_limits"] is True
    assert not any("postgresql://" in str(value) for value in details.values())


def test_a_traffic_switch_is_in_the_artifact_and_the_audit_details() -> None:
    switch = TrafficSwitch(served_by="korea-south", primary_degraded_seconds=0.9, served_seconds=1.2, write_id=2501)
    switched = DrillReport(**{**report(rto=1.2).__dict__, "rto_scope": "traffic switched to korea-south", "traffic": switch})
    assert "| RTO (traffic switched to korea-south) | 1.2s | ≤ 30m | ok |" in render_markdown(switched)
    assert "korea-central marked degraded at 900ms, the front served the production path from korea-south at 1.2s" \
        in render_markdown(switched)
    assert switched.details()["traffic"] == {"served_by": "korea-south", "primary_degraded_seconds": 0.9,
                                             "served_seconds": 1.2, "write_id": 2501}
