"""The DR drill: a primary under a writer's load is killed (with its region's sandbox), the watchdog promotes the hot
standby, traffic moves to the DR region through the Traffic Manager stand-in, and Redis is restored; all measured."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import psycopg

from delivery.dr.redis_backup import RedisBackupError, backup_and_restore
from delivery.dr.regions import DR, RegionError, TwoRegions
from delivery.dr.replication import ReplicatedPair, ReplicationBroken
from delivery.dr.report import DataLoss, DrillReport, TrafficSwitch
from delivery.dr.watchdog import FailoverFailed, Watchdog
from delivery.dr.writer import HeartbeatWriter, create_table, last_row
from delivery.localdb import LocalPostgresError
from delivery.policy.models import DisasterRecovery, Policy
from delivery.sandbox.database import seed_schema_sql

WARM_UP_ROWS = 5  # rows the writer commits (and the standby replays) before the cut
SETTLE = 10.0  # seconds allowed for the pair to stream, and for the writer to notice the cut


class DrillError(RuntimeError):
    """The drill could not measure: no failover, or the DR side never answered healthy."""


FAILURES = (DrillError, ReplicationBroken, LocalPostgresError, RedisBackupError, RegionError)  # what stops a drill, with a clear message


def healthy(dsn: str) -> bool:
    """The DR database's health query: it answers and is out of recovery (a primary, so it takes writes)."""
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()[0]


def failover_drill(pair: ReplicatedPair, limits: DisasterRecovery, regions: TwoRegions | None = None,
                   settle: float = SETTLE) -> tuple[float, float, float, float, DataLoss, TrafficSwitch | None]:
    """Writer on, standby caught up and regions serving (within `settle` seconds), watchdog on; sample the lag, cut
    (and lose the primary region); returns the seconds from the cut to detection, promotion, the first accepted
    write and the DR side healthy (RTO: with regions, the front serving from korea-south), the data lost, the switch."""
    create_table(pair.primary_dsn())
    writer = HeartbeatWriter(pair.primary_dsn()).start()
    watchdog: Watchdog | None = None
    try:
        writer.wait_for(WARM_UP_ROWS, settle)
        pair.wait_caught_up(settle)  # raises ReplicationBroken
        if regions:
            regions.serving()  # raises RegionError
        bound = 2 * limits.database_failover.total_seconds()  # room to measure a failover over the limit, not forever
        watchdog = Watchdog(pair.primary_dsn(), pair.standby_dsn(), deadline=bound).start()
        lag = pair.sample_lag()
        cut = pair.cut_primary()
        if regions:
            regions.lose_primary()
        if not writer.join(settle):
            raise DrillError(f"the writer still commits {settle:g}s after the primary was killed")
        failover = watchdog.result(bound + settle)
        acked, kept = writer.last, last_row(pair.standby_dsn())
        if not healthy(pair.standby_dsn()):
            raise DrillError("the promoted standby is still in recovery")
        switch = regions.switch_traffic(pair.standby_dsn(), cut, bound + settle) if regions else None
        rto = switch.served_seconds if switch else time.monotonic() - cut
    except FailoverFailed as err:
        raise DrillError(str(err)) from err
    finally:
        writer.stop(settle)
        if watchdog:
            watchdog.stop()
    if kept is None:
        raise DrillError("the promoted standby has none of the writer's rows")
    rpo = max(0.0, (acked.committed_at - kept.committed_at).total_seconds())
    loss = DataLoss(last_primary_seq=acked.seq, last_standby_seq=kept.seq, rpo_seconds=rpo,
                    lag_bytes=lag.bytes, primary_flush_lsn=lag.primary_flush_lsn, standby_replay_lsn=lag.standby_replay_lsn)
    return failover.detected_at - cut, failover.promoted_at - cut, failover.writable_at - cut, rto, loss, switch


def run_drill(work_dir: Path, policy: Policy, regions_policy: Path | None = None, redis_keys: int = 1000
              ) -> DrillReport:
    """The whole drill in a new dir under `work_dir` (removed afterwards): PostgreSQL failover (with `regions_policy`,
    the policy file the two regions' sandboxes run with: through the Traffic Manager stand-in), then Redis restore."""
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="dr-drill-", dir=work_dir))
    os.chmod(state, 0o755)  # as root the servers run as `postgres`, which must enter it
    limits = policy.disaster_recovery
    try:
        with ReplicatedPair(state / "pg", seed_schema_sql() if regions_policy else None) as pair, \
                TwoRegions(state / "regions", regions_policy, policy, pair.primary_dsn(), pair.standby_dsn(), SETTLE) \
                if regions_policy else nullcontext() as regions:
            detected, promoted, failover, rto, loss, switch = failover_drill(pair, limits, regions)
        redis = backup_and_restore(state / "redis", redis_keys)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    scope = f"traffic switched to {DR}" if switch else "database healthy"
    return DrillReport(detected_seconds=detected, promoted_seconds=promoted, failover_seconds=failover, rto_seconds=rto,
                       rto_scope=scope, data=loss, redis=redis, limits=limits, traffic=switch)
