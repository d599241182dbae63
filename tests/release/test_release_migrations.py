"""Migrations in a release on a real PostgreSQL (R-DB): a blocking migration stops it before staging; expand,
backfill and contract run in the runbook's order; a rollback runs down; the DSN's password shows nowhere."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import psycopg
import pytest

from delivery.migrations.bundle import MigrationBundle, Phase
from delivery.migrations.gate import limits_of
from delivery.migrations.rehearsal import schema_of
from delivery.migrations.runner import MigrationRunner
from delivery.policy.models import DatabaseMigrationsGate
from tests.migrations.conftest import database, write  # noqa: F401  (fixtures)
from tests.migrations.test_gate import NEEDS
from tests.migrations.test_runner import V120
from tests.postgres import postgres_admin_dsn  # noqa: F401  (a fixture `database` uses)
from tests.release.conftest import audit_events, audit_records, live, release_run, set_load, staging_image

SERVICE = "user-service"
BASE_IMAGE = f"acrtrpgenprod.azurecr.io/{SERVICE}:v1.0.0"
PASSWORD = "Pg-s3cret-7f3a9"  # noqa: S105 - the test's own throwaway role


BROKEN = {
    "drop column in expand": ({"expand/001_add_score.sql": "-- tidy\nALTER TABLE trips DROP COLUMN destination;\n"},
                              "v1.2.0/expand/001_add_score.sql:2: ban-drop-column"),
    "syntax error": ({"backfill/001_score.sql": "UPDATE trips SET\n  ai_confidence_score = 0.5 WHER id = 1;\n"},
                     "v1.2.0/backfill/001_score.sql:2: syntax-error"),
    "applied file edited since": ({"expand/001_add_score.sql": "-- widened\n" + V120["expand/001_add_score.sql"].replace("3,2", "4,2")},
                                  "v1.2.0/expand/001_add_score.sql: line 1: applied with checksum"),
    "contract that breaks the version (the next release's old color)": (
        {"needs.yaml": NEEDS, "contract/002_drop_destination.sql": "ALTER TABLE trips DROP COLUMN destination;\n"},
        "contract: trips.destination is missing, which v1.2.0 needs"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_migrations_stop_the_release_before_staging(case, prefect_api, release_database, sandbox, cluster, tmp_path):
    root = write(tmp_path / "reports-root" / "migrations", "v1.2.0", V120)
    if case == "applied file edited since":  # a run of this tag applied its expand; the file was edited afterwards
        MigrationRunner(release_database, limits_of(DatabaseMigrationsGate()), log=lambda _: None).run(
            MigrationBundle.load(root, "v1.2.0"), Phase.EXPAND)
    before = schema_of(release_database)
    files, reason = BROKEN[case]
    write(root, "v1.2.0", files)
    state = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev").join(60)
    assert state.is_failed() and "stopped by quality gates" in state.message, state.message
    assert reason in state.message, state.message
    assert staging_image(cluster, SERVICE) == BASE_IMAGE
    assert live(cluster, SERVICE) == ("blue", BASE_IMAGE)
    assert schema_of(release_database) == before
    assert "gate_failed" in audit_events(tmp_path) and "migration_applied" not in audit_events(tmp_path)

V130 = {"expand/001_add_share_token.sql": "ALTER TABLE trips ADD COLUMN share_token text;\n",
        "down/001_drop_share_token.sql": "ALTER TABLE trips DROP COLUMN IF EXISTS share_token;\n"}


@pytest.fixture
def release_database(database, tmp_path, monkeypatch) -> str:
    """The test's database as the release's production database, reached as a role with a password."""
    role = f"release_bot_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
    dsn = psycopg.conninfo.make_conninfo(database, user=role, password=PASSWORD)
    monkeypatch.setenv("TRIPGEN_DATABASE_URL", dsn)
    yield dsn
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}; DROP ROLE {role}")


def approve_both(prefect_api, run) -> None:
    key = prefect_api.approve(run, "demo-lead")
    prefect_api.approve(run, "demo-ops", after_key=key)


def test_v1_2_0_expands_before_deploying_backfills_after_the_switch_and_contracts_after_retire(
        prefect_api, release_database, sandbox, cluster, tmp_path):
    write(tmp_path / "reports-root" / "migrations", "v1.2.0", {**V120, "needs.yaml": NEEDS})
    run = release_run("v1.2.0", services=[SERVICE], initiator="demo-dev")
    approve_both(prefect_api, run)
    state = run.join(180)
    assert state.is_completed(), state.message
    steps = [(r["event"], r["details"].get("phase", "")) for r in audit_records(tmp_path)
             if r["event"] in ("migration_applied", "traffic_switched", "deployment_completed")]
    assert steps == [("migration_applied", "expand"), ("traffic_switched", ""), ("migration_applied", "backfill"),
                     ("migration_applied", "contract"), ("deployment_completed", "")], steps
    backfill = next(r["details"] for r in audit_records(tmp_path) if r["details"].get("phase") == "backfill")
    assert backfill["version"] == "v1.2.0/backfill/001_score.sql" and backfill["rows"] == 2500 and backfill["seconds"] >= 0
    with psycopg.connect(release_database) as conn:
        nullable = conn.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'trips' "
                                "AND column_name = 'ai_confidence_score'").fetchone()
        scores = conn.execute("SELECT ai_confidence_score, count(*) FROM trips GROUP BY 1").fetchall()
    assert nullable == ("NO",) and scores == [(Decimal("0.50"), 2500)]
    flow_run = prefect_api.flow_run(run)
    progress = [a for a in prefect_api.artifacts(flow_run["id"]) if a["key"] == "backfill-v1-2-0-001-score-sql"]
    assert progress and progress[-1]["type"] == "progress" and progress[-1]["data"] == 100.0
    assert_password_nowhere(prefect_api, flow_run, tmp_path)


# The watch ends at its first rollback verdict; it is long only for a loaded machine's thinner traffic (as in
# test_release_scenarios.py).
@pytest.mark.parametrize("policy_changes", [{"environments": {"production": {"watch": "90s"}}}])
def test_a_version_rolled_back_by_the_watch_runs_its_down_and_the_schema_is_as_before(
        prefect_api, release_database, sandbox, cluster, tmp_path, policy_changes):
    write(tmp_path / "reports-root" / "migrations", "v1.3.0-faulty", V130)
    before = schema_of(release_database)
    set_load(sandbox, 300)
    run = release_run("v1.3.0-faulty", services=[SERVICE], initiator="demo-dev")
    approve_both(prefect_api, run)
    state = run.join(180)
    assert state.is_failed() and "rolled back" in state.message and "database: down ran 1 file(s)" in state.message, state.message
    assert live(cluster, SERVICE) == ("blue", BASE_IMAGE)
    assert schema_of(release_database) == before
    events = [(r["event"], r["details"].get("version", "")) for r in audit_records(tmp_path) if r["event"].startswith(("migration", "rollback"))]
    assert events == [("migration_applied", "v1.3.0-faulty/expand/001_add_share_token.sql"), ("rollback_executed", ""),
                      ("migration_reverted", "v1.3.0-faulty/down/001_drop_share_token.sql")], events
    assert_password_nowhere(prefect_api, prefect_api.flow_run(run), tmp_path)


def assert_password_nowhere(prefect_api, flow_run: dict, tmp_path) -> None:
    """Not in the run's parameters, logs (the flow's and its tasks'), artifacts, nor the audit log."""
    logs = prefect_api.http.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run["id"]]}}, "limit": 200}).json()
    assert logs, "the run has logs"
    places = {"parameters": json.dumps(flow_run["parameters"]), "logs": json.dumps(logs),
              "artifacts": json.dumps(prefect_api.artifacts(flow_run["id"])), "audit": (tmp_path / "audit.jsonl").read_text()}
    assert [where for where, text in places.items() if PASSWORD in text] == []


def test_an_app_deployed_without_its_expand_fails_validation_on_the_sandbox_database(
        prefect_api, release_database, monkeypatch, sandbox_database, sandbox, cluster, tmp_path):
    """v1.2.0 shipped without its migrations: trip-service's idle color finds trips.ai_confidence_score missing."""
    run = release_run("v1.2.0", services=["trip-service"], initiator="demo-dev")
    approve_both(prefect_api, run)
    state = run.join(180)
    assert state.is_failed() and "missing trips.ai_confidence_score" in state.message, state.message
    assert live(cluster, "trip-service") == ("blue", "acrtrpgenprod.azurecr.io/trip-service:v1.0.0")
    assert "traffic_switched" not in audit_events(tmp_path)


@pytest.fixture
def sandbox_database(release_database, monkeypatch) -> str:
    """The sandbox's production pods answer /actuator/health/db from the release's database (set before it starts)."""
    monkeypatch.setenv("TRIPGEN_SANDBOX_DATABASE_URL", release_database)
    return release_database


@pytest.mark.parametrize("policy_changes", [{"quality_gates": {"database_migrations": {"contract": "next_release"}}}])
def test_with_contract_next_release_the_next_release_contracts_before_its_expand(
        prefect_api, release_database, sandbox, cluster, tmp_path, policy_changes):
    write(tmp_path / "reports-root" / "migrations", "v1.2.0", {**V120, "needs.yaml": NEEDS})
    write(tmp_path / "reports-root" / "migrations", "v1.3.0", V130)
    for tag in ("v1.2.0", "v1.3.0"):
        run = release_run(tag, services=[SERVICE], initiator="demo-dev")
        approve_both(prefect_api, run)
        state = run.join(180)
        assert state.is_completed(), state.message
        if tag == "v1.2.0":
            assert "contract waits for the next release" in state.result()["detail"]
            assert nullable(release_database) == "YES"
    applied = [(r["release"], r["details"]["version"]) for r in audit_records(tmp_path) if r["event"] == "migration_applied"]
    assert applied == [("v1.2.0", "v1.2.0/expand/001_add_score.sql"), ("v1.2.0", "v1.2.0/backfill/001_score.sql"),
                       ("v1.3.0", "v1.2.0/contract/001_score_not_null.sql"), ("v1.3.0", "v1.3.0/expand/001_add_share_token.sql")]
    assert nullable(release_database) == "NO"


def nullable(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'trips' "
                            "AND column_name = 'ai_confidence_score'").fetchone()[0]
