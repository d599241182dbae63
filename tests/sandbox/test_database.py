"""The sandbox's production database on a real PostgreSQL: what each version needs (the scenario's `schema`, the
same as migrations/<tag>/needs.yaml), the schema read in the background, and the pods' answers that follow from both."""

from __future__ import annotations

import random

import httpx
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from delivery.kube import Deployments, connect
from delivery.sandbox.database import (
    DATABASE_URL_ENV,
    UNREACHABLE,
    ProductionDatabase,
    SchemaSnapshot,
    needs_of,
    schema_problem,
)
from delivery.sandbox.gateway import build_gateway_app
from delivery.sandbox.process import sandbox_process
from delivery.sandbox.scenario import load_scenario
from delivery.sandbox.telemetry import Telemetry
from tests.conftest import REPO
from tests.postgres import postgres_admin_dsn  # noqa: F401  (fixtures)
from tests.sandbox.postgres_fixture import empty_database, execute, seeded_database  # noqa: F401
from tests.sandbox.test_gateway import IMAGE, fast_behaviors, get, trip_service_store
from tests.sandbox.test_traffic import make_pod, make_service
from tests.waiting import wait_until

RULES = load_scenario().schema_rules()
V1_0 = frozenset({("trips", "id"), ("trips", "user_id"), ("trips", "destination")})
SCORE = ("trips", "ai_confidence_score")
ADD_SCORE = "ALTER TABLE trips ADD COLUMN ai_confidence_score DECIMAL(3,2)"
MISSING_SCORE = {"status": "DOWN", "details": {"error": "missing trips.ai_confidence_score"}}
UP = {"status": "UP", "details": {"database": "PostgreSQL"}}
TIMEOUT = 15.0
PRODUCTION = "/_ns/production/trip-service"  # the gateway's path to a Service without a Host header


def test_a_version_is_healthy_when_all_its_columns_are_in_the_schema():
    needs = V1_0 | {SCORE}
    assert schema_problem(needs, needs | {("trips", "created_at")}) is None
    assert schema_problem(needs, V1_0) == "missing trips.ai_confidence_score"
    assert schema_problem(needs | {("trips_v2", "city")}, V1_0) == "missing trips.ai_confidence_score, trips_v2.city"
    assert schema_problem(needs, None) == UNREACHABLE == "cannot reach PostgreSQL"


def test_the_first_schema_entry_for_the_service_and_tag_wins():
    assert needs_of(RULES, "trip-service", "v1.0.0") == V1_0
    assert needs_of(RULES, "trip-service", "v1.3.0-slow") == V1_0 | {SCORE}
    assert needs_of(RULES, "trip-service", "v1.3.0-faulty") == V1_0 | {SCORE, ("trips", "share_token")}
    assert ("trips_v2", "country") in needs_of(RULES, "trip-service", "v1.4.0-broken")
    assert needs_of(RULES, "user-service", "v1.4.0") is None  # no entry: it uses no database


def test_every_migrations_needs_file_is_what_the_scenario_declares():
    files = sorted((REPO / "migrations").glob("*/needs.yaml"))
    assert [f.parent.name for f in files] == ["v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0-faulty", "v1.4.0"]
    for path in files:
        declared = {(table, column) for table, columns in yaml.safe_load(path.read_text()).items() for column in columns}
        assert needs_of(RULES, "trip-service", path.parent.name) == declared, path


def test_a_bad_schema_entry_names_its_field(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text("known_tags: [v1.0.0]\nbehaviors: [{tag: '*'}]\n"
                    "schema: [{tag: '*', services: [trip-service], tables: {trips: [id, User-Id]}}]\n")
    with pytest.raises(ValueError, match=r"scenario.yaml: schema\.0\.tables\.trips\.1: String should match pattern"):
        load_scenario(path)


def test_the_snapshot_seeds_an_empty_database_once_and_follows_its_columns(empty_database):
    logged: list[str] = []
    snapshot = SchemaSnapshot(empty_database, interval=0.05, log=logged.append)
    snapshot.start()
    try:
        wait_until(lambda: V1_0 <= (snapshot.columns or set()), TIMEOUT, "the seeded trips in the snapshot")
        assert execute(empty_database, "SELECT count(*), count(DISTINCT user_id) FROM trips") == [(2500, 50)]
        execute(empty_database, ADD_SCORE)
        wait_until(lambda: SCORE in (snapshot.columns or set()), TIMEOUT, "the new column in the snapshot")
    finally:
        snapshot.stop()
    again = SchemaSnapshot(empty_database, log=logged.append)
    again.start()
    try:
        assert again.first_read.wait(TIMEOUT) and SCORE in again.columns
    finally:
        again.stop()
    assert logged.count("sandbox database: seeded the v1.0.0 schema (trips, 2,500 rows)") == 1
    assert execute(empty_database, "SELECT count(*) FROM trips") == [(2500,)]


def test_a_database_gone_reads_as_unreachable_and_no_log_names_the_password(seeded_database, postgres_admin_dsn):  # noqa: F811
    dsn, secret = with_password(seeded_database)
    logged: list[str] = []
    snapshot = SchemaSnapshot(dsn, interval=0.05, log=logged.append)
    snapshot.start()
    try:
        wait_until(lambda: snapshot.columns, TIMEOUT, "the first snapshot")
        execute(postgres_admin_dsn, f"DROP DATABASE {conninfo_to_dict(dsn)['dbname']} WITH (FORCE)")
        wait_until(lambda: snapshot.columns is None, TIMEOUT, "the snapshot to find the database gone")
        wait_until(lambda: any(UNREACHABLE in line for line in logged), TIMEOUT, "the reason logged")
    finally:
        snapshot.stop()
    assert not [line for line in logged if secret in line]
    with pytest.raises(ValueError, match=DATABASE_URL_ENV) as refused:
        SchemaSnapshot(f"host=db password={secret} no-equals-sign")
    assert secret not in str(refused.value)


def test_production_pods_answer_health_db_and_the_api_from_the_schema(seeded_database):
    store = trip_service_store("green", "v1.2.0")  # production serves v1.2.0, which needs ai_confidence_score
    store.objects["services"].append(make_service("trip-service", {"app": "trip-service"}, namespace="staging"))
    store.objects["pods"].append(make_pod("trip-service-5d8c-a", "trip-service", "staging", namespace="staging",
                                          image=f"{IMAGE}:v1.2.0"))
    snapshot = SchemaSnapshot(seeded_database, interval=0.05)
    snapshot.start()
    try:
        assert snapshot.first_read.wait(TIMEOUT)
        app = build_gateway_app(store, fast_behaviors(), Telemetry(), random.Random(1),
                                ProductionDatabase("production", RULES, snapshot))
        db, api, live = (get(app, PRODUCTION + path)[0] for path in ("/actuator/health/db", "/api/trips", "/actuator/health"))
        assert (db.status_code, db.json()) == (503, MISSING_SCORE)
        assert api.status_code == 500 and (live.status_code, live.json()) == (200, {"status": "UP"})
        (staging,) = get(app, "/_ns/staging/trip-service/actuator/health/db")  # staging has no database
        assert (staging.status_code, staging.json()) == (200, UP)
        execute(seeded_database, ADD_SCORE)
        wait_until(lambda: get(app, f"{PRODUCTION}/actuator/health/db")[0].status_code == 200, TIMEOUT, "health/db UP")
        assert get(app, f"{PRODUCTION}/api/trips")[0].status_code == 200
    finally:
        snapshot.stop()


def test_a_sandbox_with_a_database_answers_health_db_as_its_schema_allows(empty_database, tmp_path, monkeypatch):
    dsn, secret = with_password(empty_database)
    monkeypatch.setenv(DATABASE_URL_ENV, dsn)
    with sandbox_process(tmp_path) as endpoints:
        def health_db() -> tuple[int, dict]:
            response = httpx.get(f"{endpoints.gateway}{PRODUCTION}/actuator/health/db", timeout=10)
            return response.status_code, response.json()

        assert health_db() == (200, UP)  # v1.0.0 on the seeded schema
        deployments = Deployments(connect(str(tmp_path / "sandbox" / "kubeconfig")))
        image = {"spec": {"template": {"spec": {"containers": [{"name": "trip-service", "image": f"{IMAGE}:v1.2.0"}]}}}}
        deployments.conn.apps.patch_namespaced_deployment("trip-service-blue", "production", image)
        assert deployments.wait_rolled_out("production", "trip-service-blue", timeout=TIMEOUT, poll=0.1).done
        wait_until(lambda: health_db() == (503, MISSING_SCORE), TIMEOUT, "v1.2.0's health/db DOWN")
        execute(empty_database, ADD_SCORE)
        wait_until(lambda: health_db() == (200, UP), TIMEOUT, "health/db UP once the column exists")
    assert secret not in (tmp_path / "sandbox.log").read_text()


def with_password(dsn: str) -> tuple[str, str]:
    """`dsn` with a password (its own, or one the Unix-socket peer login ignores), and that password."""
    secret = conninfo_to_dict(dsn).get("password") or "s3cret-never-logged"
    return make_conninfo(dsn, password=secret), secret
