"""`tripgen-release sandbox serve`: the whole sandbox in one asyncio process, on 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import random
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from delivery.policy.models import Policy
from delivery.sandbox.apiserver import RequestLog, build_api_app
from delivery.sandbox.argocd import AdjustableClock, ArgoCDController, ArgoCDSettings
from delivery.sandbox.behavior import BehaviorBook
from delivery.sandbox.control import Faults, build_control_app
from delivery.sandbox.controllers import ClusterControllers
from delivery.sandbox.database import DATABASE_URL_ENV, ProductionDatabase, SchemaSnapshot
from delivery.sandbox.endpoints import Endpoints
from delivery.sandbox.gateway import build_gateway_app
from delivery.sandbox.loadgen import DEFAULT_TARGETS, LoadGenerator, LoadTarget
from delivery.sandbox.promql import build_prometheus_app
from delivery.sandbox.real_prometheus import RunningProcess, start_prometheus, start_pushgateway
from delivery.sandbox.registry import build_registry_app
from delivery.sandbox.scenario import Scenario, topology
from delivery.sandbox.store import ObjectStore
from delivery.sandbox.telemetry import Telemetry

SERVERS = ("kubernetes", "gateway", "prometheus", "registry", "control")
GRACEFUL_SHUTDOWN_SECONDS = 3  # open keep-alive and watch connections must not hold a stopping sandbox
FIRST_SCHEMA_READ_SECONDS = 15  # production's pods answer once the database was read (or found unreachable)


@dataclass
class Ports:
    """Fixed ports per server; 0 picks a free one."""

    kubernetes: int = 0
    gateway: int = 0
    prometheus: int = 0
    registry: int = 0
    control: int = 0


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (IPPROTO_TCP, so asyncio turns Nagle off for keep-alive)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(256)
    sock.setblocking(False)
    return sock


class PrometheusDownSwitch:
    """ASGI wrapper: while `faults.prometheus_down`, every request gets 503 as from a dead proxy."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app, self.faults = app, faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.faults.prometheus_down:
            response = JSONResponse({"status": "error", "errorType": "unavailable", "error": "prometheus is down (sandbox fault)"}, status_code=503)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


@dataclass
class Sandbox:
    """The sandbox cluster for one policy and scenario; with a `database_url` (default: the environment's
    TRIPGEN_SANDBOX_DATABASE_URL, never a command-line argument) production's pods answer as that database's schema
    allows (delivery/sandbox/database.py)."""

    policy: Policy
    scenario: Scenario
    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    real_prometheus: bool = False
    seed: int | None = None
    monitoring: bool = False  # a Pushgateway and the machine's Prometheus scraping it and the telemetry (implied by real_prometheus)
    database_url: str | None = field(default_factory=lambda: os.environ.get(DATABASE_URL_ENV) or None, repr=False)

    def __post_init__(self) -> None:
        self.behaviors = BehaviorBook(self.scenario.rules())
        for svc in self.policy.services:
            for tag in self.scenario.known_tags:
                self.behaviors.know(svc.repository, tag)
        self.faults = Faults()
        self.requests = RequestLog()
        self.store = ObjectStore()
        for manifest in topology(self.policy, self.scenario):
            self.store.create(self._plural(manifest), manifest)
        self.telemetry = Telemetry(sample_interval_seconds=self.scenario.sample_interval.total_seconds())
        self.controllers = ClusterControllers(self.store, self.behaviors, self.scenario.ready_delay.total_seconds(),
                                              restart_backoff_seconds=self.scenario.restart_backoff.total_seconds())
        self.argocd_clock = AdjustableClock()
        self.argocd = ArgoCDController(self.store, ArgoCDSettings(work_dir=self.state_dir / "argocd", clock=self.argocd_clock))
        self.loadgen: LoadGenerator | None = None
        self._monitoring: list[RunningProcess] = []  # with monitoring: the Pushgateway, then Prometheus
        production = self.policy.environments["production"].namespace
        self.database = (ProductionDatabase(production, self.scenario.schema_rules(), SchemaSnapshot(self.database_url))
                         if self.database_url else None)

    def _plural(self, manifest: dict) -> str:
        group = manifest["apiVersion"].rpartition("/")[0]
        return next(t.plural for t in self.store.registry if t.kind == manifest["kind"] and t.group == group)

    async def serve(self, stop: asyncio.Event) -> Endpoints:
        """Run until `stop` is set; writes endpoints.json and kubeconfig while serving, removes them after."""
        sockets = {name: bind(getattr(self.ports, name)) for name in SERVERS}
        urls = {name: f"http://127.0.0.1:{sock.getsockname()[1]}" for name, sock in sockets.items()}
        rng = random.Random(self.seed)
        load_rng = random.Random(rng.random())
        apps = {
            "kubernetes": build_api_app(self.store, self.faults, self.requests, self.behaviors),
            "gateway": build_gateway_app(self.store, self.behaviors, self.telemetry, random.Random(rng.random()),
                                         self.database),
            "prometheus": PrometheusDownSwitch(build_prometheus_app(self.telemetry), self.faults),
            "registry": build_registry_app(self.behaviors),
            "control": build_control_app(self.faults, self.behaviors, self.telemetry.exposition, self._set_load,
                                         self.requests, self.argocd_clock),
        }
        # the generated load enters the gateway app in-process (a third of a core less per sandbox than over TCP);
        # releases, probes and kubectl still reach every server over HTTP
        self.loadgen = LoadGenerator(
            urls["gateway"],
            targets=self._load_targets(),
            requests_per_second=self.scenario.load.requests_per_second,
            rng=load_rng,
            canary_fraction=self.scenario.load.canary_header_percent / 100,
            transport=httpx.ASGITransport(app=apps["gateway"]),
        )
        servers = [
            uvicorn.Server(uvicorn.Config(apps[name], log_level="warning", lifespan="off", access_log=False,
                                          timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS))
            for name in SERVERS
        ]
        for server in servers:
            server.install_signal_handlers = lambda: None  # the CLI owns SIGINT/SIGTERM
        serving = [asyncio.create_task(s.serve(sockets=[sockets[n]])) for s, n in zip(servers, SERVERS)]
        if self.database:
            self.database.snapshot.start()
            await asyncio.to_thread(self.database.snapshot.first_read.wait, FIRST_SCHEMA_READ_SECONDS)
        await self.controllers.start()
        await self.argocd.start()
        self.telemetry.start_sampling()
        self.loadgen.start()
        if self.monitoring or self.real_prometheus:
            urls["pushgateway"], urls["metrics_prometheus"] = await asyncio.to_thread(self._start_monitoring, urls["control"])
            if self.real_prometheus:
                urls["prometheus"] = urls["metrics_prometheus"]
        await self._seeded_deployments_available()
        endpoints = Endpoints(**urls)
        endpoints.write(self.state_dir, self.policy.environments["production"].namespace)
        try:
            await stop.wait()
        finally:
            Endpoints.clear(self.state_dir)
            await self.loadgen.stop()
            await self.telemetry.stop_sampling()
            await self.controllers.stop()
            await self.argocd.stop()
            self.store.close_watches()
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*serving, return_exceptions=True)
            for process in reversed(self._monitoring):
                process.stop()
            if self.database:
                await asyncio.to_thread(self.database.snapshot.stop)
        return endpoints

    async def _seeded_deployments_available(self) -> None:
        """Wait until every seeded Deployment is available, so the first request finds ready pods."""
        while not all(
            (d.get("status") or {}).get("availableReplicas", 0) >= d["spec"].get("replicas", 1)
            for d in self.store.list_objects("deployments")
        ):
            await asyncio.sleep(self.scenario.ready_delay.total_seconds() / 5 or 0.01)

    def _load_targets(self) -> tuple[LoadTarget, ...]:
        """Production traffic on the public host, and the same requests on staging (its E2E/load traffic)."""
        hosts = (self.scenario.hosts.production, self.scenario.hosts.staging)
        return tuple(LoadTarget(t.path, host) for host in hosts for t in DEFAULT_TARGETS)

    def _set_load(self, requests_per_second: float) -> None:
        if self.loadgen is not None:
            self.loadgen.requests_per_second = requests_per_second

    def _start_monitoring(self, control_url: str) -> tuple[str, str]:
        """A Pushgateway, then Prometheus scraping the telemetry and the Pushgateway; returns their URLs."""
        ports = []
        for _ in range(2):
            with bind(0) as probe:
                ports.append(probe.getsockname()[1])
        work = self.state_dir / "prometheus"
        self._monitoring.append(start_pushgateway(work, ports[0]))
        pushgateway = self._monitoring[0].url
        self._monitoring.append(start_prometheus(work, control_url.removeprefix("http://"), ports[1],
                                                 self.scenario.sample_interval.total_seconds(),
                                                 pushgateway=pushgateway.removeprefix("http://")))
        return pushgateway, self._monitoring[1].url


def run_sandbox(sandbox: Sandbox) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly; SIGUSR1 prints every thread's stack (a stop that hangs)."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await sandbox.serve(stop)

    asyncio.run(main())
