"""The load generator: steady, bounded, adjustable traffic to the gateway on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import httpx
import pytest

from delivery.sandbox.behavior import BehaviorBook, BehaviorRule, VersionBehavior
from delivery.sandbox.gateway import build_gateway_app
from delivery.sandbox.loadgen import DEFAULT_TARGETS, LoadGenerator, LoadTarget
from delivery.sandbox.telemetry import Telemetry
from tests.sandbox.test_gateway import canary_store, fast_behaviors, public_api_store, serve_in_thread, trip_service_store
from tests.waiting import async_never_within, async_wait_until


def requests_by(telemetry: Telemetry, label: str) -> Counter:
    index = telemetry.http_requests.label_names.index(label)
    counts: Counter = Counter()
    for values, total in telemetry.http_requests.totals.items():
        counts[values[index]] += total
    return counts


TRAFFIC_TIMEOUT = 30  # seconds; each awaited event takes well under one on an idle machine


def answered(generator: LoadGenerator) -> int:
    return sum(generator.stats.statuses.values())


async def drain(generator: LoadGenerator) -> None:
    """Send nothing more (rate 0), wait until every request sent has its answer, then stop."""
    generator.requests_per_second = 0
    await async_wait_until(lambda: generator.in_flight == 0, TRAFFIC_TIMEOUT, "every request sent to be answered")
    await generator.stop()


async def send_until(generator: LoadGenerator, enough) -> float:
    """Start, wait until `enough()`, drain; returns the seconds from start until sending stopped."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    generator.start()
    await async_wait_until(enough, TRAFFIC_TIMEOUT, "enough answered requests")
    generator.requests_per_second = 0
    sending = loop.time() - started
    await drain(generator)
    return sending


@pytest.mark.parametrize("url", ["http://localhost:8080", "http://10.0.0.5", "https://api.tripgen.com"])
def test_only_127_0_0_1_is_targeted(url: str) -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        LoadGenerator(url)


def test_steady_traffic_cycles_through_the_public_api_over_http() -> None:
    telemetry = Telemetry()
    app = build_gateway_app(public_api_store(), fast_behaviors(), telemetry, random.Random(1))
    with serve_in_thread(app) as url:
        generator = LoadGenerator(url, DEFAULT_TARGETS, requests_per_second=80, rng=random.Random(2))
        sending = asyncio.run(send_until(generator, lambda: generator.stats.statuses[200] >= 80))
    sent = generator.stats.sent
    assert generator.stats.statuses == {200: sent} and generator.stats.failed == 0  # every request answered
    assert sent <= 80 * sending + 1.01  # evenly spaced: never faster than the rate (a slow machine only sends fewer)
    by_uri = requests_by(telemetry, "uri")
    assert set(by_uri) == {"/api/users/health", "/api/trips", "/api/ai/health", "/api/locations"}
    assert sum(by_uri.values()) == sent and max(by_uri.values()) - min(by_uri.values()) <= 1  # evenly cycled


def test_a_canary_fraction_sends_the_canary_header() -> None:
    telemetry = Telemetry()
    app = build_gateway_app(canary_store(100, 0), fast_behaviors(), telemetry, random.Random(1))
    generator = LoadGenerator(
        "http://127.0.0.1", (LoadTarget("/api/trips"),), 200, random.Random(3),
        canary_fraction=0.5, transport=httpx.ASGITransport(app=app),
    )
    asyncio.run(send_until(generator, lambda: answered(generator) >= 100))
    versions = requests_by(telemetry, "version")
    total = versions["canary"] + versions["blue"]
    assert total == generator.stats.sent >= 100 and abs(versions["canary"] / total - 0.5) < 0.2


def test_concurrency_stays_bounded_when_the_gateway_is_slow() -> None:
    slow = BehaviorBook((BehaviorRule("*", VersionBehavior(error_rate=0.0, latency_p50_ms=300, latency_p95_ms=300)),))
    app = build_gateway_app(trip_service_store("blue"), slow, Telemetry(), random.Random(1))
    generator = LoadGenerator(
        "http://127.0.0.1", (LoadTarget("/api/trips"),), 100, random.Random(1),
        max_in_flight=3, transport=httpx.ASGITransport(app=app),
    )

    def within_the_bound() -> None:
        assert generator.in_flight <= 3, f"{generator.in_flight} requests in flight"

    async def watch() -> None:
        generator.start()
        await async_wait_until(lambda: generator.in_flight == 3 and generator.stats.skipped > 10, TRAFFIC_TIMEOUT,
                               "3 requests in flight and ticks skipped at the bound", invariant=within_the_bound)
        await generator.stop()

    asyncio.run(watch())
    assert generator.stats.skipped > 10 and generator.in_flight == 0


def test_the_rate_changes_while_running_and_stop_ends_the_traffic() -> None:
    app = build_gateway_app(trip_service_store("blue"), fast_behaviors(), Telemetry(), random.Random(1))
    generator = LoadGenerator(
        "http://127.0.0.1", (LoadTarget("/api/trips"),), 0, random.Random(1), transport=httpx.ASGITransport(app=app)
    )

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        generator.start()
        await async_never_within(lambda: generator.stats.sent, 0.3, "requests sent at rate 0")
        changed = loop.time()
        generator.requests_per_second = 100
        await async_wait_until(lambda: generator.stats.sent >= 40, TRAFFIC_TIMEOUT, "40 requests at rate 100")
        sending = loop.time() - changed
        sent = generator.stats.sent
        assert sent <= 100 * sending + 1.01  # the new rate, not faster
        loop_task = generator._loop_task
        await generator.stop()
        assert loop_task is not None and loop_task.done()  # nothing is left that could send
        stopped = generator.stats.sent
        await async_never_within(lambda: generator.stats.sent != stopped or generator.in_flight, 0.2,
                                 "traffic after stop")

    asyncio.run(scenario())


def test_a_negative_rate_is_refused() -> None:
    generator = LoadGenerator("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        generator.requests_per_second = -1
