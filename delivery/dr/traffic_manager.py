"""A stand-in for Azure Traffic Manager's priority routing: a monitor probes each region's health path and an HTTP
front on 127.0.0.1 forwards every request to the highest-priority endpoint not degraded, naming the region served."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

REGION_HEADER = "x-tripgen-region"
ONLINE, DEGRADED, CHECKING = "online", "degraded", "checking"  # Traffic Manager's monitor states (CHECKING routes as online)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host", "te", "upgrade"}


@dataclass(frozen=True)
class Endpoint:
    """A region's public entry: its name (sent back in REGION_HEADER) and its gateway's base URL."""

    name: str
    url: str


@dataclass(frozen=True)
class Probe:
    """The endpoint monitoring: GET `path` with Host `host` every `interval` seconds, 200 within `timeout` passes;
    more than `tolerated_failures` failures in a row mark the endpoint degraded, one pass brings it back online."""

    path: str
    host: str
    interval: float = 0.25
    timeout: float = 1.0
    tolerated_failures: int = 2


@dataclass(frozen=True)
class StatusChange:
    """The monitor changed `endpoint`'s status at `at` (monotonic seconds), after `failures` failed probes in a row."""

    endpoint: str
    status: str
    at: float
    failures: int


class TrafficManager:
    """Endpoints in priority order (first = primary), monitored by a thread and served by a threaded HTTP front;
    when every endpoint is degraded the first one gets the traffic, as Azure does (all are treated as online)."""

    def __init__(self, endpoints: list[Endpoint], probe: Probe, forward_timeout: float = 10.0) -> None:
        self.endpoints, self.probe = list(endpoints), probe
        self.history: list[StatusChange] = []
        self._status = {e.name: CHECKING for e in self.endpoints}
        self._failures = {e.name: 0 for e in self.endpoints}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=forward_timeout, follow_redirects=False)
        self._front = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._front.daemon_threads = True
        self._threads = [threading.Thread(target=self._monitor, name="traffic-manager-monitor", daemon=True),
                         threading.Thread(target=self._front.serve_forever, name="traffic-manager-front", daemon=True)]

    @property
    def url(self) -> str:
        """The front's base URL (what the public DNS name resolves to, in Azure)."""
        return f"http://127.0.0.1:{self._front.server_address[1]}"

    def __enter__(self) -> TrafficManager:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._front.shutdown()
        self._front.server_close()
        for thread in self._threads:
            thread.join(self.probe.timeout + self.probe.interval + 5)
        self._client.close()

    def status(self, name: str) -> str:
        with self._changed:
            return self._status[name]

    def route(self) -> Endpoint:
        """The highest-priority endpoint not degraded (the first endpoint when all are)."""
        with self._changed:
            return next((e for e in self.endpoints if self._status[e.name] != DEGRADED), self.endpoints[0])

    def wait_status(self, name: str, status: str, timeout: float) -> bool:
        """Waits until the monitor has `name` in `status`; False after `timeout` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self._status[name] == status, timeout)

    def _monitor(self) -> None:
        while not self._stop.is_set():
            for endpoint in self.endpoints:
                self._record(endpoint.name, self._passes(endpoint))
            self._stop.wait(self.probe.interval)

    def _passes(self, endpoint: Endpoint) -> bool:
        try:
            answer = self._client.get(endpoint.url + self.probe.path, headers={"Host": self.probe.host},
                                      timeout=self.probe.timeout)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def _record(self, name: str, passed: bool) -> None:
        with self._changed:
            self._failures[name] = 0 if passed else self._failures[name] + 1
            status = ONLINE if passed else DEGRADED if self._failures[name] > self.probe.tolerated_failures else self._status[name]
            if status != self._status[name]:
                self._status[name] = status
                self.history.append(StatusChange(name, status, time.monotonic(), self._failures[name]))
                self._changed.notify_all()

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """The request sent to the routed endpoint: its status, headers and body, plus REGION_HEADER; 502 when the
        endpoint cannot be reached (as a client resolving to a dead region would fail)."""
        endpoint = self.route()
        sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP - {"host"}}
        try:
            answer = self._client.request(method, endpoint.url + path, headers=sent, content=body)
        except httpx.HTTPError as err:
            return 502, {REGION_HEADER: endpoint.name}, f"{endpoint.name} unreachable: {err}".encode()
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return answer.status_code, {**kept, REGION_HEADER: endpoint.name}, answer.content


def _handler(manager: TrafficManager) -> type[BaseHTTPRequestHandler]:
    class Front(BaseHTTPRequestHandler):
        """Forwards every method through `manager`."""

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status, headers, content = manager.forward(self.command, self.path, dict(self.headers.items()), body)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, *args: object) -> None:
            """Quiet: the sandboxes log their own requests."""

    return Front
