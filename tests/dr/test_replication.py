"""Streaming replication between two real servers, the cut, the watchdog's promotion and what the standby kept."""

from __future__ import annotations

import psycopg
import pytest

from delivery.dr.drill import failover_drill
from delivery.dr.replication import ReplicatedPair, ReplicationBroken
from delivery.dr.watchdog import Watchdog
from delivery.dr.writer import HeartbeatWriter, create_table, last_row, missing_rows
from delivery.policy.models import DisasterRecovery
from tests.dr.conftest import break_replication
from tests.waiting import wait_until

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)

LIMITS = DisasterRecovery()


def rows(dsn: str, query: str, *args: object) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(query, args).fetchall()


def standby_seqs(pair: ReplicatedPair) -> list[tuple]:
    """The standby's rows, none while the table has not arrived yet."""
    try:
        return rows(pair.standby_dsn(), "SELECT seq FROM dr_heartbeat")
    except psycopg.errors.UndefinedTable:
        return []


def test_a_row_written_on_the_primary_appears_on_the_read_only_standby(pair: ReplicatedPair) -> None:
    create_table(pair.primary_dsn())
    rows(pair.primary_dsn(), "INSERT INTO dr_heartbeat (seq, committed_at) VALUES (42, now()) RETURNING seq")

    wait_until(lambda: standby_seqs(pair), 30, "row 42 on the standby")
    assert rows(pair.standby_dsn(), "SELECT seq FROM dr_heartbeat") == [(42,)]
    assert pair.streaming_state() == "streaming"
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        rows(pair.standby_dsn(), "INSERT INTO dr_heartbeat (seq, committed_at) VALUES (43, now()) RETURNING seq")


def test_cut_and_promote_keeps_the_committed_rows_and_the_promoted_standby_takes_writes(pair: ReplicatedPair) -> None:
    detected, promoted, failover, rto, loss, switch = failover_drill(pair, LIMITS)

    assert switch is None  # no regions: RTO ends at the promoted database answering healthy
    assert 0 < detected <= promoted <= failover <= rto
    assert failover < LIMITS.database_failover.total_seconds()
    assert loss.rpo_seconds <= LIMITS.rpo.total_seconds()
    assert loss.rows_lost == loss.last_primary_seq - loss.last_standby_seq >= 0
    assert missing_rows(pair.standby_dsn(), loss.last_standby_seq) == 0  # every row up to the last kept, no gap
    assert loss.lag_bytes >= 0 and loss.primary_flush_lsn and loss.standby_replay_lsn
    assert rows(pair.standby_dsn(), "INSERT INTO dr_heartbeat (seq, committed_at, origin) VALUES (-1, now(), 'test') "
                                    "RETURNING seq") == [(-1,)]
    assert rows(pair.standby_dsn(), "SELECT count(*) FROM dr_heartbeat WHERE origin = 'failover-probe'") == [(1,)]


def test_rows_committed_after_replication_broke_are_counted_lost_from_the_writers_sequence(pair: ReplicatedPair) -> None:
    create_table(pair.primary_dsn())
    writer = HeartbeatWriter(pair.primary_dsn()).start()
    try:
        writer.wait_for(3, 30)
        pair.wait_caught_up(30)
        break_replication(pair)
        wait_until(lambda: pair.streaming_state() is None, 30, "the standby's WAL receiver to stop")
        kept = last_row(pair.standby_dsn())
        writer.wait_for(kept.seq + 3, 30)  # three rows the standby cannot have
        watchdog = Watchdog(pair.primary_dsn(), pair.standby_dsn(), deadline=LIMITS.database_failover.total_seconds()).start()
        lag = pair.sample_lag()
        pair.cut_primary()
        assert writer.join(30), "the writer should stop once its server is gone"
        watchdog.result(LIMITS.database_failover.total_seconds() * 2)
    finally:
        writer.stop(30)

    after = last_row(pair.standby_dsn())
    assert after == kept  # nothing arrived once replication broke
    assert writer.last.seq - after.seq >= 3
    assert missing_rows(pair.standby_dsn(), writer.last.seq) == writer.last.seq - after.seq
    assert lag.bytes > 0 and writer.last.committed_at > after.committed_at


def test_the_drill_refuses_to_cut_when_replication_is_broken(pair: ReplicatedPair) -> None:
    break_replication(pair)
    wait_until(lambda: pair.streaming_state() is None, 30, "the standby's WAL receiver to stop")

    with pytest.raises(ReplicationBroken, match="replication is broken: .* no standby streaming"):
        failover_drill(pair, LIMITS, settle=2)
    assert rows(pair.primary_dsn(), "SELECT 1") == [(1,)]  # the primary was not cut
