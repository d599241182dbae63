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


def requests_by(telemetry: Telemetry, label: str) -> Counter:
    index = telemetry.http_requests.label_names.index(label)
    counts: Counter = Counter()
    for values, total in telemetry.http_requests.totals.items():
        counts[values[index]] += total
    return counts


async def run_for(generator: LoadGenerator, seconds: float) -> None:
    generator.start()
    await asyncio.sleep(seconds)
    await generator.stop()


@pytest.mark.parametrize("url", ["http://localhost:8080", "http://10.0.0.5", "https://api.tripgen.com"])
def test_only_127_0_0_1_is_targeted(url: str) -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        LoadGenerator(url)


def test_steady_traffic_cycles_through_the_public_api_over_http() -> None:
    telemetry = Telemetry()
    app = build_gateway_app(public_api_store(), fast_behaviors(), telemetry, random.Random(1))
    with serve_in_thread(app) as url:
        generator = LoadGenerator(url, DEFAULT_TARGETS, requests_per_second=80, rng=random.Random(2))
        asyncio.run(run_for(generator, 1.0))
    assert 65 <= generator.stats.sent <= 90
    assert generator.stats.statuses[200] >= generator.stats.sent - 2 and generator.stats.failed == 0
    by_uri = requests_by(telemetry, "uri")
    assert set(by_uri) == {"/api/users/health", "/api/trips", "/api/ai/health", "/api/locations"}
    assert max(by_uri.values()) - min(by_uri.values()) <= 1  # evenly cycled


def test_a_canary_fraction_sends_the_canary_header() -> None:
    telemetry = Telemetry()
    app = build_gateway_app(canary_store(100, 0), fast_behaviors(), telemetry, random.Random(1))
    generator = LoadGenerator(
        "http://127.0.0.1", (LoadTarget("/api/trips"),), 200, random.Random(3),
        canary_fraction=0.5, transport=httpx.ASGITransport(app=app),
    )
    asyncio.run(run_for(generator, 0.5))
    versions = requests_by(telemetry, "version")
    total = versions["canary"] + versions["blue"]
    assert total >= 50 and abs(versions["canary"] / total - 0.5) < 0.2


def test_concurrency_stays_bounded_when_the_gateway_is_slow() -> None:
    slow = BehaviorBook((BehaviorRule("*", VersionBehavior(error_rate=0.0, latency_p50_ms=300, latency_p95_ms=300)),))
    app = build_gateway_app(trip_service_store("blue"), slow, Telemetry(), random.Random(1))
    generator = LoadGenerator(
        "http://127.0.0.1", (LoadTarget("/api/trips"),), 100, random.Random(1),
        max_in_flight=3, transport=httpx.ASGITransport(app=app),
    )

    async def watch() -> int:
        generator.start()
        highest = 0
        for _ in range(50):
            await asyncio.sleep(0.01)
            highest = max(highest, generator.in_flight)
        await generator.stop()
        return highest

    assert asyncio.run(watch()) == 3
    assert generator.stats.skipped > 10 and generator.in_flight == 0


def test_the_rate_changes_while_running_and_stop_ends_the_traffic() -> None:
    app = build_gateway_app(trip_service_store("blue"), fast_behaviors(), Telemetry(), random.Random(1))
    generator = LoadGenerator(
        "http://127.0.0.1", (LoadTarget("/api/trips"),), 0, random.Random(1), transport=httpx.ASGITransport(app=app)
    )

    async def scenario() -> tuple[int, int, int]:
        generator.start()
        await asyncio.sleep(0.3)
        idle = generator.stats.sent
        generator.requests_per_second = 100
        await asyncio.sleep(0.5)
        busy = generator.stats.sent
        await generator.stop()
        await asyncio.sleep(0.1)
        return idle, busy, generator.stats.sent

    idle, busy, after_stop = asyncio.run(scenario())
    assert idle == 0
    assert 35 <= busy <= 60
    assert after_stop == busy


def test_a_negative_rate_is_refused() -> None:
    generator = LoadGenerator("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        generator.requests_per_second = -1
