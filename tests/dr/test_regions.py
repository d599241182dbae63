"""The whole drill with two sandbox regions: korea-central is lost with its database, and RTO runs until the Traffic
Manager stand-in's front serves the production path from korea-south on the promoted standby."""

from __future__ import annotations

import os

import pytest

from delivery.dr.drill import run_drill
from delivery.policy.loader import load_policy
from delivery.sandbox.database import DATABASE_URL_ENV
from tests.conftest import REPO
from tests.postgres import server_state_dir

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)

POLICY = REPO / "policies" / "demo.yaml"


def test_rto_runs_until_the_dr_region_serves_through_the_traffic_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    policy = load_policy(str(POLICY))
    with server_state_dir() as work:
        report = run_drill(work, policy, regions_policy=POLICY, redis_keys=10)
        assert list(work.iterdir()) == []  # both regions, the databases and their files are gone

    switch = report.traffic
    assert switch is not None and switch.served_by == "korea-south"
    assert 0 < switch.primary_degraded_seconds <= switch.served_seconds == report.rto_seconds  # switched after the cut
    assert report.failover_seconds <= report.rto_seconds <= policy.disaster_recovery.rto.total_seconds()
    assert report.rto_scope == "traffic switched to korea-south" and report.ok, report.verdicts()
    assert switch.write_id > 2500  # the seeded trips are 1..2500: the DR region's DSN took a write after promotion
    assert DATABASE_URL_ENV not in os.environ  # the DSN was in the environment only while a region started
