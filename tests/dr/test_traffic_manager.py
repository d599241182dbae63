"""The Traffic Manager stand-in over two real sandbox gateways: a stopped or failing region is marked degraded after
the tolerated failures and the front fails over by priority, a recovered one gets the traffic back."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from delivery.dr.traffic_manager import DEGRADED, ONLINE, REGION_HEADER, Endpoint, Probe, TrafficManager
from delivery.sandbox.database import DATABASE_URL_ENV
from delivery.sandbox.process import sandbox_process
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # starts its own servers: dealt out first (tests/conftest.py)

POLICY = REPO / "policies" / "demo.yaml"
PROBE = Probe(path="/actuator/health/db", host="trip-service.production.svc.cluster.local", interval=0.1,
              tolerated_failures=2)
WAIT = 15.0  # seconds any status change may take at most


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)  # pods answer /actuator/health/db from their behavior


def served(manager: TrafficManager) -> tuple[int, str]:
    """The front's answer to a user's GET /api/trips: status and the region that served it."""
    answer = httpx.get(manager.url + "/api/trips", headers={"Host": "api.tripgen.com"}, timeout=10)
    return answer.status_code, answer.headers[REGION_HEADER]


def region(tmp_path: Path, name: str):
    """A sandbox process in its own dir."""
    (tmp_path / name).mkdir()
    return sandbox_process(tmp_path / name, POLICY)


def db_healthy(control: str, healthy: bool) -> None:
    httpx.patch(control + "/faults", json={"versions": {"v1.0.0": {"db_healthy": healthy}}}, timeout=10).raise_for_status()


def test_a_stopped_region_is_degraded_after_the_tolerated_failures_and_the_front_fails_over(tmp_path: Path) -> None:
    with ExitStack() as central_region, region(tmp_path, "south") as south:
        central = central_region.enter_context(region(tmp_path, "central"))
        endpoints = [Endpoint("korea-central", central.gateway), Endpoint("korea-south", south.gateway)]
        with TrafficManager(endpoints, PROBE) as manager:
            assert manager.wait_status("korea-central", ONLINE, WAIT) and manager.wait_status("korea-south", ONLINE, WAIT)
            assert served(manager) == (200, "korea-central")

            central_region.close()
            assert manager.wait_status("korea-central", DEGRADED, WAIT)
            assert served(manager) == (200, "korea-south")
    [degraded] = [c for c in manager.history if c.endpoint == "korea-central" and c.status == DEGRADED]
    assert degraded.failures == PROBE.tolerated_failures + 1


def test_a_recovered_region_gets_the_traffic_back_by_priority(tmp_path: Path) -> None:
    with region(tmp_path, "central") as central, region(tmp_path, "south") as south:
        endpoints = [Endpoint("korea-central", central.gateway), Endpoint("korea-south", south.gateway)]
        with TrafficManager(endpoints, PROBE) as manager:
            assert manager.wait_status("korea-central", ONLINE, WAIT) and manager.wait_status("korea-south", ONLINE, WAIT)

            db_healthy(central.control, False)
            assert manager.wait_status("korea-central", DEGRADED, WAIT)
            assert served(manager) == (200, "korea-south")

            db_healthy(south.control, False)  # every endpoint degraded: Traffic Manager routes as if all were online
            assert manager.wait_status("korea-south", DEGRADED, WAIT)
            assert served(manager)[1] == "korea-central"  # its API still answers: only the health check fails

            db_healthy(central.control, True)
            assert manager.wait_status("korea-central", ONLINE, WAIT)
            assert served(manager) == (200, "korea-central")
