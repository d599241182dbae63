"""The DR drill's measurements as typed data, each judged against the policy's disaster_recovery limits, and the
same verdict rows rendered as a terminal table and as markdown."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from delivery.dr.redis_backup import RedisRestore
from delivery.kpi_cli import duration
from delivery.policy.models import DisasterRecovery


@dataclass(frozen=True)
class DataLoss:
    """RPO: the writer's last acknowledged row before the cut against the promoted standby's last row, and the WAL
    bytes the standby had not replayed when sampled just before the cut."""

    last_primary_seq: int
    last_standby_seq: int
    rpo_seconds: float  # commit timestamps: last acknowledged on the primary - last on the standby (0 if none lost)
    lag_bytes: int
    primary_flush_lsn: str
    standby_replay_lsn: str

    @property
    def rows_lost(self) -> int:
        return max(0, self.last_primary_seq - self.last_standby_seq)


@dataclass(frozen=True)
class TrafficSwitch:
    """How traffic moved off korea-central after the cut: who served then, and when (seconds from the cut)."""

    served_by: str  # the front's REGION_HEADER on its first 200 for the production path after the cut
    primary_degraded_seconds: float  # the monitor marked korea-central degraded: the front stopped routing there
    served_seconds: float  # the front answered 200 from the DR region on the production path (the RTO's end)
    write_id: int  # the row the DR region's DSN accepted after promotion


@dataclass(frozen=True)
class Verdict:
    """One row of the table: what was measured, its value, the policy's limit, and whether it is within."""

    measure: str
    value: str
    limit: str
    ok: bool


@dataclass(frozen=True)
class DrillReport:
    """Seconds are measured from the cut (SIGKILL of the primary) with a monotonic clock."""

    detected_seconds: float  # the watchdog's deciding failed check
    promoted_seconds: float  # pg_promote returned
    failover_seconds: float  # the promoted standby accepted a write
    rto_seconds: float  # the DR side answered healthy: the promoted standby's health query, then (with regions) the front
    rto_scope: str  # what the RTO interval ended on
    data: DataLoss
    redis: RedisRestore | None
    limits: DisasterRecovery
    traffic: TrafficSwitch | None = None  # with the two regions: how traffic moved to korea-south

    def verdicts(self) -> list[Verdict]:
        lim, data = self.limits, self.data
        rows = [
            Verdict(f"RTO ({self.rto_scope})", duration(self.rto_seconds), f"≤ {duration(lim.rto.total_seconds())}",
                    self.rto_seconds <= lim.rto.total_seconds()),
            Verdict("RPO", f"{duration(data.rpo_seconds)} ({data.rows_lost} rows lost, {data.lag_bytes} B WAL lag)",
                    f"≤ {duration(lim.rpo.total_seconds())}", data.rpo_seconds <= lim.rpo.total_seconds()),
            Verdict("database failover", duration(self.failover_seconds), f"< {duration(lim.database_failover.total_seconds())}",
                    self.failover_seconds < lim.database_failover.total_seconds()),
        ]
        if self.redis:
            rows.append(Verdict("Redis restore (RDB + AOF)", f"{self.redis.keys_restored}/{self.redis.keys_written} keys "
                                f"in {duration(self.redis.seconds)}", "every key", self.redis.missing == 0))
        return rows

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.verdicts())

    def details(self) -> dict:
        """The numbers for the audit event (no DSN, no host)."""
        numbers = {k: v for k, v in asdict(self).items() if k not in ("limits", "data", "redis", "traffic")}
        return {**numbers, **asdict(self.data), "rows_lost": self.data.rows_lost,
                "redis": asdict(self.redis) if self.redis else None,
                "traffic": asdict(self.traffic) if self.traffic else None,
                "limits": {k: v.total_seconds() for k, v in self.limits},
                "within_limits": self.ok}


def render_table(report: DrillReport) -> str:
    """The verdict rows as aligned text columns, then the verdict line."""
    header = Verdict("measure", "measured", "policy", True)
    rows = [(r.measure, r.value, r.limit, "ok" if r.ok else "NO") for r in report.verdicts()]
    cells = [(header.measure, header.value, header.limit, "within"), *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([*lines, _summary(report)])


def render_markdown(report: DrillReport) -> str:
    """The verdict rows as a markdown table under a heading, with what the numbers measure."""
    rows = "\n".join(f"| {r.measure} | {r.value} | {r.limit} | {'ok' if r.ok else '**NO**'} |" for r in report.verdicts())
    return (f"# DR drill\n\n| measure | measured | policy | within |\n|---|---|---|---|\n{rows}\n\n{_summary(report)}\n\n"
            f"From the cut: watchdog noticed at {duration(report.detected_seconds)}, standby promoted at "
            f"{duration(report.promoted_seconds)}, first write accepted at {duration(report.failover_seconds)}. "
            f"Last row acknowledged by the primary: {report.data.last_primary_seq}; last on the promoted standby: "
            f"{report.data.last_standby_seq}. WAL just before the cut: primary flushed {report.data.primary_flush_lsn}, "
            f"standby replayed {report.data.standby_replay_lsn}.{_switch(report.traffic)}\n")


def _switch(traffic: TrafficSwitch | None) -> str:
    return "" if traffic is None else (
        f" Traffic Manager: korea-central marked degraded at {duration(traffic.primary_degraded_seconds)}, the front "
        f"served the production path from {traffic.served_by} at {duration(traffic.served_seconds)}; the promoted "
        f"database took trips row {traffic.write_id} through the DR region's DSN.")


def _summary(report: DrillReport) -> str:
    return "within the policy's limits" if report.ok else \
        "OUTSIDE the policy's limits: " + ", ".join(r.measure for r in report.verdicts() if not r.ok)
