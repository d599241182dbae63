"""Steady HTTP traffic through the sandbox gateway: evenly spaced requests, bounded concurrency,
a rate that can change while it runs, and an optional share of requests with header `canary: true`."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from delivery.sandbox.traffic import DEFAULT_HOST

LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class LoadTarget:
    """One kind of request the generator sends in turn."""

    path: str
    host: str = DEFAULT_HOST
    method: str = "GET"


DEFAULT_TARGETS = (
    LoadTarget("/api/users/health"),
    LoadTarget("/api/trips"),
    LoadTarget("/api/ai/health"),
    LoadTarget("/api/locations"),
)


@dataclass
class LoadStats:
    """Requests sent, answers by status, transport failures, and ticks skipped at the concurrency bound."""

    sent: int = 0
    failed: int = 0
    skipped: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


class LoadGenerator:
    """Sends `requests_per_second` requests to `gateway_url` (on 127.0.0.1 only), cycling through `targets`.

    `start()` and rate changes are made from the running event loop; `await stop()` ends the traffic and the client.
    """

    def __init__(
        self,
        gateway_url: str,
        targets: tuple[LoadTarget, ...] = DEFAULT_TARGETS,
        requests_per_second: float = 20.0,
        rng: random.Random | None = None,
        *,
        canary_fraction: float = 0.0,
        max_in_flight: int = 64,
        timeout_seconds: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if urlsplit(gateway_url).hostname != LOCAL_HOST:
            raise ValueError(f"the load generator only sends to {LOCAL_HOST}; got {gateway_url}")
        if not targets:
            raise ValueError("the load generator needs at least one target")
        if not 0 <= canary_fraction <= 1:
            raise ValueError(f"canary_fraction must be within 0..1, got {canary_fraction}")
        self.gateway_url = gateway_url
        self.targets = targets
        self.rng = rng or random.Random()
        self.canary_fraction = canary_fraction
        self.max_in_flight = max_in_flight
        self.timeout_seconds = timeout_seconds
        self.stats = LoadStats()
        self._transport = transport
        self._rate = 0.0
        self._reschedule = True
        self._rate_changed = asyncio.Event()
        self.requests_per_second = requests_per_second
        self._client: httpx.AsyncClient | None = None
        self._loop_task: asyncio.Task | None = None
        self._in_flight: set[asyncio.Task] = set()

    @property
    def requests_per_second(self) -> float:
        return self._rate

    @requests_per_second.setter
    def requests_per_second(self, rate: float) -> None:
        if rate < 0:
            raise ValueError(f"requests_per_second must be >= 0, got {rate}")
        self._rate = float(rate)
        self._reschedule = True
        self._rate_changed.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> None:
        """Begin sending; a second call while running does nothing."""
        if self._loop_task is not None and not self._loop_task.done():
            return
        self._client = httpx.AsyncClient(
            base_url=self.gateway_url,
            timeout=self.timeout_seconds,
            transport=self._transport,
            trust_env=False,
            limits=httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=self.max_in_flight),
        )
        self._loop_task = asyncio.get_running_loop().create_task(self._send_steadily())

    async def stop(self) -> None:
        """Stop sending, cancel requests still pending, close the client."""
        tasks = [t for t in (self._loop_task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _send_steadily(self) -> None:
        loop = asyncio.get_running_loop()
        targets = itertools.cycle(self.targets)
        next_at = loop.time()
        while True:
            now = loop.time()
            if self._reschedule:
                self._reschedule, next_at = False, now
            if self._rate <= 0 or next_at > now:
                await self._wait_for_rate_change(None if self._rate <= 0 else next_at - now)
                continue
            self._send(next(targets))
            next_at = max(next_at + 1.0 / self._rate, now)  # late ticks are not made up in a burst

    async def _wait_for_rate_change(self, seconds: float | None) -> None:
        """Sleep `seconds` (None: until the rate changes); a rate change wakes up early."""
        self._rate_changed.clear()
        try:
            async with asyncio.timeout(seconds):
                await self._rate_changed.wait()
        except TimeoutError:
            pass

    def _send(self, target: LoadTarget) -> None:
        if len(self._in_flight) >= self.max_in_flight:
            self.stats.skipped += 1
            return
        headers = {"host": target.host}
        if self.canary_fraction and self.rng.random() < self.canary_fraction:
            headers["canary"] = "true"
        self.stats.sent += 1
        task = asyncio.get_running_loop().create_task(self._request(target, headers))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _request(self, target: LoadTarget, headers: dict[str, str]) -> None:
        assert self._client is not None
        try:
            response = await self._client.request(target.method, target.path, headers=headers)
        except httpx.HTTPError:
            self.stats.failed += 1
            return
        self.stats.statuses[response.status_code] += 1
