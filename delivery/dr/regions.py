"""The drill's two regions: sandbox clusters korea-central (on the replication primary) and korea-south (on the hot
standby) behind the Traffic Manager stand-in; losing korea-central and waiting for korea-south to serve."""

from __future__ import annotations

import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

from delivery.dr.report import TrafficSwitch
from delivery.dr.traffic_manager import DEGRADED, ONLINE, REGION_HEADER, Endpoint, Probe, TrafficManager
from delivery.policy.models import Policy
from delivery.sandbox.database import DATABASE_URL_ENV
from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.process import sandbox_process
from delivery.sandbox.traffic import DEFAULT_HOST

PRIMARY, DR = "korea-central", "korea-south"
POLL = 0.1  # seconds between requests while waiting for the front to answer from the DR region
_ENVIRONMENT = threading.Lock()  # the DSN reaches a sandbox through the environment, set only while one starts


class RegionError(RuntimeError):
    """A region did not serve as the drill needs (before the cut, or the DR region after it)."""


def health_probe(policy: Policy) -> Probe:
    """The policy's database health check (`db_health_path` of `db_health_service`, addressed by its cluster name)."""
    service = policy.validation.db_health_service
    path = next(s.db_health_path for s in policy.services if s.name == service)
    return Probe(path=path, host=f"{service}.{policy.environments['production'].namespace}.svc.cluster.local")


def production_path(policy: Policy) -> str:
    """The db_health_service's public API path: what users reach through api.tripgen.com, and it reads the database."""
    return next(s.public_path for s in policy.services if s.name == policy.validation.db_health_service)


class TwoRegions:
    """Both sandboxes started (each in its own dir under `work_dir`) and the Traffic Manager front over them."""

    def __init__(self, work_dir: Path, policy_file: Path, policy: Policy, primary_dsn: str, standby_dsn: str,
                 settle: float) -> None:
        self.work_dir, self.policy_file, self.settle = Path(work_dir), Path(policy_file), settle
        self.dsns = {PRIMARY: primary_dsn, DR: standby_dsn}
        self.probe, self.path = health_probe(policy), production_path(policy)
        self._primary, self._rest = ExitStack(), ExitStack()
        self.manager: TrafficManager | None = None

    def __enter__(self) -> TwoRegions:
        try:
            gateways = {PRIMARY: self._start(self._primary, PRIMARY).gateway, DR: self._start(self._rest, DR).gateway}
            self.manager = self._rest.enter_context(TrafficManager([Endpoint(n, gateways[n]) for n in (PRIMARY, DR)], self.probe))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._rest.close()
        self._primary.close()

    def _start(self, stack: ExitStack, name: str) -> Endpoints:
        """A sandbox process whose production pods use the region's database."""
        (self.work_dir / name).mkdir(parents=True, exist_ok=True)
        with _ENVIRONMENT:
            before = os.environ.get(DATABASE_URL_ENV)
            os.environ[DATABASE_URL_ENV] = self.dsns[name]
            try:
                return stack.enter_context(sandbox_process(self.work_dir / name, self.policy_file))
            finally:
                if before is None:
                    del os.environ[DATABASE_URL_ENV]
                else:
                    os.environ[DATABASE_URL_ENV] = before

    def serving(self) -> None:
        """Waits (up to `settle` s) until both regions are online and the front serves the production path from
        korea-central; raises RegionError naming what it saw otherwise."""
        for name in (PRIMARY, DR):
            if not self.manager.wait_status(name, ONLINE, self.settle):
                raise RegionError(f"{name} is not healthy before the cut: its {self.probe.path} is {self.manager.status(name)}")
        self._wait_served_by(PRIMARY, self.settle)

    def lose_primary(self) -> None:
        """The whole primary region goes: its sandbox is stopped (its database is cut by the caller)."""
        self._primary.close()

    def switch_traffic(self, promoted_dsn: str, cut: float, timeout: float) -> TrafficSwitch:
        """After promotion: a write through the DR region's DSN (the same one, now a primary), then waits until the
        front answers 200 from korea-south on the production path; times are seconds from `cut`."""
        with psycopg.connect(promoted_dsn, autocommit=True, connect_timeout=5) as conn:
            write_id = conn.execute("INSERT INTO trips (user_id, destination) VALUES (0, 'DR drill, korea-south')"
                                    " RETURNING id").fetchone()[0]
        region, served_at = self._wait_served_by(DR, timeout)
        degraded = next((c.at for c in self.manager.history if c.endpoint == PRIMARY and c.status == DEGRADED and c.at > cut),
                        None)
        if degraded is None:
            raise RegionError(f"the front served from {DR} but the monitor never marked {PRIMARY} degraded after the cut")
        return TrafficSwitch(served_by=region, primary_degraded_seconds=degraded - cut,
                             served_seconds=served_at - cut, write_id=write_id)

    def _wait_served_by(self, region: str, timeout: float) -> tuple[str, float]:
        """Waits until the front answers the production path 200 from `region`; the header's region and the time."""
        deadline, seen = time.monotonic() + timeout, "no answer"
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    answer = client.get(self.manager.url + self.path, headers={"Host": DEFAULT_HOST})
                    served_by = answer.headers.get(REGION_HEADER)
                    seen = f"{answer.status_code} from {served_by}"
                    if answer.status_code == 200 and served_by == region:
                        return served_by, time.monotonic()
                except httpx.HTTPError as err:
                    seen = str(err)
                time.sleep(POLL)
        raise RegionError(f"the Traffic Manager front did not serve {DEFAULT_HOST}{self.path} from {region} within "
                          f"{timeout:g}s (last: {seen})")
